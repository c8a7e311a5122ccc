"""``tagifai sense`` and ``tagifai watch``: the continual loop's sensor on this machine.

``tagifai sense`` reads the ``id`` and ``created_on`` of the projects source and the watermark in the
warehouse and prints the decision as JSON (tagifai.sensor). With ``--run`` it also runs the continual
pipeline locally when ``retrain`` is true (approval manual unless ``--approval`` or TAGIFAI_APPROVAL), and advances
the watermark only when that run succeeded and the source still gives the decision's run key. The run is
recorded as ``$TAGIFAI_HOME/sensor/<run key>.json`` (the decision, the run's status and summary file).

``tagifai sense --submit kubeflow|vertex`` sends the compiled ``sensor`` pipeline to a cluster when ``retrain``
is true, named by the decision's run key, so the same data never starts two runs: on Kubeflow the run's name
is the run key (a run of that name in the experiment means nothing is sent; KFP does not enforce unique run
names, so two senses at the same moment could still both create one), on Vertex AI the PipelineJob's
``job_id`` is the run key (unique in its location, enforced by Vertex: a second create answers 409
ALREADY_EXISTS, which is a no-op here). The package and cluster options are those of ``tagifai submit`` and
``tagifai vertex run``. :func:`submit_vertex` is shared with the Cloud Run function in
``functions/vertex_sensor``.

``tagifai watch --every 10m`` repeats ``sense --run`` until Ctrl-C (``--max-iterations N`` stops after N).
On a cluster, schedule the ``sensor`` pipeline instead (``tagifai schedule sensor``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field

from tagifai_cli.commands import help_of
from tagifai_cli.options import add_package_arguments, given_parameters, package_from, pipeline_arguments, settings_from

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``90``, ``30s``, ``10m``, ``1h``, ``1d`` as seconds; ValueError naming the expected form."""
    match = _DURATION.match(str(text).lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--every {text!r}: expected a positive duration such as 30s, 10m, 1h or 1d")
    return float(match.group(1)) * _UNITS[match.group(2)]


def sense_once(args: argparse.Namespace, out=None) -> int:
    """One sense (and with ``--run`` the run and the advance); 0 unless a triggered run failed.

    With ``--run`` the sense, the run and the advance hold the state folder (:mod:`tagifai_cli.statelock`):
    another run on it fails this one at once, or makes it wait up to ``--wait`` seconds."""
    if not getattr(args, "run", False):
        return _sense_once(args, out)
    from tagifai_cli.statelock import state_lock

    with state_lock(settings_from(args).home, getattr(args, "wait", 0)):
        return _sense_once(args, out)


def _sense_once(args: argparse.Namespace, out=None) -> int:
    out = out or sys.stdout
    from tagifai.sensor import sense

    settings = settings_from(args)

    def arguments_of(pipeline: str) -> dict:
        return pipeline_arguments(
            pipeline,
            settings,
            projects=args.projects,
            tags=args.tags,
            num_trials=args.num_trials,
            model_families=args.model_families,
            seed=args.seed,
            approval=args.approval,
            sensed=True,
        )

    arguments = arguments_of("continual")
    min_new_rows = args.min_new_rows or settings.sensor_min_new_rows
    max_age_days = args.max_age_days or settings.sensor_max_age_days
    submit = getattr(args, "submit", None)
    if submit:
        if args.run:
            raise ValueError("--run runs continual here, --submit sends the sensor pipeline to a cluster: give one")
        given = given_parameters(args)
        check_given(given, "--param", "give --projects, --warehouse, --min-new-rows or --max-age-days instead")
    decision = sense(arguments["projects_source"], settings.warehouse, min_new_rows, max_age_days)
    out.write(json.dumps(decision.to_dict(), indent=2, default=str) + "\n")
    out.flush()
    if submit and decision.retrain:
        remote = arguments_of("sensor")
        defaults = remote_parameters(remote, min_new_rows, max_age_days)
        send = _submit_kubeflow if submit == "kubeflow" else _submit_vertex
        submitted = send(args, settings, decision, defaults, given)
        out.write(submitted.line() + "\n")
        out.flush()
        return 0
    if not args.run or not decision.retrain:
        return 0
    return _run(args, settings, arguments, decision, out)


def _run(args, settings, arguments: dict, decision, out) -> int:
    from tagifai.sensor import advance_for
    from tagifai_cli.local_run import print_summary, run_local
    from tagifai_cli.packaging import step_images

    settings.home.mkdir(parents=True, exist_ok=True)
    out.write(f"retrain: running continual as {decision.run_key} (approval {arguments['approval']})\n")
    summary = run_local(
        "continual", arguments, settings.home, runner=args.runner, quiet=args.quiet, images=step_images(settings)
    )
    if not args.quiet:
        print_summary(summary, stream=out)
    advanced = False
    if summary["status"] == "succeeded":
        advanced, now = advance_for(arguments["projects_source"], settings.warehouse, decision.run_key)
        if advanced:
            out.write(f"watermark advanced to {decision.run_key}\n")
        else:
            out.write(f"watermark NOT advanced: the source changed during the run (now {now.run_key})\n")
    else:
        out.write(f"continual {summary['status']}: the watermark stays ({settings.home / 'last_run.json'})\n")
    record = settings.home / "sensor" / f"{decision.run_key}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(
        json.dumps(
            {
                "run_key": decision.run_key,
                "decision": decision.to_dict(),
                "status": summary["status"],
                "advanced": advanced,
                "summary": str(settings.home / "last_run.json"),
                "log": summary.get("log"),
            },
            indent=2,
            default=str,
        )
        + "\n"
    )
    out.write(f"record: {record}\n")
    out.flush()
    return 0 if summary["status"] == "succeeded" else 1


# --- sense --submit: the sensor pipeline on a cluster, named by the run key ------------------------------

#: Run arguments that stay on this machine: the state folder, and the warehouse, MLflow and Optuna of the
#: embedded default. The warehouse and the tracking URI follow each target's rules instead (Vertex: the
#: settings' when BigQuery and a tracking server, refused otherwise; Kubeflow: the cluster's ConfigMap, or the
#: settings' warehouse when every pod reaches it).
LOCAL_ONLY = ("state_dir", "warehouse", "mlflow_tracking_uri", "optuna_storage")
#: What the decision depends on: a remote run must get the values this sense used, so they come from the
#: settings and flags (--projects, --warehouse, --min-new-rows ...), never from ``--param`` (or the function's
#: SENSOR_PARAMETERS), which could make the run's own sense task decide on other data than this one.
SENSED = ("projects_source", "warehouse", "min_new_rows", "max_age_days")


def check_given(given: dict, what: str, instead: str) -> None:
    from tagifai_cli.packaging import DeliveryError

    clash = [k for k in SENSED if k in given]
    if clash:
        raise DeliveryError(f"{what} {', '.join(clash)}: the run must sense what this sense read ({instead})")


def remote_parameters(arguments: dict, min_new_rows: int, max_age_days: float) -> dict:
    """The sensor pipeline's parameters from :func:`pipeline_arguments` (``"sensor"``): the sources and the
    run's settings, the thresholds this sense used, and nothing that only exists on this machine."""
    values = {k: v for k, v in arguments.items() if k not in LOCAL_ONLY}
    values.update(min_new_rows=min_new_rows, max_age_days=max_age_days)
    return values


def run_values(spec: dict, defaults: dict, given: dict) -> dict:
    """``given`` over the ``defaults`` the package takes (a package compiled before a parameter existed
    does not get it); an unknown name in ``given`` is still an error (of the typing that follows)."""
    from tagifai_cli.packaging import input_types

    inputs = input_types(spec)
    return {**{k: v for k, v in defaults.items() if k in inputs}, **given}


@dataclass
class Submitted:
    """What a submit did: ``created`` is False when a run of the run key existed and nothing was sent."""

    target: str  # kubeflow | vertex
    run_key: str
    created: bool
    name: str  # the KFP run id, or the Vertex job's resource name
    url: str = ""
    state: str = ""  # of the existing run
    parameters: dict = field(default_factory=dict)

    def line(self) -> str:
        if self.created:
            return f"submitted {self.run_key} to {self.target}: {self.name} {self.url}".rstrip()
        state = f", {self.state}" if self.state else ""
        return f"{self.run_key} already exists on {self.target} ({self.name}{state}): nothing submitted"


def already_exists(exc: BaseException) -> bool:
    """Whether a Google API error says the resource exists (409 ALREADY_EXISTS), not another 409 (ABORTED)."""
    from google.api_core import exceptions

    if isinstance(exc, exceptions.AlreadyExists):
        return True
    if not isinstance(exc, exceptions.Conflict) or isinstance(exc, exceptions.Aborted):
        return False
    status = ""
    try:  # REST: the body's google.rpc.Status
        status = exc.response.json()["error"].get("status", "")
    except Exception:  # noqa: BLE001 - no response, or not JSON: the message decides
        pass
    return status == "ALREADY_EXISTS" or "already exists" in str(exc.message).lower()


def submit_vertex(
    template: str,
    spec: dict,
    decision,
    settings,
    place,
    defaults: dict,
    given: dict | None = None,
    *,
    caching: bool | None = None,
    network: str | None = None,
    api_transport: str | None = None,
    labels: dict | None = None,
) -> Submitted:
    """Submit the compiled Vertex ``sensor`` pipeline (``template``: a local path, gs:// or Artifact Registry
    URI; ``spec``: its pipeline spec) as a PipelineJob whose ``job_id`` and display name are the decision's
    run key. A job of that id existing (409 ALREADY_EXISTS) is a no-op: nothing is created, its state is
    looked up and returned. Parameters: ``given`` over ``defaults`` (:func:`remote_parameters`) over the
    settings' warehouse and MLflow (:func:`tagifai_cli.vertex.parameters`: ones every pod reaches). A template
    naming an image Vertex AI cannot pull is refused first (:func:`tagifai_cli.vertex.check_images`)."""
    from tagifai_cli import vertex

    key = decision.run_key
    vertex.check_images(spec, template)
    params = vertex.parameters(spec, run_values(spec, defaults, given or {}), settings)
    credentials = vertex._credentials()
    job = vertex.build_job(
        template,
        project=place.project,
        region=place.region,
        pipeline_root=place.pipeline_root,
        parameter_values=params,
        job_labels=vertex.labels(spec["pipelineInfo"]["name"], {"run-key": key, **(labels or {})}),
        enable_caching=caching,
        display_name=key,
        job_id=key,
        credentials=credentials,
        api_endpoint=place.api_endpoint,
        api_transport=api_transport,
    )
    url = vertex.console_url(place.project, place.region, key)
    name = f"projects/{place.project}/locations/{place.region}/pipelineJobs/{key}"
    try:
        job.submit(service_account=place.service_account, network=network)
    except Exception as exc:
        if not already_exists(exc):
            raise
        return Submitted("vertex", key, False, name, url, _vertex_state(name, place, credentials), params)
    return Submitted("vertex", key, True, job.resource_name, url, parameters=params)


def _vertex_state(name: str, place, credentials) -> str:
    """The state of an existing job (for the log line); empty when it cannot be read."""
    from google.cloud import aiplatform

    try:
        job = aiplatform.PipelineJob.get(name, project=place.project, location=place.region, credentials=credentials)
        return job.state.name.removeprefix("PIPELINE_STATE_")
    except Exception:  # noqa: BLE001 - the job exists; its state is only informative
        return ""


def _submit_vertex(args, settings, decision, defaults: dict, given: dict) -> Submitted:
    from tagifai_cli import vertex
    from tagifai_cli.packaging import parse_assignments

    place = vertex.Place.of(args, settings)
    with tempfile.TemporaryDirectory(prefix="tagifai-sense-") as workdir:
        pkg = package_from(args, "vertex", workdir, settings)
        vertex.check_images(pkg.spec, args.package)  # before submit_vertex names the temporary file
        print(f"vertex: project {place.project} region {place.region} pipeline root {place.pipeline_root}")
        submitted = submit_vertex(
            str(pkg.path),
            pkg.spec,
            decision,
            settings,
            place,
            defaults,
            given,
            caching={None: None, "on": True, "off": False}[args.caching],
            network=args.network,
            api_transport=args.api_transport,
            labels={"trigger": "cli", **parse_assignments(args.label, "--label")},
        )
    print("parameters: " + ", ".join(f"{k}={v}" for k, v in submitted.parameters.items()))
    return submitted


def _submit_kubeflow(args, settings, decision, defaults: dict, given: dict) -> Submitted:
    """Create a run named by the run key in the experiment, unless one of that name is there."""
    from tagifai.warehouse import parse_warehouse
    from tagifai_cli import kubeflow

    key = decision.run_key
    if parse_warehouse(settings.warehouse).shared_across_pods:  # the watermark this sense read
        defaults = {**defaults, "warehouse": settings.warehouse}
    else:
        print(f"kubeflow: the run's steps use the cluster's warehouse (this sense read {settings.warehouse})")

    @kubeflow._api_errors
    def submit(args, settings) -> Submitted:
        conn = kubeflow.connection(args, settings)
        experiment = args.experiment or settings.kfp_experiment
        kfp_client = kubeflow.client(conn)
        exp = kubeflow.experiment_id(kfp_client, experiment, conn.namespace)
        found = kfp_client.list_runs(experiment_id=exp, page_size=1, filter=kubeflow._filter("display_name", key))
        if found.runs:
            run = found.runs[0]
            url = kubeflow._ui(conn, "runs/details/" + run.run_id)
            return Submitted("kubeflow", key, False, run.run_id, url, str(run.state or ""))
        with tempfile.TemporaryDirectory(prefix="tagifai-sense-") as workdir:
            target = kubeflow._connect(args, settings, workdir)
            params = kubeflow.parameters(target.pkg.spec, run_values(target.pkg.spec, defaults, given))
            print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
            run = kubeflow.create_run(target, key, params)
        url = kubeflow._ui(target.conn, "runs/details/" + run.run_id)
        return Submitted("kubeflow", key, True, run.run_id, url, parameters=params)

    return submit(args)


def cmd_sense(args: argparse.Namespace) -> int:
    return sense_once(args)


def cmd_watch(args: argparse.Namespace) -> int:
    """``sense --run`` every ``--every`` until Ctrl-C or ``--max-iterations``; an iteration's error is shown
    and the loop goes on (a source that is briefly unreachable does not stop the watch)."""
    every = parse_duration(args.every)
    args.run = True
    done = 0
    try:
        while True:
            try:
                sense_once(args)
            except Exception as exc:  # noqa: BLE001 - one line, then the next iteration
                if args.debug:
                    raise
                print(f"tagifai watch: error: {type(exc).__name__}: {exc}", file=sys.stderr)
            done += 1
            if args.max_iterations and done >= args.max_iterations:
                return 0
            time.sleep(every)
    except KeyboardInterrupt:
        print(f"tagifai watch: stopped after {done} iteration(s)", file=sys.stderr)
        return 0


def add_parser(subparsers) -> None:
    """``tagifai sense`` and ``tagifai watch``."""
    sense = subparsers.add_parser("sense", help=help_of("sense"))
    watch = subparsers.add_parser("watch", help=help_of("watch"))
    for p in (sense, watch):
        p.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
        p.add_argument("--warehouse", help="duckdb:///file.duckdb or bigquery://project/dataset (holds the watermark)")
        p.add_argument("--mlflow-tracking-uri", help="MLflow tracking URI (default sqlite in the state folder)")
        p.add_argument("--optuna-storage", help="Optuna storage URL (default sqlite in the state folder)")
        p.add_argument("--data-dir", help="folder or URL prefix with projects.csv and tags.csv (DATA_DIR)")
        p.add_argument("--projects", help="projects source (path or URL; CSV, JSON or Parquet)")
        p.add_argument("--tags", help="tags source (for the run)")
        p.add_argument("--min-new-rows", type=int, help="TAGIFAI_SENSOR_MIN_NEW_ROWS (default 50)")
        p.add_argument("--max-age-days", type=float, help="TAGIFAI_SENSOR_MAX_AGE_DAYS (default 30)")
        p.add_argument(
            "--approval", choices=("auto", "manual"), help="of the run (default: TAGIFAI_APPROVAL, else manual)"
        )
        p.add_argument("--runner", default="subprocess", choices=("subprocess", "docker"))
        p.add_argument("--num-trials", type=int, help="Optuna trials of the run (TAGIFAI_NUM_TRIALS)")
        p.add_argument("--model-families", help="model families of the run (TAGIFAI_MODEL_FAMILIES)")
        p.add_argument("--seed", type=int, default=42)
        p.add_argument("--quiet", action="store_true", help="no per-step progress of the run")
    sense.add_argument("--run", action="store_true", help="run continual when retrain is true, then advance")
    for p in (sense, watch):
        p.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="--run: when another run holds the state folder, wait up to this long (default: fail at once)",
        )
    sense.add_argument(
        "--submit",
        choices=("kubeflow", "vertex"),
        help="when retrain is true, send the sensor pipeline there, named by the run key (once per run key)",
    )
    _add_submit_arguments(sense)
    sense.set_defaults(func=cmd_sense)
    watch.add_argument("--every", default="10m", help="time between senses: 30s, 10m, 1h ... (default 10m)")
    watch.add_argument("--max-iterations", type=int, default=0, help="stop after N senses (default: never)")
    watch.set_defaults(func=cmd_watch)


def _add_submit_arguments(sense) -> None:
    """The package options of the delivery commands and the cluster options of ``tagifai submit`` (Kubeflow)
    and ``tagifai vertex run`` (Vertex AI), for ``sense --submit``."""
    package = sense.add_argument_group("--submit: the sensor pipeline's package (compiled for the --submit target)")
    add_package_arguments(package, ["sensor"], "kubeflow")
    for action in package._group_actions:  # the pipeline is always sensor; the package's target is --submit's
        if action.dest == "pipeline":
            action.help = argparse.SUPPRESS
        elif action.dest == "package":
            action.help = "a compiled sensor package to send as it is (default: compile it now for the target)"
    sense.set_defaults(pipeline="sensor")
    kfp = sense.add_argument_group("--submit kubeflow (as tagifai submit)")
    kfp.add_argument("--host", help="KFP API or UI URL (TAGIFAI_KFP_HOST; default http://localhost:8080)")
    kfp.add_argument(
        "--token-file", help="file holding a bearer token (else TAGIFAI_KFP_TOKEN_FILE, TAGIFAI_KFP_TOKEN)"
    )
    kfp.add_argument("--in-cluster", action="store_true", help="authenticate with the pod's service-account token")
    kfp.add_argument("--namespace", help="profile namespace (TAGIFAI_KFP_NAMESPACE; multi-user KFP only)")
    kfp.add_argument("--experiment", help="KFP experiment (TAGIFAI_KFP_EXPERIMENT; default tagifai)")
    kfp.add_argument("--pipeline-name", help="name of the uploaded pipeline (default tagifai-sensor)")
    kfp.add_argument("--no-upload", action="store_true", help="send the spec inline instead of uploading a version")
    vertex = sense.add_argument_group("--submit vertex (as tagifai vertex run)")
    vertex.add_argument("--project", help="Google Cloud project (TAGIFAI_VERTEX_PROJECT, else GOOGLE_CLOUD_PROJECT)")
    vertex.add_argument("--region", help="Vertex AI region (TAGIFAI_VERTEX_REGION; default us-central1)")
    vertex.add_argument(
        "--pipeline-root", help="gs://BUCKET/PATH for the run's artifacts (TAGIFAI_VERTEX_PIPELINE_ROOT)"
    )
    vertex.add_argument("--network", help="VPC network to peer (projects/NUMBER/global/networks/NAME)")
    vertex.add_argument("--label", action="append", metavar="KEY=VALUE", help="a job label (repeat)")
    vertex.add_argument("--api-endpoint", help=argparse.SUPPRESS)  # TAGIFAI_VERTEX_API_ENDPOINT
    vertex.add_argument("--api-transport", choices=("grpc", "rest"), help=argparse.SUPPRESS)
    sense.add_argument(
        "--service-account",
        help="--submit kubeflow: the run pods' Kubernetes service account (TAGIFAI_KFP_SERVICE_ACCOUNT); "
        "vertex: the Google service account the steps run as (TAGIFAI_VERTEX_SERVICE_ACCOUNT)",
    )
