"""Kubeflow Pipelines delivery: ``tagifai submit``, ``tagifai schedule``, ``tagifai backfill``.

Everything goes through ``kfp.Client`` (the KFP v2beta1 REST API):

- submit: upload the compiled pipeline, or a new version of it (versions are named by the package's
  content hash, so submitting the same YAML twice reuses its version; ``--version-name`` names a release,
  and reusing that name for other content is an error), get or create the experiment, create a run with
  typed parameters, and with ``--wait`` poll it to its final state.
- schedule: a recurring run on a cron (UTC), max concurrency 1, no catch-up unless ``--catchup``.
- backfill: one run per past interval of a cron between ``--start`` and ``--end``, oldest first,
  each waited for before the next (``{start}``/``{end}`` in parameter values are filled in).
- runs: ``tagifai runs list --kubeflow``, ``runs get|cancel|retry RUN_ID`` (:func:`add_run_parsers`): the runs
  on the KFP host, one run's state and pipeline version, terminate, retry a failed run.

The package and its parameters come from :mod:`tagifai_cli.options` (shared with ``tagifai vertex``); the
host, namespace, experiment and service account from the flags, else the settings (``TAGIFAI_KFP_*``).

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
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import SecretStr

from tagifai_cli.commands import help_of
from tagifai_cli.options import (
    Package,
    add_package_arguments,
    given_parameters,
    package_from,
    pipeline_parameters,
    settings_from,
)
from tagifai_cli.packaging import (
    DeliveryError,
    intervals,
    iso,
    kfp_cron,
    package_digest,
    parse_time,
    read_documents,
    render_interval,
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
    token: SecretStr = field(default_factory=lambda: SecretStr(""), repr=False)

    def __repr__(self) -> str:  # no token here, ever
        return f"Connection(host={self.host!r}, namespace={self.namespace!r}, in_cluster={self.in_cluster})"


def connection(args, settings) -> Connection:
    """Where and how to connect: the flags, else the settings (TAGIFAI_KFP_*), else the kind cluster's UI."""
    return Connection(
        host=args.host or settings.kfp_host or (IN_CLUSTER_HOST if args.in_cluster else DEFAULT_HOST),
        namespace=args.namespace or settings.kfp_namespace or None,
        in_cluster=args.in_cluster,
        token_file=args.token_file or settings.kfp_token_file or None,
        token=settings.kfp_token,
    )


def _token(conn: Connection) -> str | None:
    """The bearer token: the token file's content, else the token setting; read at the moment of use."""
    path = conn.token_file
    if path:
        try:
            token = Path(path).expanduser().read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise DeliveryError(f"token file {path}: {exc.strerror}") from None
        if not token:
            raise DeliveryError(f"token file {path} is empty")
        return token
    return conn.token.get_secret_value() or None


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
            # KF_PIPELINES_SA_TOKEN_PATH, else the default path
            kwargs["credentials"] = ServiceAccountTokenVolumeCredentials()
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


def parameters(spec: dict, given: dict) -> dict:
    """Typed run parameters; the steps' warehouse and MLflow come from the cluster's ConfigMap unless given."""
    return pipeline_parameters(spec, given)


#: Written into the description of every version tagifai uploads: how a reused ``--version-name`` is checked.
CONTENT_MARK = "tagifai content sha256:"


def default_version_name(pipeline_name: str, pkg: Package) -> str:
    return f"{pipeline_name}-{pkg.digest[:12]}"


def _version_description(description: str | None, pkg: Package) -> str:
    return f"{description or ''} [{CONTENT_MARK}{pkg.digest}]".strip()


def _same_content(version, pkg: Package, name: str) -> None:
    """Refuse a version named ``name`` that holds other content than ``pkg`` (KFP keeps a name once)."""
    text = str(getattr(version, "description", "") or "")
    if CONTENT_MARK + pkg.digest in text:
        return
    if CONTENT_MARK in text:
        raise DeliveryError(
            f"pipeline version {name!r} exists with other content (sha256 "
            f"{text.split(CONTENT_MARK, 1)[1][:12]}..., this package {pkg.digest[:12]}...): a version name holds "
            "one package; give another --version-name"
        )
    raise DeliveryError(
        f"pipeline version {name!r} exists and was not uploaded by tagifai (no content digest to compare): "
        "give another --version-name"
    )


def ensure_version(
    kfp_client,
    pkg: Package,
    pipeline_name: str,
    description: str | None = None,
    version_name: str | None = None,
) -> tuple[str, str, bool]:
    """(pipeline id, version id, uploaded?): the pipeline, and a version named ``version_name`` (default: by the
    package's hash). A version of that name is reused when it holds this package, else an error."""
    named = bool(version_name)
    version_name = version_name or default_version_name(pipeline_name, pkg)
    pipeline_id = kfp_client.get_pipeline_id(pipeline_name)
    if pipeline_id is None:
        uploaded = _quiet(
            kfp_client.upload_pipeline, str(pkg.path), pipeline_name=pipeline_name, description=description
        )
        pipeline_id = uploaded.pipeline_id
        # the server names the first version after the pipeline; the content-named one goes beside it
    else:
        found = kfp_client.list_pipeline_versions(
            pipeline_id, page_size=1, filter=_filter("display_name", version_name)
        )
        if found.pipeline_versions:
            if named:  # the default name is the content's: the same name is the same content
                _same_content(found.pipeline_versions[0], pkg, version_name)
            return pipeline_id, found.pipeline_versions[0].pipeline_version_id, False
    version = _quiet(
        kfp_client.upload_pipeline_version,
        str(pkg.path),
        version_name,
        pipeline_id=pipeline_id,
        description=_version_description(description, pkg),
    )
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
            raise DeliveryError(
                f"run {run_id} still {state} after {timeout:.0f} s (it goes on; --timeout to wait longer)"
            )
        time.sleep(poll)


@dataclass
class Target:
    """Where a run or schedule goes: the pipeline (uploaded version, or the spec inline) and experiment."""

    conn: Connection
    pkg: Package
    kfp_client: object
    experiment: str
    experiment_id: str
    service_account: str | None = None
    pipeline_id: str | None = None
    version_id: str | None = None

    def source(self) -> dict:
        if self.pipeline_id:
            return {"pipeline_id": self.pipeline_id, "version_id": self.version_id}
        return {"pipeline_package_path": str(self.pkg.path)}


def _connect(args, settings, workdir: str) -> Target:
    if getattr(args, "version_name", None) and args.no_upload:
        raise DeliveryError("--version-name names an uploaded pipeline version: not with --no-upload")
    conn = connection(args, settings)
    pkg = package_from(args, "kubeflow", workdir, settings)
    if args.caching:  # applied to the package itself: kfp.Client ignores it for an uploaded version
        pkg = with_caching(pkg, args.caching == "on", workdir)
    kfp_client = client(conn)
    experiment = args.experiment or settings.kfp_experiment
    exp = experiment_id(kfp_client, experiment, conn.namespace)
    print(f"kubeflow: {conn.host} experiment {experiment} ({exp})")
    target = Target(
        conn,
        pkg,
        kfp_client,
        experiment,
        exp,
        service_account=args.service_account or settings.kfp_service_account or None,
    )
    if not args.no_upload:
        name = args.pipeline_name or f"tagifai-{pkg.name}"
        description = pkg.spec["pipelineInfo"].get("description")
        given = getattr(args, "version_name", None)
        version_name = given or default_version_name(name, pkg)
        target.pipeline_id, target.version_id, uploaded = ensure_version(kfp_client, pkg, name, description, given)
        print(
            f"pipeline {name} ({target.pipeline_id}) version {version_name} ({target.version_id})"
            f"{' uploaded' if uploaded else ' already there'}"
        )
    return target


def create_run(target: Target, run_name: str, params: dict):
    run = _quiet(
        target.kfp_client.run_pipeline,
        target.experiment_id,
        run_name,
        params=params,
        service_account=target.service_account,
        **target.source(),
    )
    print(f"run {run_name!r} ({run.run_id}): {_ui(target.conn, 'runs/details/' + run.run_id)}")
    return run


def _api_errors(fn):
    """Run a command with the settings (flags over environment); the API's errors as one line: status,
    reason and the server's message (never the request)."""
    import functools

    @functools.wraps(fn)
    def wrapper(args) -> int:
        import kfp_server_api
        import urllib3

        settings = settings_from(args, export_secrets=False)
        try:
            return fn(args, settings)
        except kfp_server_api.ApiException as exc:
            try:
                message = json.loads(exc.body or "{}").get("message") or exc.body
            except ValueError:
                message = exc.body
            message = str(message or "").strip()[:500]
            raise DeliveryError(f"KFP API answered {exc.status} {exc.reason}: {message}") from None
        except urllib3.exceptions.HTTPError as exc:
            raise DeliveryError(
                f"cannot reach Kubeflow Pipelines at {connection(args, settings).host} "
                f"({type(exc).__name__}); is the cluster up (make kind-up) and --host right?"
            ) from None

    return wrapper


@_api_errors
def cmd_submit(args, settings) -> int:
    given = given_parameters(args)
    with tempfile.TemporaryDirectory(prefix="tagifai-submit-") as workdir:
        target = _connect(args, settings, workdir)
        params = parameters(target.pkg.spec, given)
        print("parameters: " + ", ".join(f"{k}={v}" for k, v in params.items()))
        name = args.run_name or f"{target.pkg.name} {iso(dt.datetime.now(dt.UTC))}"
        run = create_run(target, name, params)
    if not args.wait:
        return 0
    state = wait(target.kfp_client, run.run_id, args.timeout, args.poll_interval)
    print(f"{target.pkg.name} {state}")
    return 0 if state == "SUCCEEDED" else 1


@_api_errors
def cmd_schedule(args, settings) -> int:
    cron = kfp_cron(args.cron)
    given = given_parameters(args)
    start = iso(parse_time(args.start)) if args.start else None
    end = iso(parse_time(args.end)) if args.end else None
    with tempfile.TemporaryDirectory(prefix="tagifai-schedule-") as workdir:
        target = _connect(args, settings, workdir)
        kfp_client = target.kfp_client
        params = parameters(target.pkg.spec, given)
        name = args.name or f"tagifai-{target.pkg.name}-schedule"
        existing = kfp_client.list_recurring_runs(
            experiment_id=target.experiment_id, page_size=10, filter=_filter("display_name", name)
        )
        for old in existing.recurring_runs or []:
            if not args.replace:
                raise DeliveryError(
                    f"recurring run {name!r} ({old.recurring_run_id}) exists in experiment "
                    f"{target.experiment}: --replace to replace it, or --name for another"
                )
            kfp_client.delete_recurring_run(old.recurring_run_id)
            print(f"deleted recurring run {name!r} ({old.recurring_run_id})")
        job = _quiet(
            kfp_client.create_recurring_run,
            target.experiment_id,
            name,
            description=f"tagifai {target.pkg.name} on cron {args.cron!r} (UTC)",
            start_time=start,
            end_time=end,
            cron_expression=cron,
            max_concurrency=args.max_concurrency,
            no_catchup=not args.catchup,
            params=params,
            service_account=target.service_account,
            **target.source(),
        )
    print(
        f"recurring run {name!r} ({job.recurring_run_id}): cron {cron!r} (kfp, seconds first), "
        f"max concurrency {args.max_concurrency}, catch-up {'on' if args.catchup else 'off'}"
        + (f", from {start}" if start else "")
        + (f" until {end}" if end else "")
    )
    print(_ui(target.conn, "recurringrun/details/" + job.recurring_run_id))
    return 0


@_api_errors
def cmd_backfill(args, settings) -> int:
    start, end = parse_time(args.start), parse_time(args.end)
    spans = intervals(args.cron, start, end)
    if not spans:
        raise DeliveryError(f"no interval of cron {args.cron!r} fits between {iso(start)} and {iso(end)}")
    if len(spans) > args.max_runs:
        raise DeliveryError(
            f"{len(spans)} intervals between {iso(start)} and {iso(end)}: more than --max-runs {args.max_runs}"
        )
    given = given_parameters(args)
    if args.dry_run:
        for a, b in spans:
            print(f"{iso(a)} -> {iso(b)}  " + ", ".join(f"{k}={v}" for k, v in render_interval(given, a, b).items()))
        return 0
    with tempfile.TemporaryDirectory(prefix="tagifai-backfill-") as workdir:
        target = _connect(args, settings, workdir)
        print(f"backfill: {len(spans)} interval(s) of {args.cron!r} from {iso(spans[0][0])} to {iso(spans[-1][1])}")
        for i, (a, b) in enumerate(spans, 1):
            params = parameters(target.pkg.spec, render_interval(given, a, b))
            run = create_run(target, f"{target.pkg.name} backfill {iso(a)}", params)
            if args.no_wait:
                continue
            state = wait(target.kfp_client, run.run_id, args.timeout, args.poll_interval)
            if state != "SUCCEEDED":
                print(f"backfill stopped at interval {i}/{len(spans)} ({iso(a)}): {state}; later intervals not run")
                return 1
    print(f"backfill: {len(spans)} run(s) {'created' if args.no_wait else 'succeeded'}")
    return 0


# --- runs on the host: tagifai runs list --kubeflow | get | cancel | retry -----------------------------

#: States from which KFP retries a run (the failed tasks run again, in the same run).
RETRYABLE_STATES = {"FAILED", "CANCELED"}


def _state(run) -> str:
    return str(getattr(run, "state", None) or "PENDING").upper()


def _when(value) -> str:
    """A run's time; KFP answers the epoch for "not yet"."""
    if value is None:
        return "-"
    if isinstance(value, dt.datetime):
        return "-" if value.year <= 1970 else iso(value)
    return str(value)


def _get_run(kfp_client, run_id: str, conn: Connection):
    """The run, or one line naming the unknown id."""
    import kfp_server_api

    try:
        return kfp_client.get_run(run_id)
    except kfp_server_api.ApiException as exc:
        if exc.status == 404:
            raise DeliveryError(
                f"no run {run_id!r} on {conn.host}: `tagifai runs list --kubeflow` lists them"
            ) from None
        raise


class _Names:
    """Pipeline and version names by id, looked up once (an id that cannot be read stays an id)."""

    def __init__(self, kfp_client):
        self.kfp_client = kfp_client
        self._cache: dict = {}

    def _lookup(self, key, fn, *args) -> str | None:
        if key not in self._cache:
            try:
                self._cache[key] = getattr(fn(*args), "display_name", None)
            except Exception:  # noqa: BLE001 - a name is a courtesy; the id is printed anyway
                self._cache[key] = None
        return self._cache[key]

    def pipeline(self, pipeline_id: str) -> str | None:
        return self._lookup(("p", pipeline_id), self.kfp_client.get_pipeline, pipeline_id)

    def version(self, pipeline_id: str, version_id: str) -> str | None:
        return self._lookup(("v", version_id), self.kfp_client.get_pipeline_version, pipeline_id, version_id)


def _reference(run) -> tuple[str | None, str | None]:
    ref = getattr(run, "pipeline_version_reference", None)
    if ref is not None:
        return ref.pipeline_id, ref.pipeline_version_id
    return None, getattr(run, "pipeline_version_id", None)


def _pipeline_text(run, names: _Names) -> str:
    pipeline_id, version_id = _reference(run)
    if not version_id:
        return "inline spec (--no-upload)" if getattr(run, "pipeline_spec", None) else "-"
    if not pipeline_id:
        return f"version {version_id}"
    pipeline = names.pipeline(pipeline_id) or pipeline_id
    version = names.version(pipeline_id, version_id) or version_id
    return f"{pipeline} version {version}"


def _run_dict(run, names: _Names) -> dict:
    pipeline_id, version_id = _reference(run)
    error = getattr(run, "error", None)
    return {
        "run_id": run.run_id,
        "name": run.display_name,
        "state": _state(run),
        "experiment_id": run.experiment_id,
        "created_at": _when(run.created_at),
        "finished_at": _when(run.finished_at),
        "pipeline": names.pipeline(pipeline_id) if pipeline_id else None,
        "pipeline_version": names.version(pipeline_id, version_id) if pipeline_id and version_id else None,
        "pipeline_id": pipeline_id,
        "pipeline_version_id": version_id,
        "error": getattr(error, "message", None) if error is not None else None,
    }


def _find_experiment(kfp_client, name: str, conn: Connection) -> str:
    found = kfp_client.list_experiments(page_size=2, filter=_filter("display_name", name), namespace=conn.namespace)
    if not found.experiments:
        raise DeliveryError(f"no experiment {name!r} on {conn.host}")
    return found.experiments[0].experiment_id


def _find_pipeline(kfp_client, name: str, conn: Connection) -> str:
    for candidate in (name, f"tagifai-{name}"):
        pipeline_id = kfp_client.get_pipeline_id(candidate)
        if pipeline_id:
            return pipeline_id
    raise DeliveryError(f"no pipeline {name!r} (nor tagifai-{name}) on {conn.host}")


@_api_errors
def cmd_runs_list(args, settings) -> int:
    """The latest runs on the host, newest first: of an experiment, of a pipeline (filtered here: the API
    filters runs on their own fields only)."""
    conn = connection(args, settings)
    kfp_client = client(conn)
    experiment = _find_experiment(kfp_client, args.experiment, conn) if args.experiment else None
    pipeline_id = _find_pipeline(kfp_client, args.pipeline, conn) if args.pipeline else None
    runs, token, pages = [], "", 0
    while len(runs) < args.limit and pages < 50:
        page = kfp_client.list_runs(
            page_token=token,
            page_size=min(100, max(args.limit, 10)),
            sort_by="created_at desc",
            experiment_id=experiment,
            namespace=conn.namespace,
        )
        pages += 1
        runs += [r for r in page.runs or [] if pipeline_id is None or _reference(r)[0] == pipeline_id]
        token = page.next_page_token
        if not token:
            break
    runs = runs[: args.limit]
    names = _Names(kfp_client)
    rows = [_run_dict(r, names) for r in runs]
    if getattr(args, "json", False):
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'run id':<38}{'state':<11}{'created':<22}{'finished':<22}{'name':<34}pipeline")
    for row, run in zip(rows, runs, strict=True):
        print(
            f"{row['run_id']:<38}{row['state']:<11}{row['created_at']:<22}{row['finished_at']:<22}"
            f"{(row['name'] or '-')[:33]:<34}{_pipeline_text(run, names)}"
        )
    if not runs:
        print("(no runs)")
    return 0


@_api_errors
def cmd_runs_get(args, settings) -> int:
    conn = connection(args, settings)
    kfp_client = client(conn)
    run = _get_run(kfp_client, args.run_id, conn)
    names = _Names(kfp_client)
    row = _run_dict(run, names)
    params = getattr(getattr(run, "runtime_config", None), "parameters", None) or {}
    if getattr(args, "json", False):
        print(json.dumps({**row, "parameters": params}, indent=2, default=str))
        return 0
    print(f"run        {row['run_id']} ({row['name']})")
    print(f"state      {row['state']}")
    print(f"experiment {row['experiment_id'] or '-'}")
    print(f"created    {row['created_at']}")
    print(f"finished   {row['finished_at']}")
    print(f"pipeline   {_pipeline_text(run, names)}")
    if params:
        print("parameters " + ", ".join(f"{k}={v}" for k, v in params.items()))
    if row["error"]:
        print(f"error      {row['error']}")
    print(_ui(conn, "runs/details/" + row["run_id"]))
    return 0


@_api_errors
def cmd_runs_cancel(args, settings) -> int:
    conn = connection(args, settings)
    kfp_client = client(conn)
    run = _get_run(kfp_client, args.run_id, conn)
    state = _state(run)
    if state in ("CANCELED", "CANCELING"):
        print(f"run {args.run_id} is {state} already")
        return 0
    if state in FINAL_STATES:
        raise DeliveryError(f"run {args.run_id} is {state}: nothing to cancel")
    kfp_client.terminate_run(args.run_id)
    print(f"run {args.run_id}: cancel requested (was {state}); its pods are stopped")
    if not args.wait:
        return 0
    final = wait(kfp_client, args.run_id, args.timeout, args.poll_interval)
    return 0 if final == "CANCELED" else 1


@_api_errors
def cmd_runs_retry(args, settings) -> int:
    conn = connection(args, settings)
    kfp_client = client(conn)
    run = _get_run(kfp_client, args.run_id, conn)
    state = _state(run)
    if state not in RETRYABLE_STATES:
        raise DeliveryError(
            f"run {args.run_id} is {state}: only a {' or '.join(sorted(RETRYABLE_STATES))} run can be retried"
            + ("; `tagifai submit` starts a new one" if state in FINAL_STATES else "")
        )
    # kfp 2.17's Client has no retry method: its generated RunServiceApi sends POST /runs/{id}:retry
    kfp_client._run_api.run_service_retry_run(run_id=args.run_id)
    print(f"run {args.run_id}: retry requested (was {state}); the failed tasks run again in the same run")
    print(_ui(conn, "runs/details/" + args.run_id))
    if not args.wait:
        return 0
    final = wait(kfp_client, args.run_id, args.timeout, args.poll_interval)
    return 0 if final == "SUCCEEDED" else 1


def connection_arguments(p) -> None:
    """--host, --token-file, --in-cluster, --namespace: where and as whom to reach the KFP API."""
    p.add_argument(
        "--host", help=f"KFP API or UI URL (TAGIFAI_KFP_HOST; default {DEFAULT_HOST}, in-cluster {IN_CLUSTER_HOST})"
    )
    p.add_argument(
        "--token-file", help="file holding a bearer token (else TAGIFAI_KFP_TOKEN_FILE, else TAGIFAI_KFP_TOKEN)"
    )
    p.add_argument(
        "--in-cluster",
        action="store_true",
        help=f"authenticate with the pod's projected service-account token ({SA_TOKEN_PATH})",
    )
    p.add_argument("--namespace", help="profile namespace (TAGIFAI_KFP_NAMESPACE; multi-user KFP only)")


def add_run_parsers(rsub) -> None:
    """``runs get|cancel|retry RUN_ID`` and the Kubeflow options of ``runs list`` (``tagifai_cli.runs``)."""

    def waiting(p, what: str):
        p.add_argument("--wait", action="store_true", help=f"wait until the run {what}; exit 1 otherwise")
        p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait (default 6 h)")
        p.add_argument("--poll-interval", type=float, default=10.0, help=argparse.SUPPRESS)

    p = rsub.add_parser("get", help="a run on Kubeflow Pipelines: state, times, pipeline version, error")
    p.add_argument("run_id")
    connection_arguments(p)
    p.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the run as JSON")
    p.set_defaults(func=cmd_runs_get)

    p = rsub.add_parser("cancel", help="terminate a run on Kubeflow Pipelines")
    p.add_argument("run_id")
    connection_arguments(p)
    waiting(p, "is CANCELED")
    p.set_defaults(func=cmd_runs_cancel)

    p = rsub.add_parser("retry", help="retry a FAILED (or CANCELED) run on Kubeflow Pipelines: its failed tasks")
    p.add_argument("run_id")
    connection_arguments(p)
    waiting(p, "SUCCEEDED")
    p.set_defaults(func=cmd_runs_retry)


def add_list_arguments(p) -> None:
    """The Kubeflow options of ``tagifai runs list``."""
    p.add_argument("--kubeflow", action="store_true", help="list the runs on Kubeflow Pipelines (implied by --host)")
    connection_arguments(p)
    p.add_argument("--experiment", help="only the runs of this KFP experiment")
    p.add_argument("--pipeline", help="only the runs of this pipeline (KFP name, or tagifai-NAME)")
    p.add_argument("--limit", type=int, default=20, help="at most this many runs, newest first (default 20)")


def add_parsers(sub, pipeline_names=None, settings_flags=None) -> None:
    """``submit``, ``schedule`` and ``backfill`` on the ``tagifai`` parser (``pipeline_names``: default all)."""
    if pipeline_names is None:
        from pipelines import NAMES

        pipeline_names = NAMES

    def common(p):
        add_package_arguments(p, pipeline_names, "kubeflow")
        connection_arguments(p)
        p.add_argument("--experiment", help="KFP experiment (TAGIFAI_KFP_EXPERIMENT; default tagifai)")
        p.add_argument("--pipeline-name", help="name of the uploaded pipeline (default tagifai-<pipeline>)")
        p.add_argument(
            "--version-name",
            help="name of the pipeline version, e.g. a release (default <pipeline-name>-<content hash>); "
            "a name that exists must hold the same package",
        )
        p.add_argument(
            "--no-upload", action="store_true", help="send the spec inline instead of uploading a pipeline version"
        )
        p.add_argument(
            "--service-account", help="Kubernetes service account of the run's pods (TAGIFAI_KFP_SERVICE_ACCOUNT)"
        )

    def waiting(p):
        p.add_argument("--timeout", type=float, default=6 * 3600, help="seconds to wait for a run (default 6 h)")
        p.add_argument("--poll-interval", type=float, default=10.0, help=argparse.SUPPRESS)

    p = sub.add_parser("submit", help=help_of("submit"))
    common(p)
    p.add_argument("--run-name")
    p.add_argument("--wait", action="store_true", help="wait for the run and exit 1 unless it succeeds")
    waiting(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("schedule", help=help_of("schedule"))
    common(p)
    p.add_argument("--cron", required=True, help='5-field cron in UTC, e.g. "0 6 * * *" (daily at 06:00)')
    p.add_argument("--name", help="recurring run name (default tagifai-<pipeline>-schedule)")
    p.add_argument("--start", help="first time the schedule may fire (ISO 8601, UTC)")
    p.add_argument("--end", help="last time the schedule may fire (ISO 8601, UTC)")
    p.add_argument(
        "--catchup", action="store_true", help="run every interval missed since --start (default: only the latest)"
    )
    p.add_argument("--max-concurrency", type=int, default=1)
    p.add_argument("--replace", action="store_true", help="delete a recurring run of the same name first")
    p.set_defaults(func=cmd_schedule)

    p = sub.add_parser("backfill", help=help_of("backfill"))
    common(p)
    p.add_argument("--start", required=True, help="ISO 8601 (UTC)")
    p.add_argument("--end", required=True, help="ISO 8601 (UTC)")
    p.add_argument("--cron", default="0 0 * * *", help='5-field cron of the intervals (default daily: "0 0 * * *")')
    p.add_argument("--max-runs", type=int, default=100)
    p.add_argument("--no-wait", action="store_true", help="create every run at once instead of one after the other")
    p.add_argument("--dry-run", action="store_true", help="list the intervals and parameters, send nothing")
    waiting(p)
    p.set_defaults(func=cmd_backfill)
