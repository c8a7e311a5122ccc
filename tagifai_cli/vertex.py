"""Vertex AI Pipelines delivery: ``tagifai vertex run`` and ``tagifai vertex schedule``.

The package is the Vertex flavour (``tagifai compile --target vertex``: one YAML document, no
kfp-kubernetes settings, which Vertex cannot load) compiled now from the pipeline, or given with
``--package``. It becomes a ``google.cloud.aiplatform.PipelineJob`` with the project, region, a
``gs://`` pipeline root, labels, caching and typed parameters; ``run`` submits it (as the service
account given) and can wait for its final state (``--timeout``: at most that long; the job keeps running
on Vertex AI unless ``--cancel-on-timeout``), ``schedule`` creates a ``PipelineJobSchedule``.

Step images come from the same registry setting as everywhere (``--registry``/TAGIFAI_REGISTRY, an
Artifact Registry path such as ``europe-west4-docker.pkg.dev/PROJECT/tagifai``; the tag ``--tag``, else
each step's content tag, as ``tagifai images build`` made it; ``--by-digest`` for the pushed digests).
Vertex AI pulls them itself, so before anything is sent the commands refuse a package whose images it
cannot pull (:func:`check_images`: a registry on this machine such as the default localhost:5000,
kind's, one without a host, or the placeholder of the committed Vertex flavour), naming the steps. Each
Vertex step is its own pod with an ephemeral disk, so the warehouse must be BigQuery and MLflow a tracking
server: the commands refuse a run that would use the embedded DuckDB or SQLite files.
The package options come from :mod:`tagifai_cli.options` (shared with ``tagifai submit``); the project,
region, pipeline root, service account and API endpoint from the flags, else the settings
(``TAGIFAI_VERTEX_*``; the project also from GOOGLE_CLOUD_PROJECT).

Secrets never travel with the job: a step reads its MLflow token itself (``TAGIFAI_MLFLOW_TRACKING_TOKEN``, a
Secret Manager reference ``sm://projects/P/secrets/S/versions/V`` set in the platform file's ``vertex.env``,
:mod:`tagifai.secrets`); these commands read no secret and send none.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from tagifai_cli.commands import help_of
from tagifai_cli.options import (
    add_package_arguments,
    given_parameters,
    package_from,
    pipeline_parameters,
    settings_from,
)
from tagifai_cli.packaging import (
    DeliveryError,
    check_cron,
    check_vertex_images,
    input_types,
    iso,
    parse_assignments,
    parse_time,
    spec_images,
)

_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_REMOTE_TRACKING = ("http://", "https://", "databricks")
#: gs://BUCKET[/PATH]: a bucket name is lowercase letters, digits, -, _ and . (Cloud Storage checks the rest)
_GCS_ROOT = re.compile(r"^gs://[a-z0-9][a-z0-9._-]*(/.*)?$")
_FINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


def parameters(spec: dict, given: dict, settings=None) -> dict:
    """Typed parameters for a Vertex run; BigQuery and a tracking server are required, not DuckDB/SQLite.

    The warehouse and tracking URI default to the settings' when those are BigQuery and a server.
    """
    if settings is None:
        from tagifai.config import get_settings

        settings = get_settings(export_secrets=False)
    from tagifai.warehouse import parse_warehouse

    def shared(uri: str) -> bool:
        return bool(uri) and parse_warehouse(uri).shared_across_pods

    inputs = input_types(spec)
    defaults: dict = {}
    if shared(settings.warehouse):
        defaults["warehouse"] = settings.warehouse
    if settings.mlflow_tracking_uri.startswith(_REMOTE_TRACKING):
        defaults["mlflow_tracking_uri"] = settings.mlflow_tracking_uri
    warehouse = str(given.get("warehouse", defaults.get("warehouse", "")))
    if "warehouse" in inputs and not shared(warehouse):
        raise DeliveryError(
            "Vertex AI runs each step in its own pod: the warehouse must be one every pod reaches, "
            "e.g. BigQuery "
            "(--param warehouse=bigquery://PROJECT/DATASET or TAGIFAI_WAREHOUSE)"
        )
    tracking = str(given.get("mlflow_tracking_uri", defaults.get("mlflow_tracking_uri", "")))
    if "mlflow_tracking_uri" in inputs and not tracking.startswith(_REMOTE_TRACKING):
        raise DeliveryError(
            "Vertex AI runs each step in its own pod: MLflow must be a tracking server "
            "(--param mlflow_tracking_uri=https://... or TAGIFAI_MLFLOW_TRACKING_URI)"
        )
    return pipeline_parameters(spec, given, defaults)


def check_images(spec: dict, package: str | None = None) -> None:
    """Refuse (DeliveryError, one line) a pipeline spec naming an image Vertex AI cannot pull: a registry on
    this machine or without a host, or the placeholder of the committed flavour; ``package``: the file given."""
    check_vertex_images(spec_images(spec), package)


def labels(pipeline: str, given: dict) -> dict:
    out = {"app": "tagifai", "pipeline": pipeline, **given}
    for key, value in out.items():
        if not _LABEL.match(key) or not _LABEL_VALUE.match(value):
            raise DeliveryError(
                f"label {key}={value!r}: keys and values are lowercase letters, digits, _ and - "
                "(at most 63; a key starts with a letter)"
            )
    return out


def check_pipeline_root(pipeline_root: str) -> str:
    """``pipeline_root`` when it is ``gs://BUCKET[/PATH]``, else one line saying what to give."""
    if not pipeline_root:
        raise DeliveryError(
            "no pipeline root: --pipeline-root gs://BUCKET/PATH (or TAGIFAI_VERTEX_PIPELINE_ROOT), "
            "a bucket in the region of the runs for their artifacts"
        )
    if not _GCS_ROOT.match(pipeline_root):
        raise DeliveryError(
            f"pipeline root {pipeline_root!r}: expected gs://BUCKET/PATH "
            "(--pipeline-root or TAGIFAI_VERTEX_PIPELINE_ROOT; a bucket name is lowercase)"
        )
    return pipeline_root


def _credentials():
    """Application default credentials (gcloud auth application-default login, or the workload's account)."""
    return None


def build_job(
    package: str | Path,
    *,
    project: str,
    region: str,
    pipeline_root: str,
    parameter_values: dict,
    job_labels: dict,
    enable_caching: bool | None,
    display_name: str,
    job_id: str | None = None,
    credentials=None,
    api_endpoint: str | None = None,
    api_transport: str | None = None,
):
    """The ``PipelineJob`` for a compiled Vertex package (built offline; nothing is sent)."""
    if not project:
        raise DeliveryError("no Google Cloud project: --project, TAGIFAI_VERTEX_PROJECT or GOOGLE_CLOUD_PROJECT")
    check_pipeline_root(pipeline_root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from google.cloud import aiplatform
    if api_endpoint or api_transport:
        aiplatform.init(
            project=project,
            location=region,
            credentials=credentials,
            api_endpoint=api_endpoint,
            api_transport=api_transport,
        )
    return aiplatform.PipelineJob(
        display_name=display_name,
        template_path=str(package),
        job_id=job_id,
        pipeline_root=pipeline_root,
        parameter_values=parameter_values,
        enable_caching=enable_caching,
        labels=job_labels,
        project=project,
        location=region,
        credentials=credentials,
    )


def console_url(project: str, region: str, job_id: str) -> str:
    return f"https://console.cloud.google.com/vertex-ai/locations/{region}/pipelines/runs/{job_id}?project={project}"


@dataclass
class Place:
    """Where and as whom a job runs: the flags, else the settings (TAGIFAI_VERTEX_*)."""

    project: str
    region: str
    pipeline_root: str
    service_account: str | None
    api_endpoint: str | None

    @classmethod
    def of(cls, args, settings) -> Place:
        """The place, checked before anything is compiled: a project, and a ``gs://`` pipeline root."""
        place = cls(
            project=args.project or settings.vertex_project or os.environ.get("GOOGLE_CLOUD_PROJECT", ""),
            region=args.region or settings.vertex_region,
            pipeline_root=args.pipeline_root or settings.vertex_pipeline_root,
            service_account=args.service_account or settings.vertex_service_account or None,
            api_endpoint=args.api_endpoint or settings.vertex_api_endpoint or None,
        )
        if not place.project:
            raise DeliveryError("no Google Cloud project: --project, TAGIFAI_VERTEX_PROJECT or GOOGLE_CLOUD_PROJECT")
        check_pipeline_root(place.pipeline_root)
        return place


def _job(args, settings, place: Place, workdir: str):
    pkg = package_from(args, "vertex", workdir, settings)
    check_images(pkg.spec, args.package)
    params = parameters(pkg.spec, given_parameters(args), settings)
    job = build_job(
        pkg.path,
        project=place.project,
        region=place.region,
        pipeline_root=place.pipeline_root,
        parameter_values=params,
        job_labels=labels(pkg.name, parse_assignments(args.label, "--label")),
        enable_caching={None: None, "on": True, "off": False}[args.caching],
        display_name=args.display_name or f"tagifai-{pkg.name}",
        job_id=getattr(args, "job_id", None),
        credentials=_credentials(),
        api_endpoint=place.api_endpoint,
        api_transport=args.api_transport,
    )
    print(f"vertex: project {place.project} region {place.region} pipeline root {place.pipeline_root}")
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return pkg.name, job


def _state(job) -> str:
    """The job's state now (``PipelineJob.state`` asks Vertex AI), without the PIPELINE_STATE_ prefix."""
    return job.state.name.removeprefix("PIPELINE_STATE_")


def wait_for(job, timeout: float | None, poll: float | None = None) -> str:
    """Poll ``job`` until a final state, printing each change; past ``timeout`` seconds: ``TIMEOUT``."""
    if poll is None:
        from google.cloud.aiplatform import pipeline_jobs

        poll = float(getattr(pipeline_jobs, "_JOB_WAIT_TIME", 5))
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        state = _state(job)
        if state != last:
            print(f"  {job.job_id}: {state}", flush=True)
            last = state
        if state in _FINAL:
            error = getattr(job._gca_resource, "error", None)
            if state != "SUCCEEDED" and error is not None and error.message:
                print(f"  error: {error.message.splitlines()[0]}")
            return state
        if deadline is not None and time.monotonic() >= deadline:
            return "TIMEOUT"
        time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))


def cmd_run(args) -> int:
    if args.timeout is not None and not args.wait:
        raise DeliveryError("--timeout: only with --wait (without it the command returns once the job is created)")
    if args.cancel_on_timeout and args.timeout is None:
        raise DeliveryError("--cancel-on-timeout: only with --wait --timeout SECONDS")
    settings = settings_from(args, export_secrets=False)
    place = Place.of(args, settings)
    with tempfile.TemporaryDirectory(prefix="tagifai-vertex-") as workdir:
        name, job = _job(args, settings, place, workdir)
        job.submit(service_account=place.service_account, network=args.network)
    print(f"pipeline job {job.resource_name}\n{console_url(place.project, place.region, job.job_id)}")
    if not args.wait:
        return 0
    state = wait_for(job, args.timeout, args.poll_interval)
    if state == "TIMEOUT":
        now = _state(job)
        if args.cancel_on_timeout:
            job.cancel()
            raise DeliveryError(
                f"pipeline job {job.job_id} still {now} after {args.timeout:g} s: cancel requested "
                "(Vertex AI stops it on a best-effort basis; the console shows when it is CANCELLED)"
            )
        raise DeliveryError(
            f"pipeline job {job.job_id} still {now} after {args.timeout:g} s; it keeps running on Vertex AI "
            "(cancel it in the console, or --cancel-on-timeout next time)"
        )
    print(f"{name} {state}")
    return 0 if state == "SUCCEEDED" else 1


def cmd_schedule(args) -> int:
    cron = check_cron(args.cron)
    if args.timezone:
        cron = f"TZ={args.timezone} {cron}"
    settings = settings_from(args, export_secrets=False)
    place = Place.of(args, settings)
    with tempfile.TemporaryDirectory(prefix="tagifai-vertex-") as workdir:
        name, job = _job(args, settings, place, workdir)
        schedule = job.create_schedule(
            cron=cron,
            display_name=args.name or f"tagifai-{name}-schedule",
            start_time=iso(parse_time(args.start)) if args.start else None,
            end_time=iso(parse_time(args.end)) if args.end else None,
            allow_queueing=args.allow_queueing,
            max_run_count=args.max_run_count,
            max_concurrent_run_count=args.max_concurrency,
            service_account=place.service_account,
            network=args.network,
        )
    print(
        f"schedule {schedule.resource_name}: cron {cron!r}, max concurrency {args.max_concurrency}, "
        f"queueing {'on' if args.allow_queueing else 'off (a run due while one is running is skipped)'}"
    )
    return 0


def add_parser(sub, pipeline_names=None) -> None:
    """``tagifai vertex run`` and ``tagifai vertex schedule`` (``pipeline_names``: default all)."""
    if pipeline_names is None:
        from pipelines import NAMES

        pipeline_names = NAMES
    vertex = sub.add_parser("vertex", help=help_of("vertex"))
    vsub = vertex.add_subparsers(dest="vertex_command", required=True)

    def common(p):
        add_package_arguments(p, pipeline_names, "vertex")
        p.add_argument("--project", help="Google Cloud project (TAGIFAI_VERTEX_PROJECT, else GOOGLE_CLOUD_PROJECT)")
        p.add_argument("--region", help="Vertex AI region (TAGIFAI_VERTEX_REGION; default us-central1)")
        p.add_argument(
            "--pipeline-root",
            help="gs://BUCKET/PATH for the run's artifacts (TAGIFAI_VERTEX_PIPELINE_ROOT; required)",
        )
        p.add_argument("--service-account", help="service account the steps run as (TAGIFAI_VERTEX_SERVICE_ACCOUNT)")
        p.add_argument("--network", help="VPC network to peer (projects/NUMBER/global/networks/NAME)")
        p.add_argument("--display-name")
        p.add_argument(
            "--label",
            action="append",
            metavar="KEY=VALUE",
            help="a job label (repeat); app=tagifai and pipeline=<name> are added",
        )
        p.add_argument("--api-endpoint", help=argparse.SUPPRESS)  # TAGIFAI_VERTEX_API_ENDPOINT
        p.add_argument("--api-transport", choices=("grpc", "rest"), help=argparse.SUPPRESS)

    p = vsub.add_parser("run", help="submit a PipelineJob")
    common(p)
    p.add_argument("--job-id", help="job id (default <pipeline>-<timestamp>)")
    p.add_argument("--wait", action="store_true", help="wait for the job and exit 1 unless it succeeds")
    p.add_argument(
        "--timeout",
        type=float,
        metavar="SECONDS",
        help="with --wait: exit 1 when the job is not done after this long (it keeps running on Vertex AI)",
    )
    p.add_argument(
        "--cancel-on-timeout", action="store_true", help="with --timeout: cancel the job when the time is up"
    )
    p.add_argument("--poll-interval", type=float, help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_run)

    p = vsub.add_parser("schedule", help="create a PipelineJobSchedule")
    common(p)
    p.add_argument("--cron", required=True, help='5-field cron, e.g. "0 6 * * *"')
    p.add_argument("--timezone", help="IANA time zone of the cron (default UTC), e.g. Europe/Paris")
    p.add_argument("--name", help="schedule name (default tagifai-<pipeline>-schedule)")
    p.add_argument("--start", help="ISO 8601")
    p.add_argument("--end", help="ISO 8601")
    p.add_argument("--max-concurrency", type=int, default=1)
    p.add_argument(
        "--allow-queueing", action="store_true", help="queue a run that is due while max concurrency is reached"
    )
    p.add_argument("--max-run-count", type=int, help="stop after this many runs")
    p.set_defaults(func=cmd_schedule)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `tagifai vertex ...`")
