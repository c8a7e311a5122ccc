"""Kubeflow Pipelines delivery: ``tagifai submit``, ``tagifai schedule``, ``tagifai backfill``.

Everything goes through ``kfp.Client`` (the KFP v2beta1 REST API):

- submit: upload the compiled pipeline, or a new version of it (versions are named by the package's
  content hash, so submitting the same YAML twice reuses its version), get or create the experiment,
  create a run with typed parameters, and with ``--wait`` poll it to its final state.
- schedule: a recurring run on a cron (UTC), max concurrency 1, no catch-up unless ``--catchup``.
- backfill: one run per past interval of a cron between ``--start`` and ``--end``, oldest first,
  each waited for before the next (``{start}``/``{end}`` in parameter values are filled in).

Auth: a bearer token (``--token-file``, else TAGIFAI_KFP_TOKEN_FILE, else TAGIFAI_KFP_TOKEN), or the
pod's projected service-account token (``--in-cluster``). The token is sent as a header and is never
printed or written anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import io
import json
import os
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from tagifai_cli.packaging import (
    DeliveryError,
    compile_package,
    intervals,
    iso,
    kfp_cron,
    package_digest,
    parse_assignments,
    parse_time,
    pipeline_spec,
    read_documents,
    render_interval,
    typed_parameters,
)

DEFAULT_HOST = "http://localhost:8080"  # the KFP UI on kind (manifests/kind/cluster.yaml), which proxies /apis
IN_CLUSTER_HOST = "http://ml-pipeline.kubeflow.svc.cluster.local:8888"
SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
FINAL_STATES = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}


@dataclass
class Connection:
    host: str
    namespace: str | None = None
    in_cluster: bool = False
    token_file: str | None = None

    def __repr__(self) -> str:  # no token here, ever
        return f"Connection(host={self.host!r}, namespace={self.namespace!r}, in_cluster={self.in_cluster})"


def _token(conn: Connection) -> str | None:
    path = conn.token_file or os.environ.get("TAGIFAI_KFP_TOKEN_FILE")
    if path:
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DeliveryError(f"token file {path}: {exc.strerror}") from None
        if not token:
            raise DeliveryError(f"token file {path} is empty")
        return token
    return os.environ.get("TAGIFAI_KFP_TOKEN") or None


def client(conn: Connection):
    """A ``kfp.Client`` for ``conn`` (token or in-cluster service account)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # "only works with KFP v2.0.0-beta.2 and later"
        import kfp
        from kfp.client import ServiceAccountTokenVolumeCredentials

        kwargs: dict = {"host": conn.host}
        if conn.namespace:
            kwargs["namespace"] = conn.namespace
        if conn.in_cluster:
            kwargs["credentials"] = ServiceAccountTokenVolumeCredentials()  # KF_PIPELINES_SA_TOKEN_PATH, else the default path
        else:
            token = _token(conn)
            if token:
                kwargs["existing_token"] = token
        with contextlib.redirect_stdout(io.StringIO()):
            return kfp.Client(**kwargs)


def _quiet(fn, *args, **kwargs):
    """kfp.Client prints "details" links; the commands print their own lines."""
    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*args, **kwargs)


def _ui(conn: Connection, path: str) -> str:
    return f"{conn.host.rstrip('/')}/#/{path}"


def _filter(key: str, value: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": key, "stringValue": value}]})


@dataclass
class Package:
    name: str  # the pipeline's name in the spec (dataops, mlops, continual)
    path: Path
    spec: dict
    digest: str


def load_package(pipeline: str | None, package: str | None, platform_config: str | None, workdir: str) -> Package:
    """The package to send: ``package`` as given, else ``pipeline`` compiled now for Kubeflow."""
    if package:
        path = Path(package)
        if not path.exists():
            raise DeliveryError(f"{package}: no such file")
    else:
        path = compile_package(pipeline or "continual", "kubeflow", workdir, platform_config)
    spec = pipeline_spec(path)
    name = spec["pipelineInfo"]["name"]
    if pipeline and name != pipeline:
        raise DeliveryError(f"{path} holds pipeline {name!r}, not {pipeline!r}")
    return Package(name, path, spec, package_digest(path))


def with_caching(pkg: Package, enabled: bool, workdir: str) -> Package:
    """The package with every task's caching set to ``enabled`` (a new content hash, so a new version)."""
    import yaml

    docs = read_documents(pkg.path)
    spec = docs[0]
    dags = [spec["root"].get("dag", {})] + [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    for dag in dags:
        for task in dag.get("tasks", {}).values():
            task["cachingOptions"] = {"enableCache": True} if enabled else {}
    path = Path(workdir) / f"{pkg.name}-caching-{'on' if enabled else 'off'}.yaml"
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump_all(docs, f, sort_keys=True)
    return Package(pkg.name, path, spec, package_digest(path))


def default_parameters(spec: dict) -> dict:
    """Values the commands fill in when not given: the public sources; dbt's prod target on BigQuery."""
    from tagifai.config import PUBLIC_SOURCES

    return {"projects_source": PUBLIC_SOURCES["projects"], "tags_source": PUBLIC_SOURCES["tags"]}


def parameters(spec: dict, given: dict) -> dict:
    defaults = default_parameters(spec)
    if str(given.get("warehouse", "")).startswith("bigquery://") and "dbt_target" not in given:
        defaults["dbt_target"] = "prod"
    return typed_parameters(spec, given, defaults)


def ensure_version(kfp_client, pkg: Package, pipeline_name: str, description: str | None = None) -> tuple[str, str, bool]:
    """(pipeline id, version id, uploaded?): the pipeline, and a version named by the package's hash."""
    version_name = f"{pipeline_name}-{pkg.digest[:12]}"
    pipeline_id = kfp_client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        uploaded = _quiet(kfp_client.upload_pipeline, str(pkg.path), pipeline_name=pipeline_name, description=description)
        pipeline_id = uploaded.pipeline_id
        # the server names the first version after the pipeline; the content-named one goes beside it
    else:
        found = kfp_client.list_pipeline_versions(pipeline_id, page_size=1, filter=_filter("display_name", version_name))
        if found.pipeline_versions:
            return pipeline_id, found.pipeline_versions[0].pipeline_version_id, False
    version = _quiet(kfp_client.upload_pipeline_version, str(pkg.path), version_name, pipeline_id=pipeline_id, description=description)
    return pipeline_id, version.pipeline_version_id, True


def experiment_id(kfp_client, name: str, namespace: str | None) -> str:
    return _quiet(kfp_client.create_experiment, name, namespace=namespace).experiment_id  # get or create


def wait(kfp_client, run_id: str, timeout: float, poll: float) -> str:
    """Poll a run until it reaches a final state; print each state change; return the final state."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        run = kfp_client.get_run(run_id)
        state = str(run.state or "PENDING").upper()
        if state != last:
            print(f"  {run_id}: {state}", flush=True)
            last = state
        if state in FINAL_STATES:
            if state != "SUCCEEDED" and getattr(run, "error", None) and getattr(run.error, "message", None):
                print(f"  error: {run.error.message}")
            return state
        if time.monotonic() >= deadline:
            raise DeliveryError(f"run {run_id} still {state} after {timeout:.0f} s (it goes on; --timeout to wait longer)")
        time.sleep(poll)


@dataclass
class Target:
    """Where a run or schedule goes: the pipeline (uploaded version, or the spec inline) and experiment."""

    conn: Connection
    pkg: Package
    kfp_client: object
    experiment_id: str
    pipeline_id: str | None = None
    version_id: str | None = None

    def source(self) -> dict:
        if self.pipeline_id:
            return {"pipeline_id": self.pipeline_id, "version_id": self.version_id}
        return {"pipeline_package_path": str(self.pkg.path)}


def _connect(args, workdir: str) -> Target:
    conn = Connection(host=args.host or (IN_CLUSTER_HOST if args.in_cluster else DEFAULT_HOST),
                      namespace=args.namespace, in_cluster=args.in_cluster, token_file=args.token_file)
    pkg = load_package(args.pipeline, args.package, args.platform_config, workdir)
    if args.caching:  # applied to the package itself: kfp.Client ignores it for an uploaded version
        pkg = with_caching(pkg, args.caching == "on", workdir)
    kfp_client = client(conn)
    exp = experiment_id(kfp_client, args.experiment, args.namespace)
    print(f"kubeflow: {conn.host} experiment {args.experiment} ({exp})")
    target = Target(conn, pkg, kfp_client, exp)
    if not args.no_upload:
        name = args.pipeline_name or f"tagifai-{pkg.name}"
        target.pipeline_id, target.version_id, uploaded = ensure_version(kfp_client, pkg, name, pkg.spec["pipelineInfo"].get("description"))
        print(f"pipeline {name} ({target.pipeline_id}) version {name}-{pkg.digest[:12]} ({target.version_id})"
              f"{' uploaded' if uploaded else ' already there'}")
    return target


def create_run(target: Target, run_name: str, params: dict, args):
    run = _quiet(target.kfp_client.run_pipeline, target.experiment_id, run_name, params=params,
                 service_account=args.service_account, **target.source())
    print(f"run {run_name!r} ({run.run_id}): {_ui(target.conn, 'runs/details/' + run.run_id)}")
    return run


def _api_errors(fn):
    """The API's errors as one line: status, reason and the server's message (never the request)."""
    import functools

    @functools.wraps(fn)
    def wrapper(args) -> int:
        import kfp_server_api
        import urllib3

        try:
            return fn(args)
        except kfp_server_api.ApiException as exc:
            try:
                message = json.loads(exc.body or "{}").get("message") or exc.body
            except ValueError:
                message = exc.body
            raise DeliveryError(f"KFP API answered {exc.status} {exc.reason}: {str(message or '').strip()[:500]}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(f"cannot reach Kubeflow Pipelines at {args.host or DEFAULT_HOST} ({type(exc).__name__}); "
                                "is the cluster up (make kind-up) and --host right?") from None

    return wrapper


@_api_errors
def cmd_submit(args) -> int:
    given = parse_assignments(args.param)
    with tempfile.TemporaryDirectory(prefix="tagifai-submit-") as workdir:
        target = _connect(args, workdir)
        params = parameters(target.pkg.spec, given)
        print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        name = args.run_name or f"{target.pkg.name} {iso(dt.datetime.now(dt.timezone.utc))}"
        run = create_run(target, name, params, args)
    if not args.wait:
        return 0
    state = wait(target.kfp_client, run.run_id, args.timeout, args.poll_interval)
    print(f"{target.pkg.name} {state}")
    return 0 if state == "SUCCEEDED" else 1


@_api_errors
def cmd_schedule(args) -> int:
    cron = kfp_cron(args.cron)
    given = parse_assignments(args.param)
    start = iso(parse_time(args.start)) if args.start else None
    end = iso(parse_time(args.end)) if args.end else None
    with tempfile.TemporaryDirectory(prefix="tagifai-schedule-") as workdir:
        target = _connect(args, workdir)
        params = parameters(target.pkg.spec, given)
        name = args.name or f"tagifai-{target.pkg.name}-schedule"
        existing = target.kfp_client.list_recurring_runs(experiment_id=target.experiment_id, page_size=10,
                                                         filter=_filter("display_name", name))
        for old in existing.recurring_runs or []:
            if not args.replace:
                raise DeliveryError(f"recurring run {name!r} ({old.recurring_run_id}) exists in experiment "
                                    f"{args.experiment}: --replace to replace it, or --name for another")
            target.kfp_client.delete_recurring_run(old.recurring_run_id)
            print(f"deleted recurring run {name!r} ({old.recurring_run_id})")
        job = _quiet(target.kfp_client.create_recurring_run, target.experiment_id, name,
                     description=f"tagifai {target.pkg.name} on cron {args.cron!r} (UTC)", start_time=start,
                     end_time=end, cron_expression=cron, max_concurrency=args.max_concurrency,
                     no_catchup=not args.catchup, params=params, service_account=args.service_account, **target.source())
    print(f"recurring run {name!r} ({job.recurring_run_id}): cron {cron!r} (kfp, seconds first), "
          f"max concurrency {args.max_concurrency}, catch-up {'on' if args.catchup else 'off'}"
          + (f", from {start}" if start else "") + (f" until {end}" if end else ""))
    print(_ui(target.conn, "recurringrun/details/" + job.recurring_run_id))
    return 0


@_api_errors
def cmd_backfill(args) -> int:
    start, end = parse_time(args.start), parse_time(args.end)
    spans = intervals(args.cron, start, end)
    if not spans:
        raise DeliveryError(f"no interval of cron {args.cron!r} fits between {iso(start)} and {iso(end)}")
    if len(spans) > args.max_runs:
        raise DeliveryError(f"{len(spans)} intervals between {iso(start)} and {iso(end)}: more than --max-runs {args.max_runs}")
    given = parse_assignments(args.param)
    if args.dry_run:
        for a, b in spans:
            print(f"{iso(a)} -> {iso(b)}  " + ", ".join(f"{k}={v}" for k, v in render_interval(given, a, b).items()))
        return 0
    with tempfile.TemporaryDirectory(prefix="tagifai-backfill-") as workdir:
        target = _connect(args, workdir)
        print(f"backfill: {len(spans)} interval(s) of {args.cron!r} from {iso(spans[0][0])} to {iso(spans[-1][1])}")
        for i, (a, b) in enumerate(spans, 1):
            params = parameters(target.pkg.spec, render_interval(given, a, b))
            run = create_run(target, f"{target.pkg.name} backfill {iso(a)}", params, args)
            if args.no_wait:
                continue
            state = wait(target.kfp_client, run.run_id, args.timeout, args.poll_interval)
            if state != "SUCCEEDED":
                print(f"backfill stopped at interval {i}/{len(spans)} ({iso(a)}): {state}; later intervals not run")
                return 1
    print(f"backfill: {len(spans)} run(s) {'created' if args.no_wait else 'succeeded'}")
    return 0


def add_parsers(sub, pipeline_names, settings_flags=None) -> None:
    """``submit``, ``schedule`` and ``backfill`` on the ``tagifai`` parser."""

    def common(p):
        p.add_argument("pipeline", nargs="?", choices=pipeline_names, help="default continual, or the pipeline in --package")
        p.add_argument("--package", help="a compiled package to send (default: compile the pipeline now for Kubeflow)")
        p.add_argument("--platform-config", help="per-step settings file when compiling (default pipelines/platform.yaml)")
        p.add_argument("--registry", help="image registry (TAGIFAI_REGISTRY)")
        p.add_argument("--tag", help="image tag (TAGIFAI_IMAGE_TAG)")
        p.add_argument("--host", default=os.environ.get("TAGIFAI_KFP_HOST"),
                       help=f"KFP API or UI URL (TAGIFAI_KFP_HOST; default {DEFAULT_HOST}, in-cluster {IN_CLUSTER_HOST})")
        p.add_argument("--token-file", help="file holding a bearer token (else TAGIFAI_KFP_TOKEN_FILE, else TAGIFAI_KFP_TOKEN)")
        p.add_argument("--in-cluster", action="store_true", help=f"authenticate with the pod's projected service-account token ({SA_TOKEN_PATH})")
        p.add_argument("--namespace", default=os.environ.get("TAGIFAI_KFP_NAMESPACE"), help="profile namespace (multi-user KFP only)")
        p.add_argument("--experiment", default=os.environ.get("TAGIFAI_KFP_EXPERIMENT", "tagifai"))
        p.add_argument("--pipeline-name", help="name of the uploaded pipeline (default tagifai-<pipeline>)")
        p.add_argument("--no-upload", action="store_true", help="send the spec inline instead of uploading a pipeline version")
        p.add_argument("--param", action="append", metavar="KEY=VALUE", help="a pipeline parameter (repeat)")
        p.add_argument("--service-account", default=os.environ.get("TAGIFAI_KFP_SERVICE_ACCOUNT"), help="Kubernetes service account of the run's pods")
        p.add_argument("--caching", choices=("on", "off"), help="override every step's compiled caching option (pipelines/platform.yaml)")

    def waiting(p):
        p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for a run (default 6 h)")
        p.add_argument("--poll-interval", type=float, default=10.0, help=argparse.SUPPRESS)

    p = sub.add_parser("submit", help="upload a pipeline (version) to Kubeflow Pipelines and run it")
    common(p)
    p.add_argument("--run-name")
    p.add_argument("--wait", action="store_true", help="wait for the run and exit 1 unless it succeeds")
    waiting(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("schedule", help="create a recurring run on Kubeflow Pipelines")
    common(p)
    p.add_argument("--cron", required=True, help='5-field cron in UTC, e.g. "0 6 * * *" (daily at 06:00)')
    p.add_argument("--name", help="recurring run name (default tagifai-<pipeline>-schedule)")
    p.add_argument("--start", help="first time the schedule may fire (ISO 8601, UTC)")
    p.add_argument("--end", help="last time the schedule may fire (ISO 8601, UTC)")
    p.add_argument("--catchup", action="store_true", help="run every interval missed since --start (default: only the latest)")
    p.add_argument("--max-concurrency", type=int, default=1)
    p.add_argument("--replace", action="store_true", help="delete a recurring run of the same name first")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("backfill", help="run past intervals of a cron, oldest first, one at a time")
    common(p)
    p.add_argument("--start", required=True, help="ISO 8601 (UTC)")
    p.add_argument("--end", required=True, help="ISO 8601 (UTC)")
    p.add_argument("--cron", default="0 0 * * *", help='5-field cron of the intervals (default daily: "0 0 * * *")')
    p.add_argument("--max-runs", type=int, default=100)
    p.add_argument("--no-wait", action="store_true", help="create every run at once instead of one after the other")
    p.add_argument("--dry-run", action="store_true", help="list the intervals and parameters, send nothing")
    waiting(p)
    p.set_defaults(func=cmd_backfill)
