"""tagifai.secrets: Secret Manager references (sm://projects/P/secrets/S/versions/V) resolved inside the step.

The real google-cloud-secret-manager client (REST transport, anonymous credentials) reads a loopback server
answering the documented ``GET /v1/{name}:access`` (a recorded contract, not Secret Manager itself). The secret is
a sentinel: it must reach MLflow's environment variable and appear in no output, repr or error.
"""

from __future__ import annotations

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tagifai import secrets
from tagifai.config import get_settings

SENTINEL = "sentinel-mlflow-token-5e1f"
NAME = "projects/p/secrets/mlflow-token/versions/latest"
_REAL_CLIENT = secrets._client  # before the fixture replaces it


class SecretManager:
    """``GET /v1/{name}:access`` answers the payload of ``values[name]`` (base64), else 404 NOT_FOUND."""

    def __init__(self, values: dict[str, str]):
        self.values = values
        self.paths: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # noqa: N802
                outer.paths.append(self.path.split("?")[0])
                name = self.path.removeprefix("/v1/").split("?")[0].removesuffix(":access")
                if name in outer.values:
                    status, body = (
                        200,
                        {
                            "name": name.replace("latest", "3"),
                            "payload": {"data": base64.b64encode(outer.values[name].encode()).decode()},
                        },
                    )
                else:
                    status = 404
                    body = {"error": {"code": 404, "message": f"Secret [{name}] not found.", "status": "NOT_FOUND"}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def client(self):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import secretmanager

        return secretmanager.SecretManagerServiceClient(
            transport="rest",
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=f"http://127.0.0.1:{self._httpd.server_address[1]}"),
        )

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def secret_manager(monkeypatch):
    server = SecretManager({NAME: SENTINEL + "\n"})
    monkeypatch.setattr(secrets, "_client", server.client)  # what a step gets: a client with its credentials
    secrets.clear_cache()
    for key in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD", "TAGIFAI_MLFLOW_TRACKING_TOKEN"):
        monkeypatch.setenv(key, "x")  # recorded by monkeypatch, so whatever the code sets is undone
        monkeypatch.delenv(key)
    yield server
    server.close()
    secrets.clear_cache()


def test_a_reference_in_the_setting_becomes_mlflows_token_inside_the_step(secret_manager, monkeypatch, capsys):
    import os

    monkeypatch.setenv("TAGIFAI_MLFLOW_TRACKING_TOKEN", f"sm://{NAME}")
    settings = get_settings()  # what every step does first
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == SENTINEL
    assert secret_manager.paths == [f"/v1/{NAME}:access"]
    get_settings()  # read once per process
    assert len(secret_manager.paths) == 1
    assert SENTINEL not in repr(settings) and SENTINEL not in str(settings.model_dump())
    assert settings.mlflow_tracking_token.get_secret_value() == f"sm://{NAME}"  # the setting keeps the reference
    out = capsys.readouterr()
    assert SENTINEL not in out.out + out.err


def test_a_plain_token_is_given_to_mlflow_and_an_existing_one_wins(secret_manager, monkeypatch):
    import os

    monkeypatch.setenv("TAGIFAI_MLFLOW_TRACKING_TOKEN", "plain-token")
    get_settings()
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "plain-token"
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "set-by-the-platform")
    get_settings()
    assert os.environ["MLFLOW_TRACKING_TOKEN"] == "set-by-the-platform"
    assert secret_manager.paths == []


def test_mlflows_own_variables_may_hold_a_reference(secret_manager, monkeypatch):
    import os

    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", f"sm://{NAME}")
    get_settings()
    assert os.environ["MLFLOW_TRACKING_PASSWORD"] == SENTINEL
    assert "MLFLOW_TRACKING_TOKEN" not in os.environ


def test_delivery_settings_read_no_secret(secret_manager, monkeypatch):
    import os

    monkeypatch.setenv("TAGIFAI_MLFLOW_TRACKING_TOKEN", f"sm://{NAME}")
    get_settings(export_secrets=False)
    assert secret_manager.paths == [] and "MLFLOW_TRACKING_TOKEN" not in os.environ


@pytest.mark.parametrize(
    "reference, message",
    [
        ("sm://projects/p/secrets/missing/versions/1", "cannot read sm://projects/p/secrets/missing/versions/1"),
        ("sm://projects/p/secrets/s", "expected sm://projects/PROJECT/secrets/NAME/versions/VERSION"),
        ("sm://projects/p/secrets/s/versions/newest", "expected sm://projects/PROJECT/secrets/NAME/versions/VERSION"),
    ],
)
def test_a_bad_or_unreadable_reference_is_one_line_naming_it(secret_manager, monkeypatch, reference, message):
    monkeypatch.setenv("TAGIFAI_MLFLOW_TRACKING_TOKEN", reference)
    with pytest.raises(secrets.SecretReferenceError, match=message) as info:
        get_settings()
    assert "TAGIFAI_MLFLOW_TRACKING_TOKEN" in str(info.value) or "expected" in str(info.value)
    assert len(str(info.value).splitlines()) == 1


def test_resolve_leaves_a_value_as_it_is_and_reads_a_reference(secret_manager):
    from pydantic import SecretStr

    assert secrets.resolve("https://not-a-reference") == "https://not-a-reference"
    assert secrets.resolve(SecretStr(f"sm://{NAME}")) == SENTINEL
    assert secrets.read_secret_manager(NAME, client=secret_manager.client()) == SENTINEL


def test_notify_still_exports_read_secret_manager():
    from tagifai import notify

    assert notify.read_secret_manager is secrets.read_secret_manager


def test_without_the_client_library_the_rest_call_reads_the_same_secret(secret_manager, monkeypatch):
    """The MLflow steps' images have google-auth but not google-cloud-secret-manager: the REST fallback reads
    the version with the same documented call (``GET /v1/{name}:access``) the library makes."""
    import builtins

    from google.auth.credentials import AnonymousCredentials

    real_import = builtins.__import__

    def no_secretmanager(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "google.cloud" and fromlist and "secretmanager" in fromlist:
            raise ImportError("no google-cloud-secret-manager in this image")
        return real_import(name, globals, locals, fromlist, level)

    with monkeypatch.context() as m:
        m.setattr(builtins, "__import__", no_secretmanager)
        assert isinstance(_REAL_CLIENT(), secrets.RestClient)
    client = secrets.RestClient(f"http://127.0.0.1:{secret_manager._httpd.server_address[1]}", AnonymousCredentials())
    assert secrets.read_secret_manager(NAME, client=client) == SENTINEL
    assert secret_manager.paths[-1] == f"/v1/{NAME}:access"
