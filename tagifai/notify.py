"""Failure notices: the run summary the ``notify`` exit task writes and posts to a webhook.

Every pipeline ends with the ``notify`` step as the exit task of a ``dsl.ExitHandler`` (components/notify.py),
so it runs whether the body succeeded or failed. It builds a summary of the run::

    {"pipeline": "mlops", "run": "<job name or id>", "status": "FAILED", "failed_task": "train",
     "error": "<the backend's message>", "metrics": {"version": 3, "f1": 0.81, "outcome": "promoted", ...},
     "finished_at": "2026-12-02T07:00:00+00:00", "webhook": "sent"}

writes it as JSON and Markdown, and posts it to a webhook when one is configured: a Slack-compatible body
``{"text": "<the summary in Slack's markdown>"}`` plus the summary's fields.

**The webhook URL is a secret** (a Slack incoming-webhook URL is its own credential): it is never a pipeline
parameter, never logged and never written to the summary. It comes from, in this order:

1. a file, ``TAGIFAI_NOTIFY_WEBHOOK_FILE`` (default ``/var/secrets/notify/webhook-url``: the Kubernetes Secret
   ``tagifai-notify`` mounted as a volume; a missing file means no webhook from it);
2. ``TAGIFAI_NOTIFY_WEBHOOK_URL`` (a ``SecretStr`` setting: a Kubernetes Secret as an environment variable);
3. ``TAGIFAI_NOTIFY_WEBHOOK_SECRET``, a Secret Manager version (``projects/P/secrets/S/versions/latest``) read
   with google-cloud-secret-manager (Vertex AI: the pipeline's service account needs
   ``roles/secretmanager.secretAccessor`` on it).

**Nothing here fails the step**: a metrics lookup that fails is noted in the summary (``metrics_error``); a
webhook that cannot be reached is retried (3 times, with backoff, on connection errors and 5xx) and then noted
as ``webhook: failed (<reason>)``; the reason names the error class or HTTP status, never the URL.

**Metrics** come from the MLflow registry: training does not tag its runs with the pipeline run, so the summary
reads the version behind the alias ``challenger`` (the version the last evaluate step looked at), else
``champion``: its version, its f1 (the evaluate step's ``tagifai.eval_f1`` tag, else its run's ``f1``) and the
evaluate step's decision (``tagifai.decision``). An ``http(s)://`` tracking server is read through MLflow's REST
API with the standard library (the notify image has no mlflow); the embedded SQLite store by reading its tables
read-only with the standard library (no MLflow import, about 2 s of every run; a store of another schema falls
back to the client); any other store through the mlflow client when it is installed, else it is skipped.

No kfp here: the component turns ``dsl.PipelineTaskFinalStatus`` into plain arguments.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from tagifai.secrets import read_secret_manager  # moved to tagifai.secrets; re-exported here

log = logging.getLogger(__name__)

DEFAULT_WEBHOOK_FILE = "/var/secrets/notify/webhook-url"
#: The aliases whose version the summary reports, in order of preference.
ALIASES = ("challenger", "champion")
#: The model version tags the evaluate step writes (tagifai.workflows / tagifai.registry).
EVAL_F1_TAG = "tagifai.eval_f1"
DECISION_TAG = "tagifai.decision"
#: A state kfp.local names its exit handler's job ``local-pipeline-<task>``; the run folder names the run better.
_LOCAL_JOB_PREFIX = "local-pipeline-"
_RETRY_STATUSES = range(500, 600)


# --------------------------------------------------------------------------- the webhook URL


def resolve_webhook(settings: Any, secret_client: Any = None) -> tuple[str, str]:
    """``(url, source)``: the webhook URL and where it came from (``file``, ``env``, ``secret-manager``).

    ``("", "none")`` when none is configured; ``("", "<source>: failed (<reason>)")`` when one is configured
    but cannot be read. Never raises; the reason never holds the URL.
    """
    path = str(getattr(settings, "notify_webhook_file", "") or "")
    if path:
        try:
            url = Path(path).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            url = ""
        except OSError as exc:
            return "", f"file: failed ({type(exc).__name__})"
        if url:
            return url, "file"
    secret = getattr(settings, "notify_webhook_url", None)
    url = secret.get_secret_value().strip() if secret is not None else ""
    if url:
        return url, "env"
    name = str(getattr(settings, "notify_webhook_secret", "") or "").strip()
    if name:
        try:
            url = read_secret_manager(name, client=secret_client)
        except Exception as exc:  # any client error: recorded, never raised
            return "", f"secret-manager: failed ({type(exc).__name__})"
        if url:
            return url, "secret-manager"
        return "", "secret-manager: failed (empty secret)"
    return "", "none"


# --------------------------------------------------------------------------- the run


def failed_tasks(error_message: str | None, run_dir: str | Path | None = None, exclude: str = "") -> list[str]:
    """The tasks that failed, as far as can be told.

    From the backend's error message when it lists them (``... failed tasks are: [train, evaluate]``), else
    from a local run folder (kfp.local: a task that failed has its output folder but no
    ``executor_output.json``; a task without output artifacts leaves no folder and cannot be named).
    ``exclude``: the asking task's own folder (it has not finished yet).
    """
    if error_message:
        listed = re.search(r"failed tasks? (?:are|is)\s*:?\s*\[([^\]]*)\]", error_message, flags=re.IGNORECASE)
        if listed:
            names = [n.strip(" '\"") for n in listed.group(1).split(",")]
            return [n for n in names if n]
    if run_dir is not None:
        folder = Path(run_dir)
        if folder.is_dir():
            return sorted(
                p.name
                for p in folder.iterdir()
                if p.is_dir() and p.name != exclude and not (p / "executor_output.json").exists()
            )
    return []


def run_name(job_resource_name: str, run_dir: str | Path | None = None) -> str:
    """The run's name: the job resource name, or the local run folder's name under kfp.local."""
    if (not job_resource_name or job_resource_name.startswith(_LOCAL_JOB_PREFIX)) and run_dir is not None:
        return Path(run_dir).name
    return job_resource_name or "unknown"


def build_summary(
    pipeline: str,
    run: str,
    status: str,
    failed_task: str = "",
    error: str = "",
    metrics: Mapping[str, Any] | None = None,
    metrics_error: str = "",
    finished_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The run summary dict (``webhook`` is filled in by :func:`notify`)."""
    finished = (finished_at or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds")
    summary: dict[str, Any] = {
        "pipeline": pipeline,
        "run": run,
        "status": (status or "UNKNOWN").upper(),
        "failed_task": failed_task or None,
        "error": error or None,
        "metrics": dict(metrics or {}),
        "finished_at": finished,
    }
    if metrics_error:
        summary["metrics_error"] = metrics_error
    return summary


_ICONS = {"SUCCEEDED": ":white_check_mark:", "FAILED": ":x:", "CANCELLED": ":no_entry_sign:"}


def _metrics_line(metrics: Mapping[str, Any]) -> str:
    parts = []
    if metrics.get("version") is not None:
        parts.append(f"version {metrics['version']}" + (f" (@{metrics['alias']})" if metrics.get("alias") else ""))
    if metrics.get("f1") is not None:
        parts.append(f"f1 {float(metrics['f1']):.4f}")
    if metrics.get("outcome"):
        parts.append(f"outcome {metrics['outcome']}")
    return ", ".join(parts)


def to_text(summary: Mapping[str, Any]) -> str:
    """A few lines in Slack's markdown (``*bold*``, backticks): the webhook's ``text``."""
    icon = _ICONS.get(summary["status"], ":grey_question:")
    lines = [f"{icon} *{summary['pipeline']}* {summary['status']} (run `{summary['run']}`)"]
    if summary.get("failed_task"):
        lines.append(f"failed task: `{summary['failed_task']}`")
    if summary.get("error"):
        lines.append(f"error: {summary['error']}")
    metrics = _metrics_line(summary.get("metrics") or {})
    if metrics:
        lines.append(f"model: {metrics}")
    if summary.get("metrics_error"):
        lines.append(f"metrics: {summary['metrics_error']}")
    lines.append(f"finished at {summary['finished_at']}")
    return "\n".join(lines)


def to_markdown(summary: Mapping[str, Any]) -> str:
    """The summary as a Markdown page (the step's ``summary`` artifact)."""
    lines = [f"# {summary['pipeline']}: {summary['status']}", "", "| | |", "|---|---|"]
    for key in ("pipeline", "run", "status", "failed_task", "error", "finished_at", "webhook", "metrics_error"):
        value = summary.get(key)
        if value not in (None, ""):
            text = str(value).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {key} | {text} |")
    metrics = summary.get("metrics") or {}
    if metrics:
        lines += ["", "## Model", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- metrics


def _http_json(url: str, timeout: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked by caller
        return json.loads(response.read().decode("utf-8") or "{}")


def _rest_version(base: str, model_name: str, timeout: float) -> tuple[str, dict, dict] | None:
    """``(alias, model version, run metrics)`` over MLflow's REST API, or None (no alias set)."""
    api = base.rstrip("/") + "/api/2.0/mlflow"
    for alias in ALIASES:
        query = urllib.parse.urlencode({"name": model_name, "alias": alias})
        try:
            mv = _http_json(f"{api}/registered-models/alias?{query}", timeout).get("model_version") or {}
        except urllib.error.HTTPError as exc:
            if exc.code in (400, 404):  # RESOURCE_DOES_NOT_EXIST / INVALID_PARAMETER_VALUE: no such alias
                continue
            raise
        if not mv:
            continue
        metrics: dict = {}
        if mv.get("run_id"):
            try:
                run = _http_json(f"{api}/runs/get?{urllib.parse.urlencode({'run_id': mv['run_id']})}", timeout)
                metrics = {m["key"]: m["value"] for m in run.get("run", {}).get("data", {}).get("metrics", [])}
            except urllib.error.HTTPError:
                metrics = {}
        tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
        return alias, {"version": mv.get("version"), "tags": tags}, metrics
    return None


def _client_version(tracking_uri: str, model_name: str) -> tuple[str, dict, dict] | None:
    """The same through the mlflow client (a local store)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    for alias in ALIASES:
        try:
            mv = client.get_model_version_by_alias(model_name, alias)
        except MlflowException:
            continue
        metrics: dict = {}
        if mv.run_id:
            try:
                metrics = dict(client.get_run(mv.run_id).data.metrics)
            except MlflowException:
                metrics = {}
        return alias, {"version": mv.version, "tags": dict(mv.tags or {})}, metrics
    return None


def _sqlite_version(path: str, model_name: str) -> tuple[str, dict, dict] | None:
    """The same read straight from a local SQLite store (read-only), without importing MLflow (about 2 s
    a run). Raises ``sqlite3.Error`` when the store's tables are not the ones read here (a later MLflow's
    schema): the caller then asks the mlflow client."""
    import sqlite3

    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    try:
        for alias in ALIASES:
            rows = conn.execute(
                "SELECT v.version, v.run_id FROM registered_model_aliases a JOIN model_versions v "
                "ON v.name = a.name AND v.version = a.version WHERE a.name = ? AND a.alias = ?",
                (model_name, alias),
            ).fetchall()
            if len(rows) != 1:
                if rows:
                    raise sqlite3.DatabaseError(f"{len(rows)} versions behind {model_name}@{alias}")
                continue
            version, run_id = rows[0]
            tags = dict(
                conn.execute(
                    "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ?", (model_name, version)
                ).fetchall()
            )
            metrics = dict(
                conn.execute("SELECT key, value FROM latest_metrics WHERE run_uuid = ?", (run_id,)).fetchall()
                if run_id
                else []
            )
            return alias, {"version": version, "tags": tags}, metrics
        return None
    finally:
        conn.close()


def _local_version(tracking_uri: str, scheme: str, model_name: str) -> tuple[str, dict, dict] | str | None:
    """The version of a local store: SQLite read directly, else through the mlflow client; a str says why
    it was skipped."""
    import sqlite3

    if scheme == "sqlite":
        path = tracking_uri.split(":///", 1)[-1]
        if path and path != ":memory:" and not Path(path).exists():
            return "skipped (the sqlite tracking store does not exist)"
        if path and path != ":memory:":
            try:
                return _sqlite_version(path, model_name)
            except sqlite3.Error:
                pass  # not the schema read here: MLflow's client knows its own
    try:
        import mlflow  # noqa: F401
    except ImportError:
        return f"skipped (a {scheme} tracking store needs mlflow, not in this image)"
    return _client_version(tracking_uri, model_name)


def read_metrics(tracking_uri: str, model_name: str, timeout: float = 10.0) -> tuple[dict[str, Any], str]:
    """``(metrics, note)``: the key metrics of the model version behind ``challenger`` (else ``champion``).

    ``metrics``: ``alias``, ``version``, ``f1``, ``outcome`` (and ``precision``/``recall`` when the run logged
    them); empty with a ``note`` saying why when there is nothing to read or the lookup failed. Never raises;
    the note names the store's scheme, never the URI (it may hold a password).
    """
    if not tracking_uri or not model_name:
        return {}, "skipped (no tracking URI or model name)"
    scheme = urllib.parse.urlparse(tracking_uri).scheme or "file"
    try:
        if scheme in ("http", "https"):
            found = _rest_version(tracking_uri, model_name, timeout)
        else:
            found = _local_version(tracking_uri, scheme, model_name)
            if isinstance(found, str):
                return {}, found
    except Exception as exc:  # best-effort: a lookup failure never fails notify
        return {}, f"failed ({type(exc).__name__})"
    if found is None:
        return {}, f"no version of {model_name} has the alias {' or '.join(ALIASES)}"
    alias, mv, run_metrics = found
    tags = mv["tags"]
    f1 = tags.get(EVAL_F1_TAG) or run_metrics.get("f1")
    metrics: dict[str, Any] = {
        "alias": alias,
        "version": int(mv["version"]) if str(mv["version"]).isdigit() else mv["version"],
        "f1": float(f1) if f1 is not None else None,
        "outcome": tags.get(DECISION_TAG),
    }
    for key in ("precision", "recall"):
        if key in run_metrics:
            metrics[key] = float(run_metrics[key])
    return metrics, ""


# --------------------------------------------------------------------------- the webhook


def post_webhook(
    url: str,
    body: Mapping[str, Any],
    timeout: float = 10.0,
    retries: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """POST ``body`` as JSON to ``url``; ``"sent"`` or ``"failed (<reason>)"``. Never raises.

    Retried ``retries`` times (waiting ``backoff``, 2x, 4x ... seconds) on a connection error, a timeout or a
    5xx answer; a 4xx answer is final. The standard library's client: it logs nothing, and the reason names the
    error class or the HTTP status, never the URL.
    """
    if not url.lower().startswith(("http://", "https://")):
        return "failed (not an http(s) URL)"
    data = json.dumps(body, default=str).encode("utf-8")
    reason = "no attempt"
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff * 2 ** (attempt - 1))
        request = urllib.request.Request(
            url, data=data, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - scheme checked
                response.read()
            return "sent"
        except urllib.error.HTTPError as exc:
            reason = f"HTTP {exc.code}"
            if exc.code not in _RETRY_STATUSES:
                return f"failed ({reason})"
        except (urllib.error.URLError, OSError) as exc:  # refused, DNS, timeout, reset
            cause = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            reason = type(cause).__name__ if isinstance(cause, BaseException) else type(exc).__name__
        except Exception as exc:  # anything else: still never raised
            return f"failed ({type(exc).__name__})"
        log.warning("notify: webhook attempt %d of %d failed (%s)", attempt + 1, retries + 1, reason)
    return f"failed ({reason} after {retries + 1} attempts)"


def webhook_body(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Slack's ``text`` plus the summary's structured fields."""
    return {"text": to_text(summary), **{k: v for k, v in summary.items() if k != "webhook"}}


# --------------------------------------------------------------------------- all of it


def notify(
    pipeline: str,
    state: str,
    job_resource_name: str = "",
    error_message: str = "",
    settings: Any = None,
    run_dir: str | Path | None = None,
    task_dir_name: str = "",
    markdown_path: str | Path | None = None,
    json_path: str | Path | None = None,
    secret_client: Any = None,
    post: Callable[..., str] = post_webhook,
) -> dict[str, Any]:
    """Build the summary of a finished run, post it when a webhook is configured, write it; the summary.

    ``settings``: a :class:`tagifai.config.Settings` (tracking URI, model name, the webhook settings).
    ``run_dir``: kfp.local's run folder (to name the run and the failed task there; ``task_dir_name``: this
    task's own folder in it). ``markdown_path`` and
    ``json_path``: where the summary is written (None: not written). Never raises for the webhook or the
    metrics.
    """
    state = (state or "UNKNOWN").upper()
    failed = failed_tasks(error_message, run_dir, exclude=task_dir_name) if state != "SUCCEEDED" else []
    metrics, note = read_metrics(
        getattr(settings, "mlflow_tracking_uri", "") or "", getattr(settings, "model_name", "") or ""
    )
    summary = build_summary(
        pipeline,
        run_name(job_resource_name, run_dir),
        state,
        failed_task=", ".join(failed),
        error=error_message if state != "SUCCEEDED" else "",
        metrics=metrics,
        metrics_error=note,
    )
    url, source = resolve_webhook(settings, secret_client=secret_client) if settings is not None else ("", "none")
    if url:
        result = post(url, webhook_body(summary))
        summary["webhook"] = result
        summary["webhook_source"] = source
    elif source == "none":
        summary["webhook"] = "not configured"
    else:
        summary["webhook"] = source  # "<source>: failed (<reason>)"
    del url
    write_summary(summary, markdown_path, json_path)
    log.info("notify: %s %s, webhook %s", summary["pipeline"], summary["status"], summary["webhook"])
    return summary


def write_summary(
    summary: Mapping[str, Any], markdown_path: str | Path | None = None, json_path: str | Path | None = None
) -> None:
    """Write the summary as Markdown and as JSON (each only when its path is given)."""
    for path, text in (
        (markdown_path, to_markdown(summary)),
        (json_path, json.dumps(summary, indent=2, default=str) + "\n"),
    ):
        if path is not None:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text, encoding="utf-8")
