"""A loopback Airbyte Configuration API: the endpoints tagifai.airbyte calls, with scripted jobs.

Endpoints (all POST, JSON, as in Airbyte's config.yaml): /api/v1/connections/sync,
/api/v1/jobs/get, /api/v1/jobs/cancel, /api/v1/applications/token. Answers follow the API's
``JobInfoRead`` shape: ``{"job": {"id", "configType", "configId", "status", ...}, "attempts":
[{"attempt": {"id", "status", "recordsSynced", "bytesSynced", "totalStats", "failureSummary"}, "logs"}]}``.

A connection is a script: the job statuses that successive ``jobs/get`` calls return (the last one
stays). Every request is recorded with its headers, so tests can assert paths, bodies and auth.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Script:
    statuses: list[str]
    rows: int | None = None
    bytes: int | None = None
    failures: list[dict] = field(default_factory=list)  # AttemptFailureReason dicts, on failed attempts
    attempts: int = 1


@dataclass
class FakeJob:
    id: int
    connection_id: str
    script: Script
    polls: int = 0
    cancelled: bool = False

    def status(self) -> str:
        if self.cancelled:
            return "cancelled"
        return self.script.statuses[min(self.polls, len(self.script.statuses) - 1)]

    def info(self) -> dict:
        status = self.status()
        now = int(time.time())
        attempts = []
        for n in range(self.script.attempts):
            last = n == self.script.attempts - 1
            attempt_status = {"succeeded": "succeeded", "failed": "failed", "cancelled": "failed"}.get(status, "running") if last else "failed"
            attempt: dict[str, Any] = {"id": n, "status": attempt_status, "createdAt": now, "updatedAt": now}
            if last and status == "succeeded":
                attempt.update(recordsSynced=self.script.rows, bytesSynced=self.script.bytes,
                               totalStats={"recordsEmitted": self.script.rows, "bytesEmitted": self.script.bytes,
                                           "recordsCommitted": self.script.rows, "bytesCommitted": self.script.bytes})
            if attempt_status == "failed" and self.script.failures:
                attempt["failureSummary"] = {"failures": self.script.failures, "partialSuccess": False}
            attempts.append({"attempt": attempt, "logs": {"logLines": []}})
        return {"job": {"id": self.id, "configType": "sync", "configId": self.connection_id, "status": status,
                        "createdAt": now, "updatedAt": now},
                "attempts": attempts}


@dataclass
class FakeAirbyte:
    token: str | None = None  # required bearer token (None: no auth)
    client_id: str | None = None  # with client_secret: tokens come from /api/v1/applications/token
    client_secret: str | None = None
    token_uses: int | None = None  # an exchanged token expires after this many uses
    requests: list[dict] = field(default_factory=list)
    connections: dict[str, Script] = field(default_factory=dict)
    jobs: dict[int, FakeJob] = field(default_factory=dict)
    #: [path, HTTP status, how many times] answered before the real handler (transient faults)
    faults: list[list] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._issued: dict[str, int] = {}
        self._next_id = 100
        self._http: ThreadingHTTPServer | None = None

    def start(self) -> "FakeAirbyte":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = fake.dispatch(self.path, dict(self.headers), raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._http:
            self._http.shutdown()
            self._http.server_close()

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def add_connection(self, statuses: list[str], **kw: Any) -> str:
        connection_id = str(uuid.uuid4())
        self.connections[connection_id] = Script(statuses=statuses, **kw)
        return connection_id

    def paths(self) -> list[str]:
        return [r["path"] for r in self.requests]

    # ---------------------------------------------------------------------------------- handling

    def _authorized(self, headers: dict) -> bool:
        auth = headers.get("Authorization") or headers.get("authorization") or ""
        if self.token is None and self.client_id is None:
            return True
        if self.token is not None and auth == f"Bearer {self.token}":
            return True
        token = auth[7:] if auth.startswith("Bearer ") else ""
        if token in self._issued:
            if self.token_uses is not None and self._issued[token] >= self.token_uses:
                return False
            self._issued[token] += 1
            return True
        return False

    def dispatch(self, path: str, headers: dict, raw: bytes) -> tuple[int, dict]:
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return 400, {"message": "body is not JSON"}
        with self.lock:
            self.requests.append({"path": path, "body": body, "headers": headers})
            for fault in self.faults:
                if fault[2] > 0 and fault[0] == path:
                    fault[2] -= 1
                    return fault[1], {"message": f"injected {fault[1]}"}
            if path == "/api/v1/applications/token":
                if self.client_id and body.get("client_id") == self.client_id and body.get("client_secret") == self.client_secret:
                    token = f"access-{uuid.uuid4().hex}"
                    self._issued[token] = 0
                    return 200, {"access_token": token, "token_type": "Bearer", "expires_in": 180}
                return 401, {"message": "invalid client credentials"}
            if not self._authorized(headers):
                return 401, {"message": "Unauthorized"}
            if path == "/api/v1/connections/sync":
                script = self.connections.get(body.get("connectionId"))
                if script is None:
                    return 404, {"id": body.get("connectionId"),
                                 "message": f"Could not find configuration for STANDARD_SYNC: {body.get('connectionId')}."}
                running = [j for j in self.jobs.values() if j.connection_id == body["connectionId"] and j.status() in ("pending", "running", "incomplete")]
                if running:
                    return 409, {"message": f"A sync is already running for connection {body['connectionId']}"}
                self._next_id += 1
                job = FakeJob(self._next_id, body["connectionId"], script)
                self.jobs[job.id] = job
                return 200, job.info()
            if path in ("/api/v1/jobs/get", "/api/v1/jobs/cancel"):
                job = self.jobs.get(body.get("id"))
                if job is None:
                    return 404, {"id": str(body.get("id")), "message": f"Could not find job with id: {body.get('id')}"}
                if path.endswith("cancel"):
                    job.cancelled = True
                else:
                    job.polls += 1
                return 200, job.info()
            return 404, {"message": f"no route {path}"}
