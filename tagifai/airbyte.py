"""Airbyte as a source: trigger a connection's sync and wait for it to end.

The counterpart of the course's ``AirbyteTriggerSyncOperator(airbyte_conn_id, connection_id,
asynchronous=False, timeout=3600, wait_seconds=3)``: Airbyte extracts and loads into the warehouse's
raw tables; after it the pipeline goes on as after ``sync``.

API: Airbyte's Configuration API, served by every self-managed Airbyte (``abctl``, Helm) under
``<server>/api/v1`` (the same endpoints the Airbyte web app and Airflow's Airbyte provider before 4.0 use):

* ``POST /api/v1/connections/sync`` ``{"connectionId": ...}`` -> ``JobInfoRead`` (starts a sync job)
* ``POST /api/v1/jobs/get`` ``{"id": <job id>}`` -> ``JobInfoRead`` (``job.status``; each attempt's
  ``recordsSynced``/``bytesSynced``/``totalStats`` and ``failureSummary.failures[].externalMessage``)
* ``POST /api/v1/jobs/cancel`` ``{"id": <job id>}`` (on timeout)
* ``POST /api/v1/applications/token`` ``{"client_id", "client_secret"}`` -> ``{"access_token"}``
  (only with client credentials)

Why not the public API (``POST /v1/jobs``, ``GET /v1/jobs/{id}``): its job object carries no failure
reason, and a failed sync should fail with Airbyte's own message.

Auth, never logged nor put in a message: a bearer token (``token=``, ``TAGIFAI_AIRBYTE_TOKEN`` or the
file named by ``TAGIFAI_AIRBYTE_TOKEN_FILE``, e.g. a mounted Kubernetes secret), or an application's
client id and secret (``TAGIFAI_AIRBYTE_CLIENT_ID`` and ``TAGIFAI_AIRBYTE_CLIENT_SECRET`` or
``..._CLIENT_SECRET_FILE``), exchanged for short-lived access tokens that are renewed when the server
answers 401. With none of them, requests go unauthenticated (an Airbyte with auth disabled).

Statuses: ``pending``/``running``/``incomplete`` (an attempt failed and Airbyte retries) mean wait;
``succeeded`` ends; ``failed``/``cancelled`` raise :class:`AirbyteJobFailed` with the attempts' failure
messages. Waiting polls with a growing interval (``poll_interval`` times ``backoff`` up to
``max_poll_interval``); after ``timeout`` seconds the job is cancelled and :class:`AirbyteTimeout`
raised. 5xx answers, 429 and connection errors are retried (``retries`` times, exponential backoff).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)

URL_ENV = "TAGIFAI_AIRBYTE_URL"
CONNECTION_ENV = "TAGIFAI_AIRBYTE_CONNECTION_ID"
TOKEN_ENV = "TAGIFAI_AIRBYTE_TOKEN"
TOKEN_FILE_ENV = "TAGIFAI_AIRBYTE_TOKEN_FILE"
CLIENT_ID_ENV = "TAGIFAI_AIRBYTE_CLIENT_ID"
CLIENT_SECRET_ENV = "TAGIFAI_AIRBYTE_CLIENT_SECRET"
CLIENT_SECRET_FILE_ENV = "TAGIFAI_AIRBYTE_CLIENT_SECRET_FILE"

RUNNING = {"pending", "running", "incomplete"}
SUCCEEDED = "succeeded"
FAILED = {"failed", "cancelled", "error"}
_TRANSIENT = {429, 500, 502, 503, 504}


class AirbyteError(RuntimeError):
    """Airbyte could not be reached, refused a request, or is misconfigured here."""


@dataclass
class AirbyteJob:
    """The outcome of one sync job (what the component writes to its Dataset and Metrics)."""

    job_id: int
    connection_id: str
    status: str
    attempts: int = 0
    rows_synced: int | None = None
    bytes_synced: int | None = None
    error: str | None = None
    seconds: float = 0.0
    server_url: str = ""
    statuses: list[str] = field(default_factory=list)  # distinct statuses seen, in order

    def to_dict(self) -> dict:
        return asdict(self)


class AirbyteJobFailed(AirbyteError):
    """The sync job ended failed or cancelled; the message holds Airbyte's failure messages."""

    def __init__(self, message: str, job: AirbyteJob):
        super().__init__(message)
        self.job = job


class AirbyteTimeout(AirbyteError):
    """The sync job did not end within the timeout (it was asked to cancel)."""

    def __init__(self, message: str, job: AirbyteJob):
        super().__init__(message)
        self.job = job


def _read_secret(value_env: str, file_env: str | None = None) -> str | None:
    value = os.environ.get(value_env, "").strip()
    if value:
        return value
    path = os.environ.get(file_env, "").strip() if file_env else ""
    if path:
        try:
            return Path(path).expanduser().read_text(encoding="utf-8").strip() or None
        except OSError as exc:
            raise AirbyteError(f"{file_env}={path}: cannot read the secret file ({type(exc).__name__})") from None
    return None


def base_url(server_url: str | None) -> str:
    """``http(s)://host[:port]`` of the Airbyte server (a trailing ``/api`` or ``/api/v1`` is dropped)."""
    url = (server_url or os.environ.get(URL_ENV, "")).strip().rstrip("/")
    if not url:
        raise AirbyteError(f"no Airbyte server: pass server_url or set {URL_ENV} (e.g. http://localhost:8000)")
    if "://" not in url:
        raise AirbyteError(f"Airbyte server {url!r}: expected an http:// or https:// URL")
    for suffix in ("/api/v1", "/api"):
        if url.endswith(suffix):
            url = url[: -len(suffix)]
    return url


class AirbyteClient:
    """The few Configuration API calls a sync needs, with retries and token handling."""

    def __init__(
        self,
        server_url: str | None = None,
        token: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        request_timeout: float = 30.0,
        retries: int = 4,
        retry_backoff: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
    ):
        import requests

        self.url = base_url(server_url)
        self._static_token = token or _read_secret(TOKEN_ENV, TOKEN_FILE_ENV)
        self._client_id = self._client_secret = None
        if not self._static_token:
            self._client_id = client_id or os.environ.get(CLIENT_ID_ENV, "").strip() or None
            self._client_secret = client_secret or _read_secret(CLIENT_SECRET_ENV, CLIENT_SECRET_FILE_ENV)
            if bool(self._client_id) != bool(self._client_secret):
                missing = CLIENT_SECRET_ENV if self._client_id else CLIENT_ID_ENV
                raise AirbyteError(f"Airbyte client credentials are incomplete: {missing} is not set")
        self._token: str | None = None  # the access token exchanged for the client credentials
        self.request_timeout = request_timeout
        self.retries = retries
        self.retry_backoff = retry_backoff
        self._sleep = sleep
        self._session = requests.Session()

    # ----------------------------------------------------------------------------------- http

    def _access_token(self, renew: bool = False) -> str | None:
        if self._static_token:
            return self._static_token
        if self._client_id and (renew or not self._token):
            body = {"client_id": self._client_id, "client_secret": self._client_secret}
            token = self._send("/api/v1/applications/token", body, auth=False).get("access_token")
            if not token:
                raise AirbyteError(f"Airbyte at {self.url} returned no access_token for the client credentials")
            self._token = token
        return self._token

    def _send(self, path: str, body: dict, auth: bool = True) -> dict:
        """POST ``body`` to ``path``; retry transient failures; raise AirbyteError naming the call."""
        import requests

        url = f"{self.url}{path}"
        renewed = False
        attempt = 0
        while True:
            headers = {"Accept": "application/json", "Content-Type": "application/json"}
            if auth:
                token = self._access_token()
                if token:
                    headers["Authorization"] = f"Bearer {token}"
            try:
                response = self._session.post(url, json=body, headers=headers, timeout=self.request_timeout)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt < self.retries:
                    delay = self.retry_backoff * 2**attempt
                    log.warning("Airbyte %s: %s; retrying in %.1f s", path, type(exc).__name__, delay)
                    attempt += 1
                    self._sleep(delay)
                    continue
                raise AirbyteError(f"Airbyte at {self.url} is unreachable ({path}): {type(exc).__name__}") from None
            status = response.status_code
            if status in _TRANSIENT and attempt < self.retries:
                delay = self.retry_backoff * 2**attempt
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
                log.warning("Airbyte %s answered %s; retrying in %.1f s", path, status, delay)
                attempt += 1
                self._sleep(delay)
                continue
            if status == 401 and auth and self._client_id and not renewed:
                renewed = True  # access tokens are short-lived: get a new one once
                self._access_token(renew=True)
                continue
            if status >= 400:
                raise AirbyteError(self._http_error(path, status, response, auth))
            try:
                return response.json() if response.content else {}
            except ValueError:
                raise AirbyteError(f"Airbyte {path} answered {status} with a body that is not JSON") from None

    def _http_error(self, path: str, status: int, response: Any, auth: bool) -> str:
        message = ""
        if path != "/api/v1/applications/token":  # never echo what the token endpoint says
            try:
                data = response.json()
                message = data.get("message") or data.get("detail") or data.get("title") or ""
            except ValueError:
                message = (response.text or "")[:200]
        text = f"Airbyte {path} answered {status}"
        if message:
            text += f": {' '.join(str(message).split())}"
        if status in (401, 403):
            if not (self._static_token or self._client_id):
                text += f" (no credentials: set {TOKEN_ENV}, {TOKEN_FILE_ENV}, or {CLIENT_ID_ENV} and {CLIENT_SECRET_ENV})"
            else:
                text += " (the Airbyte credentials were refused)"
        return text

    # ----------------------------------------------------------------------------------- calls

    def trigger_sync(self, connection_id: str) -> dict:
        return self._send("/api/v1/connections/sync", {"connectionId": connection_id})

    def get_job(self, job_id: int) -> dict:
        return self._send("/api/v1/jobs/get", {"id": job_id})

    def cancel_job(self, job_id: int) -> dict:
        return self._send("/api/v1/jobs/cancel", {"id": job_id})

    def close(self) -> None:
        self._session.close()


# --------------------------------------------------------------------------------------- parsing


def _attempts(info: dict) -> list[dict]:
    return [a.get("attempt") or {} for a in info.get("attempts") or []]


def _status(info: dict) -> str:
    return str((info.get("job") or {}).get("status") or "").lower()


def failure_messages(info: dict) -> list[str]:
    """Airbyte's failure reasons of every attempt: ``origin type: message``, without duplicates."""
    out: list[str] = []
    for attempt in _attempts(info):
        for failure in (attempt.get("failureSummary") or {}).get("failures") or []:
            message = failure.get("externalMessage") or failure.get("internalMessage") or "no message"
            origin = " ".join(str(x) for x in (failure.get("failureOrigin"), failure.get("failureType")) if x)
            text = f"{origin}: {message}" if origin else str(message)
            text = " ".join(text.split())
            if text not in out:
                out.append(text)
    return out


def _counts(info: dict) -> tuple[int | None, int | None]:
    """Rows and bytes of the last attempt that reports them (committed counts when given)."""
    for attempt in reversed(_attempts(info)):
        stats = attempt.get("totalStats") or {}
        rows = stats.get("recordsCommitted", attempt.get("recordsSynced", stats.get("recordsEmitted")))
        size = stats.get("bytesCommitted", attempt.get("bytesSynced", stats.get("bytesEmitted")))
        if rows is not None or size is not None:
            return (None if rows is None else int(rows)), (None if size is None else int(size))
    return None, None


def _job(info: dict, connection_id: str, server_url: str, started: float, statuses: list[str]) -> AirbyteJob:
    rows, size = _counts(info)
    errors = failure_messages(info)
    return AirbyteJob(
        job_id=int((info.get("job") or {}).get("id")),
        connection_id=connection_id,
        status=_status(info),
        attempts=len(_attempts(info)),
        rows_synced=rows,
        bytes_synced=size,
        error="; ".join(errors) or None,
        seconds=round(time.monotonic() - started, 3),
        server_url=server_url,
        statuses=list(statuses),
    )


# ------------------------------------------------------------------------------------------ sync


def sync_connection(
    connection_id: str | None = None,
    server_url: str | None = None,
    token: str | None = None,
    timeout: float = 3600.0,
    poll_interval: float = 3.0,
    max_poll_interval: float = 60.0,
    backoff: float = 1.5,
    cancel_on_timeout: bool = True,
    client: AirbyteClient | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> AirbyteJob:
    """Trigger the sync of ``connection_id`` and wait until it ends; return the succeeded job.

    ``connection_id`` and ``server_url`` default to TAGIFAI_AIRBYTE_CONNECTION_ID and TAGIFAI_AIRBYTE_URL.
    Raises :class:`AirbyteJobFailed` (failed or cancelled, with Airbyte's messages),
    :class:`AirbyteTimeout` (not done after ``timeout`` seconds; cancelled unless ``cancel_on_timeout``
    is false) and :class:`AirbyteError` (bad configuration, refused or failing requests).
    """
    connection_id = (connection_id or os.environ.get(CONNECTION_ENV, "")).strip()
    if not connection_id:
        raise AirbyteError(f"no Airbyte connection: pass connection_id or set {CONNECTION_ENV}")
    own = client is None
    client = client or AirbyteClient(server_url, token=token, sleep=sleep)
    started = time.monotonic()
    deadline = started + timeout
    try:
        info = client.trigger_sync(connection_id)
        job_id = (info.get("job") or {}).get("id")
        if job_id is None:
            raise AirbyteError(f"Airbyte did not return a job for connection {connection_id}")
        statuses = [_status(info)]
        log.info("Airbyte sync job %s of connection %s started (%s)", job_id, connection_id, statuses[-1])
        interval = poll_interval
        while _status(info) in RUNNING or not _status(info):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                job = _job(info, connection_id, client.url, started, statuses)
                note = "it was asked to cancel"
                if cancel_on_timeout:
                    try:
                        client.cancel_job(job_id)
                    except AirbyteError as exc:
                        note = f"cancelling it failed: {exc}"
                else:
                    note = "it was left running"
                raise AirbyteTimeout(
                    f"Airbyte sync job {job_id} of connection {connection_id} did not finish within "
                    f"{timeout:g} s (last status: {job.status or 'unknown'}); {note}",
                    job,
                )
            sleep(min(interval, remaining))
            interval = min(max_poll_interval, interval * backoff)
            info = client.get_job(job_id)
            if _status(info) != statuses[-1]:
                statuses.append(_status(info))
                log.info("Airbyte sync job %s: %s", job_id, statuses[-1])
        job = _job(info, connection_id, client.url, started, statuses)
        if job.status != SUCCEEDED:
            reason = job.error or "Airbyte reported no failure reason"
            raise AirbyteJobFailed(
                f"Airbyte sync job {job_id} of connection {connection_id} {job.status} after "
                f"{job.attempts} attempt(s): {reason}",
                job,
            )
        log.info("Airbyte sync job %s succeeded: %s rows in %.1f s", job_id, job.rows_synced, job.seconds)
        return job
    finally:
        if own:
            client.close()
