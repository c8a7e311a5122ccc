"""tagifai.airbyte against a loopback Airbyte Configuration API (tests/fakes/airbyte.py).

The fake implements the endpoints the module documents (POST /api/v1/connections/sync,
/api/v1/jobs/get, /api/v1/jobs/cancel, /api/v1/applications/token) with JobInfoRead answers; every
request is recorded with its headers and body. Sleeping is injected where only the sequence of waits
matters, real where a timeout is measured.
"""

from __future__ import annotations

import json
import logging

import pytest

from fakes.airbyte import FakeAirbyte
from tagifai.airbyte import (
    AirbyteClient,
    AirbyteError,
    AirbyteJobFailed,
    AirbyteTimeout,
    base_url,
    sync_connection,
)

TOKEN = "abt-secret-token-0123456789"
FAILURE = {
    "failureOrigin": "source",
    "failureType": "config_error",
    "externalMessage": "Unable to read https://example.org/projects.csv: 403 Forbidden",
    "internalMessage": "java.io.IOException: HTTP 403",
    "stacktrace": "at io.airbyte...",
    "retryable": False,
    "timestamp": 1700000000000,
}


@pytest.fixture(autouse=True)
def _no_airbyte_env(monkeypatch):
    for var in ("TAGIFAI_AIRBYTE_URL", "TAGIFAI_AIRBYTE_CONNECTION_ID", "TAGIFAI_AIRBYTE_TOKEN", "TAGIFAI_AIRBYTE_TOKEN_FILE",
                "TAGIFAI_AIRBYTE_CLIENT_ID", "TAGIFAI_AIRBYTE_CLIENT_SECRET", "TAGIFAI_AIRBYTE_CLIENT_SECRET_FILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def airbyte():
    fake = FakeAirbyte(token=TOKEN).start()
    yield fake
    fake.stop()


class Sleeps(list):
    """An injected ``sleep`` that records the waits instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(round(seconds, 3))


def test_sync_polls_with_backoff_until_succeeded(airbyte):
    cid = airbyte.add_connection(["pending", "running", "running", "running", "succeeded"], rows=764, bytes=123_456)
    sleeps = Sleeps()
    job = sync_connection(cid, airbyte.url, token=TOKEN, poll_interval=1, backoff=2, max_poll_interval=3, sleep=sleeps)

    assert (job.status, job.rows_synced, job.bytes_synced, job.attempts) == ("succeeded", 764, 123_456, 1)
    assert job.statuses == ["pending", "running", "succeeded"] and job.error is None
    assert sleeps == [1, 2, 3, 3]  # the interval grows by `backoff`, capped at max_poll_interval
    assert airbyte.paths() == ["/api/v1/connections/sync"] + ["/api/v1/jobs/get"] * 4
    assert airbyte.requests[0]["body"] == {"connectionId": cid}
    assert all(r["body"] == {"id": job.job_id} for r in airbyte.requests[1:])
    assert all(r["headers"]["Authorization"] == f"Bearer {TOKEN}" for r in airbyte.requests)
    assert all(r["headers"]["Content-Type"] == "application/json" for r in airbyte.requests)


def test_incomplete_attempts_are_waited_for(airbyte):
    cid = airbyte.add_connection(["running", "incomplete", "running", "succeeded"], rows=10, attempts=2, failures=[FAILURE])
    job = sync_connection(cid, airbyte.url, token=TOKEN, sleep=Sleeps())
    assert job.status == "succeeded" and job.attempts == 2
    assert job.statuses == ["running", "incomplete", "running", "succeeded"]


def test_failed_job_raises_with_airbytes_error_message(airbyte):
    cid = airbyte.add_connection(["running", "running", "failed"], attempts=3, failures=[FAILURE])
    with pytest.raises(AirbyteJobFailed) as info:
        sync_connection(cid, airbyte.url, token=TOKEN, sleep=Sleeps())
    message = str(info.value)
    assert f"of connection {cid} failed after 3 attempt(s)" in message
    assert "source config_error: Unable to read https://example.org/projects.csv: 403 Forbidden" in message
    assert info.value.job.status == "failed" and info.value.job.rows_synced is None
    assert message.count("403 Forbidden") == 1  # the same reason from three attempts is named once


def test_cancelled_job_fails(airbyte):
    cid = airbyte.add_connection(["running", "cancelled"])
    with pytest.raises(AirbyteJobFailed, match="cancelled after 1 attempt.*no failure reason"):
        sync_connection(cid, airbyte.url, token=TOKEN, sleep=Sleeps())


def test_timeout_cancels_the_job(airbyte):
    cid = airbyte.add_connection(["running"])  # never ends
    with pytest.raises(AirbyteTimeout, match=r"did not finish within 0.3 s \(last status: running\); it was asked to cancel") as info:
        sync_connection(cid, airbyte.url, token=TOKEN, timeout=0.3, poll_interval=0.05, backoff=1.0)
    assert airbyte.paths()[-1] == "/api/v1/jobs/cancel"
    assert airbyte.requests[-1]["body"] == {"id": info.value.job.job_id}
    assert airbyte.jobs[info.value.job.job_id].status() == "cancelled"
    assert 0.3 <= info.value.job.seconds < 5


def test_timeout_can_leave_the_job_running(airbyte):
    cid = airbyte.add_connection(["running"])
    with pytest.raises(AirbyteTimeout, match="left running"):
        sync_connection(cid, airbyte.url, token=TOKEN, timeout=0.1, poll_interval=0.05, cancel_on_timeout=False)
    assert "/api/v1/jobs/cancel" not in airbyte.paths()


def test_transient_5xx_and_429_are_retried(airbyte):
    cid = airbyte.add_connection(["running", "succeeded"], rows=3)
    airbyte.faults = [["/api/v1/connections/sync", 503, 2], ["/api/v1/jobs/get", 502, 1], ["/api/v1/jobs/get", 429, 1]]
    sleeps = Sleeps()
    job = sync_connection(cid, airbyte.url, token=TOKEN, poll_interval=5, sleep=sleeps)
    assert job.status == "succeeded"
    assert airbyte.paths().count("/api/v1/connections/sync") == 3
    assert len(airbyte.jobs) == 1  # the retried trigger started one job
    assert sleeps == [1.0, 2.0, 5, 1.0, 2.0]  # retry backoff 1, 2 (sync); poll 5; retry 1, 2 (get)


def test_persistent_5xx_gives_up_with_the_status(airbyte):
    cid = airbyte.add_connection(["succeeded"])
    airbyte.faults = [["/api/v1/connections/sync", 500, 99]]
    client = AirbyteClient(airbyte.url, token=TOKEN, retries=2, sleep=Sleeps())
    with pytest.raises(AirbyteError, match="/api/v1/connections/sync answered 500: injected 500"):
        sync_connection(cid, client=client)
    assert airbyte.paths().count("/api/v1/connections/sync") == 3


def test_unreachable_server_is_named(airbyte):
    url = airbyte.url
    airbyte.stop()
    with pytest.raises(AirbyteError, match=f"Airbyte at {url} is unreachable"):
        sync_connection("c", url, token=TOKEN, sleep=Sleeps())


def test_unknown_connection_and_missing_settings_are_named(airbyte, monkeypatch):
    with pytest.raises(AirbyteError, match="answered 404: Could not find configuration for STANDARD_SYNC: nope"):
        sync_connection("nope", airbyte.url, token=TOKEN, sleep=Sleeps())
    with pytest.raises(AirbyteError, match="no Airbyte server: pass server_url or set TAGIFAI_AIRBYTE_URL"):
        sync_connection("c")
    with pytest.raises(AirbyteError, match="no Airbyte connection: pass connection_id or set TAGIFAI_AIRBYTE_CONNECTION_ID"):
        sync_connection("", airbyte.url)
    with pytest.raises(AirbyteError, match="expected an http"):
        sync_connection("c", "localhost:8000")
    monkeypatch.setenv("TAGIFAI_AIRBYTE_CLIENT_ID", "id-only")
    with pytest.raises(AirbyteError, match="TAGIFAI_AIRBYTE_CLIENT_SECRET is not set"):
        sync_connection("c", airbyte.url)


def test_settings_come_from_the_environment_and_token_file(airbyte, monkeypatch, tmp_path):
    cid = airbyte.add_connection(["succeeded"], rows=1)
    secret = tmp_path / "token"
    secret.write_text(TOKEN + "\n")
    monkeypatch.setenv("TAGIFAI_AIRBYTE_URL", airbyte.url + "/api/v1/")
    monkeypatch.setenv("TAGIFAI_AIRBYTE_CONNECTION_ID", cid)
    monkeypatch.setenv("TAGIFAI_AIRBYTE_TOKEN_FILE", str(secret))
    job = sync_connection(sleep=Sleeps())
    assert job.status == "succeeded" and job.server_url == airbyte.url
    assert airbyte.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"
    monkeypatch.setenv("TAGIFAI_AIRBYTE_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(AirbyteError, match="TAGIFAI_AIRBYTE_TOKEN_FILE=.*cannot read the secret file"):
        sync_connection(sleep=Sleeps())


def test_missing_or_wrong_token_is_a_clear_401(airbyte):
    cid = airbyte.add_connection(["succeeded"])
    with pytest.raises(AirbyteError, match=r"answered 401: Unauthorized \(no credentials: set TAGIFAI_AIRBYTE_TOKEN"):
        sync_connection(cid, airbyte.url, sleep=Sleeps())
    with pytest.raises(AirbyteError, match=r"answered 401: Unauthorized \(the Airbyte credentials were refused\)") as info:
        sync_connection(cid, airbyte.url, token="wrong-token-value", sleep=Sleeps())
    assert "wrong-token-value" not in str(info.value)


def test_client_credentials_are_exchanged_and_renewed(monkeypatch):
    fake = FakeAirbyte(client_id="app-id", client_secret="app-secret-xyz", token_uses=2).start()
    try:
        cid = fake.add_connection(["running", "running", "running", "succeeded"], rows=5)
        monkeypatch.setenv("TAGIFAI_AIRBYTE_CLIENT_ID", "app-id")
        monkeypatch.setenv("TAGIFAI_AIRBYTE_CLIENT_SECRET", "app-secret-xyz")
        job = sync_connection(cid, fake.url, sleep=Sleeps())
        assert job.status == "succeeded"
        paths = fake.paths()
        assert paths[0] == "/api/v1/applications/token"
        assert fake.requests[0]["body"] == {"client_id": "app-id", "client_secret": "app-secret-xyz"}
        assert "Authorization" not in fake.requests[0]["headers"]
        # a token serves two calls; the 401 on the third makes the client get a new one and repeat it
        assert paths == ["/api/v1/applications/token", "/api/v1/connections/sync", "/api/v1/jobs/get", "/api/v1/jobs/get",
                         "/api/v1/applications/token", "/api/v1/jobs/get", "/api/v1/jobs/get"]
        monkeypatch.setenv("TAGIFAI_AIRBYTE_CLIENT_SECRET", "wrong")
        with pytest.raises(AirbyteError, match=r"applications/token answered 401 \(the Airbyte credentials were refused\)$"):
            sync_connection(cid, fake.url, sleep=Sleeps())
    finally:
        fake.stop()


def test_no_secret_reaches_logs_messages_or_results(airbyte, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)  # urllib3 logs every request line at DEBUG
    ok = airbyte.add_connection(["running", "succeeded"], rows=2)
    bad = airbyte.add_connection(["running", "failed"], failures=[FAILURE])
    airbyte.faults = [["/api/v1/jobs/get", 503, 1]]
    monkeypatch.setenv("TAGIFAI_AIRBYTE_TOKEN", TOKEN)
    job = sync_connection(ok, airbyte.url, sleep=Sleeps())
    with pytest.raises(AirbyteJobFailed) as failed:
        sync_connection(bad, airbyte.url, sleep=Sleeps())
    assert "Airbyte sync job" in caplog.text and "retrying" in caplog.text  # logging did happen
    for text in (caplog.text, json.dumps(job.to_dict()), str(failed.value), json.dumps(failed.value.job.to_dict())):
        assert TOKEN not in text


def test_base_url_normalisation():
    assert base_url("http://airbyte:8000/api/v1/") == "http://airbyte:8000"
    assert base_url("https://airbyte.example.org/api") == "https://airbyte.example.org"
    assert base_url("http://localhost:8000") == "http://localhost:8000"
