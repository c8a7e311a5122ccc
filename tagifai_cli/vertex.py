"""Vertex AI Pipelines delivery: ``tagifai vertex run`` and ``tagifai vertex schedule``.

The package is the Vertex flavour (``tagifai compile --target vertex``: one YAML document, no
kfp-kubernetes settings, which Vertex cannot load) compiled now from the pipeline, or given with
``--package``. It becomes a ``google.cloud.aiplatform.PipelineJob`` with the project, region, a
``gs://`` pipeline root, labels, caching and typed parameters; ``run`` submits it (as the service
account given) and can wait for its final state, ``schedule`` creates a ``PipelineJobSchedule``.

Step images come from the same registry setting as everywhere (``--registry``/TAGIFAI_REGISTRY, an
Artifact Registry path such as ``europe-west4-docker.pkg.dev/PROJECT/tagifai``). Each Vertex step is
its own pod with an ephemeral disk, so the warehouse must be BigQuery and MLflow a tracking server:
the commands refuse a run that would use the embedded DuckDB or SQLite files.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path

from tagifai_cli.packaging import (
    DeliveryError,
    check_cron,
    compile_package,
    iso,
    parse_assignments,
    parse_time,
    pipeline_spec,
    read_documents,
    typed_parameters,
)

DEFAULT_REGION = "us-central1"
_LABEL = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_REMOTE_TRACKING = ("http://", "https://", "databricks")


def load_package(pipeline: str | None, package: str | None, platform_config: str | None, workdir: str) -> tuple[Path, dict]:
    if package:
        path = Path(package)
        if not path.exists():
            raise DeliveryError(f"{package}: no such file")
    else:
        path = compile_package(pipeline or "continual", "vertex", workdir, platform_config)
    docs = read_documents(path)
    if len(docs) != 1:
        raise DeliveryError(f"{path}: {len(docs)} YAML documents (kfp-kubernetes settings); Vertex AI loads one: "
                            "compile it with `tagifai compile --target vertex`")
    spec = pipeline_spec(path)
    if pipeline and spec["pipelineInfo"]["name"] != pipeline:
        raise DeliveryError(f"{path} holds pipeline {spec['pipelineInfo']['name']!r}, not {pipeline!r}")
    return path, spec


def parameters(spec: dict, given: dict) -> dict:
    """Typed parameters for a Vertex run; BigQuery and a tracking server are required, not DuckDB/SQLite."""
    from tagifai.config import PUBLIC_SOURCES

    inputs = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    defaults: dict = {"projects_source": PUBLIC_SOURCES["projects"], "tags_source": PUBLIC_SOURCES["tags"]}
    env_warehouse = os.environ.get("TAGIFAI_WAREHOUSE", "")
    if env_warehouse.startswith("bigquery://"):
        defaults["warehouse"] = env_warehouse
    env_tracking = os.environ.get("TAGIFAI_MLFLOW_TRACKING_URI", "")
    if env_tracking.startswith(_REMOTE_TRACKING):
        defaults["mlflow_tracking_uri"] = env_tracking
    if "warehouse" in inputs:
        warehouse = given.get("warehouse", defaults.get("warehouse", ""))
        if not warehouse.startswith("bigquery://"):
            raise DeliveryError("Vertex AI runs each step in its own pod: the warehouse must be BigQuery "
                                "(--param warehouse=bigquery://PROJECT/DATASET or TAGIFAI_WAREHOUSE)")
        defaults.setdefault("dbt_target", "prod")
    if "mlflow_tracking_uri" in inputs:
        tracking = given.get("mlflow_tracking_uri", defaults.get("mlflow_tracking_uri", ""))
        if not tracking.startswith(_REMOTE_TRACKING):
            raise DeliveryError("Vertex AI runs each step in its own pod: MLflow must be a tracking server "
                                "(--param mlflow_tracking_uri=https://... or TAGIFAI_MLFLOW_TRACKING_URI)")
    return typed_parameters(spec, given, defaults)


def labels(pipeline: str, given: dict) -> dict:
    out = {"app": "tagifai", "pipeline": pipeline, **given}
    for key, value in out.items():
        if not _LABEL.match(key) or not _LABEL_VALUE.match(value):
            raise DeliveryError(f"label {key}={value!r}: keys and values are lowercase letters, digits, _ and - "
                                "(at most 63; a key starts with a letter)")
    return out


def _credentials():
    """Application default credentials (gcloud auth application-default login, or the workload's account)."""
    return None


def build_job(package: str | Path, *, project: str, region: str, pipeline_root: str, parameter_values: dict,
              job_labels: dict, enable_caching: bool | None, display_name: str, job_id: str | None = None,
              credentials=None, api_endpoint: str | None = None, api_transport: str | None = None):
    """The ``PipelineJob`` for a compiled Vertex package (built offline; nothing is sent)."""
    if not project:
        raise DeliveryError("no Google Cloud project: --project, TAGIFAI_VERTEX_PROJECT or GOOGLE_CLOUD_PROJECT")
    if not pipeline_root.startswith("gs://"):
        raise DeliveryError(f"pipeline root {pipeline_root!r}: expected gs://BUCKET/PATH (--pipeline-root or TAGIFAI_VERTEX_PIPELINE_ROOT)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from google.cloud import aiplatform
    if api_endpoint or api_transport:
        aiplatform.init(project=project, location=region, credentials=credentials, api_endpoint=api_endpoint,
                        api_transport=api_transport)
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


def _job(args, workdir: str):
    path, spec = load_package(args.pipeline, args.package, args.platform_config, workdir)
    name = spec["pipelineInfo"]["name"]
    params = parameters(spec, parse_assignments(args.param))
    job = build_job(
        path, project=args.project, region=args.region, pipeline_root=args.pipeline_root, parameter_values=params,
        job_labels=labels(name, parse_assignments(args.label, "--label")),
        enable_caching={None: None, "on": True, "off": False}[args.caching],
        display_name=args.display_name or f"tagifai-{name}", job_id=getattr(args, "job_id", None),
        credentials=_credentials(), api_endpoint=args.api_endpoint, api_transport=args.api_transport,
    )
    print(f"vertex: project {args.project} region {args.region} pipeline root {args.pipeline_root}")
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    return name, job


def cmd_run(args) -> int:
    with tempfile.TemporaryDirectory(prefix="tagifai-vertex-") as workdir:
        name, job = _job(args, workdir)
        job.submit(service_account=args.service_account, network=args.network)
    print(f"pipeline job {job.resource_name}\n{console_url(args.project, args.region, job.job_id)}")
    if not args.wait:
        return 0
    try:
        job.wait()
    except RuntimeError as exc:  # aiplatform raises when the job fails or is cancelled
        print(f"  {str(exc).splitlines()[0]}")
    state = job.state.name.removeprefix("PIPELINE_STATE_")
    print(f"{name} {state}")
    return 0 if state == "SUCCEEDED" else 1


def cmd_schedule(args) -> int:
    cron = check_cron(args.cron)
    if args.timezone:
        cron = f"TZ={args.timezone} {cron}"
    with tempfile.TemporaryDirectory(prefix="tagifai-vertex-") as workdir:
        name, job = _job(args, workdir)
        schedule = job.create_schedule(
            cron=cron,
            display_name=args.name or f"tagifai-{name}-schedule",
            start_time=iso(parse_time(args.start)) if args.start else None,
            end_time=iso(parse_time(args.end)) if args.end else None,
            allow_queueing=args.allow_queueing,
            max_run_count=args.max_run_count,
            max_concurrent_run_count=args.max_concurrency,
            service_account=args.service_account,
            network=args.network,
        )
    print(f"schedule {schedule.resource_name}: cron {cron!r}, max concurrency {args.max_concurrency}, "
          f"queueing {'on' if args.allow_queueing else 'off (a run due while one is running is skipped)'}")
    return 0


def add_parser(sub, pipeline_names) -> None:
    """``tagifai vertex run`` and ``tagifai vertex schedule``."""
    vertex = sub.add_parser("vertex", help="run or schedule a pipeline on Vertex AI Pipelines")
    vsub = vertex.add_subparsers(dest="vertex_command", required=True)

    def common(p):
        p.add_argument("pipeline", nargs="?", choices=pipeline_names, help="default continual, or the pipeline in --package")
        p.add_argument("--package", help="a compiled Vertex package (default: compile the pipeline now with --target vertex)")
        p.add_argument("--platform-config", help="per-step settings file when compiling (default pipelines/platform.yaml)")
        p.add_argument("--registry", help="image registry, e.g. REGION-docker.pkg.dev/PROJECT/REPO (TAGIFAI_REGISTRY)")
        p.add_argument("--tag", help="image tag (TAGIFAI_IMAGE_TAG)")
        p.add_argument("--project", default=os.environ.get("TAGIFAI_VERTEX_PROJECT") or os.environ.get("GOOGLE_CLOUD_PROJECT"))
        p.add_argument("--region", default=os.environ.get("TAGIFAI_VERTEX_REGION", DEFAULT_REGION))
        p.add_argument("--pipeline-root", default=os.environ.get("TAGIFAI_VERTEX_PIPELINE_ROOT", ""),
                       help="gs://BUCKET/PATH for the run's artifacts (TAGIFAI_VERTEX_PIPELINE_ROOT)")
        p.add_argument("--service-account", default=os.environ.get("TAGIFAI_VERTEX_SERVICE_ACCOUNT"),
                       help="service account the steps run as (TAGIFAI_VERTEX_SERVICE_ACCOUNT)")
        p.add_argument("--network", help="VPC network to peer (projects/NUMBER/global/networks/NAME)")
        p.add_argument("--display-name")
        p.add_argument("--label", action="append", metavar="KEY=VALUE", help="a job label (repeat); app=tagifai and pipeline=<name> are added")
        p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a pipeline parameter (repeat)")
        p.add_argument("--caching", choices=("on", "off"), help="override every step's compiled caching option")
        p.add_argument("--api-endpoint", default=os.environ.get("TAGIFAI_VERTEX_API_ENDPOINT"), help=argparse.SUPPRESS)
        p.add_argument("--api-transport", choices=("grpc", "rest"), help=argparse.SUPPRESS)

    p = vsub.add_parser("run", help="submit a PipelineJob")
    common(p)
    p.add_argument("--job-id", help="job id (default <pipeline>-<timestamp>)")
    p.add_argument("--wait", action="store_true", help="wait for the job and exit 1 unless it succeeds")
    p.set_defaults(func=cmd_run)

    p = vsub.add_parser("schedule", help="create a PipelineJobSchedule")
    common(p)
    p.add_argument("--cron", required=True, help='5-field cron, e.g. "0 6 * * *"')
    p.add_argument("--timezone", help="IANA time zone of the cron (default UTC), e.g. Europe/Paris")
    p.add_argument("--name", help="schedule name (default tagifai-<pipeline>-schedule)")
    p.add_argument("--start", help="ISO 8601")
    p.add_argument("--end", help="ISO 8601")
    p.add_argument("--max-concurrency", type=int, default=1)
    p.add_argument("--allow-queueing", action="store_true", help="queue a run that is due while max concurrency is reached")
    p.add_argument("--max-run-count", type=int, help="stop after this many runs")
    p.set_defaults(func=cmd_schedule)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use `tagifai vertex ...`")
