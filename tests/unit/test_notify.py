"""tagifai.notify: the run summary, the webhook (a loopback HTTP server), where its URL comes from, the metrics.

The webhook URL holds a sentinel: it must reach the server and appear in no log, no output and no summary.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from tagifai import notify
from tagifai.config import get_settings

SENTINEL = "sentinel-webhook-3c9d"
VERTEX_MESSAGE = "The DAG failed because some tasks failed. The failed tasks are: [train]."


class Loopback:
    """A loopback HTTP server: records every request, answers from ``answers`` (a list of (status, JSON) for
    POSTs, used in turn, the last one repeated) and ``gets`` (path -> (status, JSON)) for GETs."""

    def __init__(self, answers=None, gets=None):
        self.requests: list[dict] = []
        self.answers = list(answers or [(200, {"ok": True})])
        self.gets = dict(gets or {})
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.requests.append({"method": "POST", "path": self.path, "body": json.loads(body or b"null")})
                status, payload = outer.answers[min(len(outer.requests) - 1, len(outer.answers) - 1)]
                self._answer(status, payload)

            def do_GET(self):  # noqa: N802
                split = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(split.query).items()}
                outer.requests.append({"method": "GET", "path": split.path, "query": query})
                key = split.path + ("?" + query["alias"] if "alias" in query else "")
                status, payload = outer.gets.get(key, (404, {"error_code": "RESOURCE_DOES_NOT_EXIST"}))
                self._answer(status, payload)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def posts(self) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST"]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()


def mlflow_routes(alias="challenger", version="3", tags=None, metrics=None) -> dict:
    """MLflow REST answers for a model ``tagifai`` with ``alias`` on ``version``."""
    tags = {"tagifai.eval_f1": "0.812345", "tagifai.decision": "promoted"} if tags is None else tags
    metrics = {"f1": 0.8, "precision": 0.85, "recall": 0.77} if metrics is None else metrics
    return {
        f"/api/2.0/mlflow/registered-models/alias?{alias}": (
            200,
            {
                "model_version": {
                    "name": "tagifai",
                    "version": version,
                    "run_id": "r1",
                    "tags": [{"key": k, "value": v} for k, v in tags.items()],
                }
            },
        ),
        "/api/2.0/mlflow/runs/get": (
            200,
            {
                "run": {
                    "info": {"run_id": "r1"},
                    "data": {"metrics": [{"key": k, "value": v} for k, v in metrics.items()]},
                }
            },
        ),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _no_notify_env(monkeypatch):
    for name in ("TAGIFAI_NOTIFY_WEBHOOK_FILE", "TAGIFAI_NOTIFY_WEBHOOK_URL", "TAGIFAI_NOTIFY_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


def _settings(tmp_path, **overrides):
    values = {
        "home": tmp_path / "home",
        "notify_webhook_file": str(tmp_path / "no-such-file"),
        # explicit: a tracking URI another test left in the environment must not be read here
        "mlflow_tracking_uri": f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}",
    }
    values.update(overrides)
    return get_settings(**values)


# --------------------------------------------------------------------------- the post


def test_a_failed_run_is_posted_with_its_fields_and_the_url_is_nowhere_else(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    with Loopback(gets=mlflow_routes()) as server:
        url = f"{server.url}/services/T0/B0/{SENTINEL}"
        settings = _settings(tmp_path, notify_webhook_url=url, mlflow_tracking_uri=server.url)
        md, js = tmp_path / "out" / "summary", tmp_path / "out" / "summary.json"
        summary = notify.notify(
            "mlops",
            "FAILED",
            job_resource_name="projects/p/locations/l/pipelineJobs/mlops-123",
            error_message=VERTEX_MESSAGE,
            settings=settings,
            markdown_path=md,
            json_path=js,
        )
    [post] = server.posts
    assert post["path"] == f"/services/T0/B0/{SENTINEL}"
    body = post["body"]
    assert body["pipeline"] == "mlops" and body["status"] == "FAILED" and body["failed_task"] == "train"
    assert body["run"] == "projects/p/locations/l/pipelineJobs/mlops-123"
    assert body["error"] == VERTEX_MESSAGE
    assert body["metrics"] == {
        "alias": "challenger",
        "version": 3,
        "f1": 0.812345,
        "outcome": "promoted",
        "precision": 0.85,
        "recall": 0.77,
    }
    assert set(body) >= {"text", "pipeline", "run", "status", "failed_task", "error", "metrics", "finished_at"}
    assert "FAILED" in body["text"] and "`train`" in body["text"] and "f1 0.8123" in body["text"]
    assert (summary["webhook"], summary["webhook_source"]) == ("sent", "env")
    assert json.loads(js.read_text())["failed_task"] == "train"
    assert "| failed_task | train |" in md.read_text() and "| webhook | sent |" in md.read_text()
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err, md.read_text(), js.read_text(), json.dumps(summary), repr(settings)):
        assert SENTINEL not in text


def test_a_succeeded_run_names_no_failed_task(tmp_path):
    with Loopback() as server:
        settings = _settings(tmp_path, notify_webhook_url=f"{server.url}/{SENTINEL}")
        summary = notify.notify("dataops", "SUCCEEDED", job_resource_name="run-1", settings=settings)
    assert summary["status"] == "SUCCEEDED" and summary["failed_task"] is None and summary["error"] is None
    assert server.posts[0]["body"]["status"] == "SUCCEEDED"
    assert summary["metrics"] == {} and summary["metrics_error"].startswith("skipped")


def test_a_500_is_retried_with_backoff_then_sent(caplog):
    caplog.set_level(logging.DEBUG)
    waits = []
    with Loopback(answers=[(500, {"error": "busy"}), (200, {"ok": True})]) as server:
        result = notify.post_webhook(f"{server.url}/{SENTINEL}", {"text": "x"}, backoff=0.5, sleep=waits.append)
    assert result == "sent"
    assert len(server.posts) == 2 and waits == [0.5]
    assert "HTTP 500" in caplog.text and SENTINEL not in caplog.text


def test_retries_stop_after_three_and_a_4xx_is_final():
    waits = []
    with Loopback(answers=[(503, {})]) as server:
        result = notify.post_webhook(f"{server.url}/{SENTINEL}", {"text": "x"}, backoff=1, sleep=waits.append)
    assert result == "failed (HTTP 503 after 4 attempts)"
    assert len(server.posts) == 4 and waits == [1, 2, 4]
    with Loopback(answers=[(404, {})]) as server:
        assert notify.post_webhook(f"{server.url}/x", {}, sleep=waits.append) == "failed (HTTP 404)"
    assert len(server.posts) == 1


def test_a_server_that_is_down_never_raises(tmp_path, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    url = f"http://127.0.0.1:{_free_port()}/{SENTINEL}"
    result = notify.post_webhook(url, {"text": "x"}, timeout=2, sleep=lambda s: None)
    assert result.startswith("failed (") and "after 4 attempts" in result and SENTINEL not in result
    summary = notify.notify(
        "mlops",
        "FAILED",
        error_message=VERTEX_MESSAGE,
        settings=_settings(tmp_path, notify_webhook_url=url),
        post=lambda u, body: notify.post_webhook(u, body, timeout=2, sleep=lambda s: None),
        json_path=tmp_path / "s.json",
    )
    assert summary["webhook"].startswith("failed (")
    out = capsys.readouterr()
    for text in (caplog.text, out.out, out.err, (tmp_path / "s.json").read_text()):
        assert SENTINEL not in text


def test_a_non_http_url_is_refused_without_a_request():
    assert notify.post_webhook("file:///etc/passwd", {}) == "failed (not an http(s) URL)"


# --------------------------------------------------------------------------- where the URL comes from


class _Payload:
    def __init__(self, data: bytes):
        self.data = data


class _FakeSecretClient:
    def __init__(self, value=b"", error=None):
        self.value, self.error, self.names = value, error, []

    def access_secret_version(self, name, timeout=None):
        self.names.append(name)
        if self.error:
            raise self.error
        return type("R", (), {"payload": _Payload(self.value)})()


def test_the_file_comes_first_then_the_environment_then_secret_manager(tmp_path):
    secret_file = tmp_path / "webhook-url"
    secret_file.write_text("https://from.file/hook\n")
    client = _FakeSecretClient(b"https://from.secret-manager/hook")
    ref = "projects/p/secrets/notify/versions/latest"
    both = dict(notify_webhook_url="https://from.env/hook", notify_webhook_secret=ref)

    settings = _settings(tmp_path, notify_webhook_file=str(secret_file), **both)
    assert notify.resolve_webhook(settings, secret_client=client) == ("https://from.file/hook", "file")
    secret_file.write_text("  \n")  # an empty file: as if none
    assert notify.resolve_webhook(settings, secret_client=client) == ("https://from.env/hook", "env")
    settings = _settings(tmp_path, notify_webhook_secret=ref)  # no file (missing), no env
    assert notify.resolve_webhook(settings, secret_client=client) == (
        "https://from.secret-manager/hook",
        "secret-manager",
    )
    assert client.names == [ref]
    assert notify.resolve_webhook(_settings(tmp_path)) == ("", "none")


def test_the_settings_read_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TAGIFAI_NOTIFY_WEBHOOK_URL", f"https://hooks.example/{SENTINEL}")
    settings = get_settings(home=tmp_path, notify_webhook_file=str(tmp_path / "none"))
    assert SENTINEL not in repr(settings) and SENTINEL not in str(settings.model_dump())
    assert notify.resolve_webhook(settings)[1] == "env"
    assert get_settings().notify_webhook_file == notify.DEFAULT_WEBHOOK_FILE


def test_a_secret_manager_error_is_recorded_not_raised(tmp_path):
    settings = _settings(tmp_path, notify_webhook_secret="projects/p/secrets/s/versions/latest")
    client = _FakeSecretClient(error=PermissionError("denied"))
    assert notify.resolve_webhook(settings, secret_client=client) == ("", "secret-manager: failed (PermissionError)")
    summary = notify.notify("mlops", "FAILED", settings=settings, secret_client=client)
    assert summary["webhook"] == "secret-manager: failed (PermissionError)"


def test_secret_manager_over_its_rest_api_on_a_loopback_server(tmp_path):
    """The real client (REST transport, anonymous credentials) against a loopback server answering the
    documented ``GET /v1/{name}:access``: the gapic REST transport accepts an ``http://`` api_endpoint."""
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import secretmanager

    name = "projects/p/secrets/notify-webhook/versions/latest"
    payload = {"name": "projects/p/secrets/notify-webhook/versions/4", "payload": {"data": ""}}
    payload["payload"]["data"] = base64.b64encode(f"https://hooks.example/{SENTINEL}".encode()).decode()
    with Loopback(gets={f"/v1/{name}:access": (200, payload)}) as server:
        client = secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=server.url),
        )
        settings = _settings(tmp_path, notify_webhook_secret=name)
        url, source = notify.resolve_webhook(settings, secret_client=client)
    assert (url, source) == (f"https://hooks.example/{SENTINEL}", "secret-manager")
    [get] = server.requests
    assert get["method"] == "GET" and get["path"] == f"/v1/{name}:access"


# --------------------------------------------------------------------------- metrics and the run


def test_metrics_fall_back_to_the_champion_over_rest():
    with Loopback(gets=mlflow_routes(alias="champion", version="2", tags={}, metrics={"f1": 0.7})) as server:
        metrics, note = notify.read_metrics(server.url, "tagifai")
    assert note == ""
    assert metrics == {"alias": "champion", "version": 2, "f1": 0.7, "outcome": None}
    aliases = [r["query"]["alias"] for r in server.requests if r["path"].endswith("/alias")]
    assert aliases == ["challenger", "champion"]


def test_metrics_lookup_failures_are_notes():
    with Loopback() as server:  # a registry without the aliases
        assert notify.read_metrics(server.url, "tagifai") == (
            {},
            "no version of tagifai has the alias challenger or champion",
        )
    with Loopback(gets={"/api/2.0/mlflow/registered-models/alias?challenger": (500, {})}) as server:
        assert notify.read_metrics(server.url, "tagifai") == ({}, "failed (HTTPError)")
    down = f"http://user:{SENTINEL}@127.0.0.1:{_free_port()}"
    metrics, note = notify.read_metrics(down, "tagifai", timeout=2)
    assert metrics == {} and note.startswith("failed (") and SENTINEL not in note


def test_metrics_from_a_local_sqlite_registry(tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("tagifai")
    run = client.create_run(client.create_experiment("e", artifact_location=(tmp_path / "a").as_uri()))
    client.log_metric(run.info.run_id, "f1", 0.66)
    mv = client.create_model_version("tagifai", (tmp_path / "a").as_uri(), run_id=run.info.run_id)
    client.set_registered_model_alias("tagifai", "champion", mv.version)
    client.set_model_version_tag("tagifai", mv.version, "tagifai.decision", "promoted")
    client.log_metric(run.info.run_id, "precision", 0.7)
    metrics, note = notify.read_metrics(uri, "tagifai")
    assert note == ""
    assert metrics == {"alias": "champion", "version": 1, "f1": 0.66, "outcome": "promoted", "precision": 0.7}
    # Read straight from the SQLite tables (no MLflow import), and the same as MLflow's client says.
    path = str(tmp_path / "mlflow.db")
    assert notify._sqlite_version(path, "tagifai") == notify._client_version(uri, "tagifai")
    assert notify._sqlite_version(path, "nothing") is None
    assert notify.read_metrics(f"sqlite:///{tmp_path / 'none.db'}", "tagifai")[1].startswith("skipped")
    assert not (tmp_path / "none.db").exists()


def test_a_store_of_another_schema_is_read_through_mlflow(tmp_path, monkeypatch):
    import sqlite3

    path = tmp_path / "mlflow.db"
    sqlite3.connect(path).execute("CREATE TABLE unrelated (x)").connection.commit()
    asked = []
    monkeypatch.setattr(notify, "_client_version", lambda uri, name: asked.append(uri) or None)
    metrics, note = notify.read_metrics(f"sqlite:///{path}", "tagifai")
    assert asked == [f"sqlite:///{path}"] and metrics == {} and "no version of tagifai" in note


def test_notify_reads_a_local_store_without_importing_mlflow(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "mlflow.db"
    import sqlite3

    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE registered_model_aliases (alias, name, version);"
        "CREATE TABLE model_versions (name, version, run_id);"
        "CREATE TABLE model_version_tags (key, value, name, version);"
        "CREATE TABLE latest_metrics (key, value, run_uuid);"
        "INSERT INTO registered_model_aliases VALUES ('champion', 'tagifai', 3);"
        "INSERT INTO model_versions VALUES ('tagifai', 3, 'r1');"
        "INSERT INTO latest_metrics VALUES ('f1', 0.9, 'r1');"
    )
    con.commit()
    code = (
        "import sys; from tagifai import notify; "
        f"m, note = notify.read_metrics('sqlite:///{path}', 'tagifai'); "
        "print(m['version'], m['f1'], 'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["3", "0.9", "False"]


def test_failed_tasks_from_the_message_or_a_local_run_folder(tmp_path):
    assert notify.failed_tasks(VERTEX_MESSAGE) == ["train"]
    assert notify.failed_tasks("The failed tasks are: [extract, validate-dataset]") == ["extract", "validate-dataset"]
    run = tmp_path / "mlops-2026-12-02-07-00-00-000000"
    for task, done in (("sync", True), ("transform", False), ("notify", False)):
        (run / task).mkdir(parents=True)
        if done:
            (run / task / "executor_output.json").write_text("{}")
    assert notify.failed_tasks("Task exit-handler-1 failed.", run, exclude="notify") == ["transform"]
    assert notify.failed_tasks("", None) == []
    assert notify.run_name("local-pipeline-exit-handler-1", run) == run.name
    assert notify.run_name("projects/p/locations/l/pipelineJobs/j", run) == "projects/p/locations/l/pipelineJobs/j"


def test_the_summary_as_markdown_and_text():
    summary = notify.build_summary(
        "continual", "run-7", "failed", failed_task="evaluate", error="a | b", metrics={"version": 4, "f1": 0.9}
    )
    summary["webhook"] = "not configured"
    md = notify.to_markdown(summary)
    assert md.startswith("# continual: FAILED") and "| error | a \\| b |" in md and "| version | 4 |" in md
    text = notify.to_text(summary)
    assert text.splitlines()[0] == ":x: *continual* FAILED (run `run-7`)"
    assert "model: version 4, f1 0.9000" in text
    assert "webhook" not in notify.webhook_body(summary)
