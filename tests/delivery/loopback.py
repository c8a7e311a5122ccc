"""Loopback servers that answer the documented REST paths the real clients call, and record every request.

- :class:`FakeKFP`: the Kubeflow Pipelines v2beta1 API (healthz, pipelines and versions, uploads,
  experiments, runs, recurring runs; list, get, terminate and retry a run), enough for ``kfp.Client``.
  A name is unique where KFP keeps it unique: a second pipeline, or a second version of a pipeline, of
  the same name answers 409 ALREADY_EXISTS.
- :class:`FakeGCS`: Cloud Storage object downloads (JSON API media), enough for ``google-cloud-storage``
  reached through ``STORAGE_EMULATOR_HOST``.
- :class:`FakeVertex`: the Vertex AI v1 REST API for pipeline jobs and schedules, enough for
  ``google.cloud.aiplatform`` with ``api_transport="rest"``. A pipeline job id is unique in its location,
  as on Vertex AI: creating one that exists answers 409 ALREADY_EXISTS. ``:cancel`` moves a job to
  CANCELLING, then CANCELLED.

These are recorded contracts (the paths, bodies and answers the clients' REST layers use, as documented), not
the real services: error messages are paraphrased and server-side rules are only those written here.

Nothing here decides what the clients send: the tests assert on the recorded requests.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

ROOT = Path(__file__).resolve().parents[2]
COMPILED = ROOT / "pipelines" / "compiled"


def all_tasks(spec) -> dict:
    """Task key -> task of every DAG of a pipeline spec (dict): the root's and every sub-DAG's (the exit
    handler's group, conditions). Keys are unique across a compiled pipeline's DAGs."""
    dags = [spec["root"]["dag"]] + [c["dag"] for c in spec.get("components", {}).values() if "dag" in c]
    return {key: task for dag in dags for key, task in dag.get("tasks", {}).items()}


#: A registry Vertex AI pulls from (tests compile the Vertex flavour for it: the committed one names a placeholder).
ARTIFACT_REGISTRY = "europe-west4-docker.pkg.dev/proj/tagifai"


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    def files(self) -> dict[str, bytes]:
        """The parts of a multipart/form-data body: field name -> bytes."""
        content_type = self.headers.get("content-type", "")
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + self.body
        )
        return {
            part.get_param("name", header="content-disposition"): part.get_payload(decode=True)
            for part in message.iter_parts()
        }


class _Server:
    def __init__(self):
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                split = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                req = Request(
                    self.command,
                    split.path,
                    {k: v[0] for k, v in parse_qs(split.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length) if length else b"",
                )
                with outer._lock:
                    outer.requests.append(req)
                    status, payload = outer.route(req)
                raw = isinstance(payload, bytes)  # a media download; everything else is JSON
                data = payload if raw else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _handle

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._httpd.shutdown()
        self._httpd.server_close()

    def route(self, req: Request) -> tuple[int, dict | bytes]:
        raise NotImplementedError

    def find(self, method: str, path_suffix: str) -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_suffix)]


def _predicate(query: dict) -> tuple[str, str] | None:
    if "filter" not in query:
        return None
    pred = json.loads(query["filter"])["predicates"][0]
    return pred["key"], pred.get("stringValue", pred.get("string_value"))


EPOCH = "1970-01-01T00:00:00Z"  # what KFP answers for a time not reached yet (finished_at of a running run)
_KFP_FINAL = {"SUCCEEDED", "FAILED", "SKIPPED", "CANCELED"}


def _kfp_error(status: int, code: int, message: str) -> tuple[int, dict]:
    """An error as KFP's grpc-gateway answers it: ``code`` (gRPC), ``message``, ``details``."""
    return status, {"error": message, "code": code, "message": message, "details": []}


@dataclass
class FakeKFP(_Server):
    """KFP v2beta1. ``run_states``: the states GET /runs/{id} answers in turn (the last one repeats) for a run
    created through the API; a run put in ``runs`` by a test keeps its own ``state``.
    GET /runs lists the runs, newest first with ``sort_by=created_at desc`` (of ``experiment_id``, filtered on
    one field such as ``display_name``, ``page_size`` at a time with ``next_page_token``).
    POST /runs/{id}:terminate: a run not final becomes CANCELING, then CANCELED; a final one answers 400.
    POST /runs/{id}:retry: a FAILED or CANCELED run runs again (``retry_states``); another answers 400."""

    run_states: tuple = ("RUNNING", "SUCCEEDED")
    pipelines: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)  # pipeline_id -> [version]
    experiments: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)
    recurring_runs: dict = field(default_factory=dict)
    retry_states: tuple = ("RUNNING", "SUCCEEDED")

    def __post_init__(self):
        _Server.__init__(self)
        self._ids = itertools.count(1)
        self._states: dict[str, itertools.chain] = {}
        self._clock = itertools.count(1)

    def _follow(self, rid: str, states) -> None:
        states = tuple(states)
        self._states[rid] = itertools.chain(states, itertools.repeat(states[-1]))

    def _now(self) -> str:
        """A distinct, increasing creation time per run (2024-01-01T00:00:01Z, ...02Z ...)."""
        n = next(self._clock)
        return f"2024-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"

    def _current(self, rid: str) -> dict:
        """The run as GET answers it now: the next state of a run followed, else its own; times filled in."""
        run = self.runs[rid]
        if rid in self._states:
            run["state"] = next(self._states[rid])
        run.setdefault("created_at", self._now())
        run.setdefault("finished_at", EPOCH)
        if run["state"] in _KFP_FINAL and run["finished_at"] == EPOCH:
            run["finished_at"] = "2024-01-02T00:00:00Z"
        if run["state"] == "FAILED":
            run.setdefault("error", {"code": 2, "message": "task sync-projects failed"})
        return dict(run)

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def route(self, req: Request) -> tuple[int, dict]:
        p = req.path.removeprefix("/apis/v2beta1")
        parts = p.strip("/").split("/")
        if p == "/healthz":
            return 200, {"multi_user": False}
        if p == "/pipelines" and req.method == "GET":
            found = list(self.pipelines.values())
            if pred := _predicate(req.query):
                found = [x for x in found if x.get(pred[0]) == pred[1]]
            return 200, {"pipelines": found, "total_size": len(found)}
        if p == "/pipelines/upload" and req.method == "POST":
            name = req.query["name"]
            if any(x["display_name"] == name for x in self.pipelines.values()):
                return _kfp_error(409, 6, f"Failed to create a pipeline: pipeline {name!r} already exists")
            pid = self._id("pipeline")
            self.pipelines[pid] = {
                "pipeline_id": pid,
                "display_name": name,
                "description": req.query.get("description", ""),
            }
            self.versions[pid] = [
                {"pipeline_id": pid, "pipeline_version_id": self._id("version"), "display_name": name}
            ]
            return 200, self.pipelines[pid]
        if p == "/pipelines/upload_version" and req.method == "POST":
            pid = req.query["pipelineid"]
            if any(v["display_name"] == req.query["name"] for v in self.versions.get(pid, [])):
                return _kfp_error(
                    409, 6, f"Failed to create a pipeline version: version {req.query['name']!r} already exists"
                )
            version = {
                "pipeline_id": pid,
                "pipeline_version_id": self._id("version"),
                "display_name": req.query["name"],
                "description": req.query.get("description", ""),
            }
            self.versions.setdefault(pid, []).append(version)
            return 200, version
        if len(parts) == 2 and parts[0] == "pipelines" and req.method == "GET":
            if parts[1] not in self.pipelines:
                return _kfp_error(404, 5, f"Pipeline {parts[1]} not found")
            return 200, self.pipelines[parts[1]]
        if len(parts) == 4 and parts[0] == "pipelines" and parts[2] == "versions" and req.method == "GET":
            found = [v for v in self.versions.get(parts[1], []) if v["pipeline_version_id"] == parts[3]]
            if not found:
                return _kfp_error(404, 5, f"Pipeline version {parts[3]} not found")
            return 200, found[0]
        if len(parts) == 3 and parts[0] == "pipelines" and parts[2] == "versions" and req.method == "GET":
            found = self.versions.get(parts[1], [])
            if pred := _predicate(req.query):
                found = [x for x in found if x.get(pred[0]) == pred[1]]
            return 200, {"pipeline_versions": found, "total_size": len(found)}
        if p == "/experiments" and req.method == "GET":
            found = list(self.experiments.values())
            if pred := _predicate(req.query):
                found = [x for x in found if x.get(pred[0]) == pred[1]]
            return 200, {"experiments": found, "total_size": len(found)}
        if p == "/experiments" and req.method == "POST":
            eid = self._id("experiment")
            self.experiments[eid] = {**req.json, "experiment_id": eid}
            return 200, self.experiments[eid]
        if p == "/runs" and req.method == "POST":
            rid = self._id("run")
            self.runs[rid] = {
                **req.json,
                "run_id": rid,
                "state": "PENDING",
                "created_at": self._now(),
                "finished_at": EPOCH,
            }
            self._follow(rid, self.run_states)
            return 200, self.runs[rid]
        if p == "/runs" and req.method == "GET":
            found = [
                {**r, "created_at": r.setdefault("created_at", self._now())}
                for r in self.runs.values()
                if "experiment_id" not in req.query or r.get("experiment_id") == req.query["experiment_id"]
            ]
            if pred := _predicate(req.query):
                found = [x for x in found if x.get(pred[0]) == pred[1]]
            if req.query.get("sort_by", "").replace(" ", "") == "created_atdesc":
                found.sort(key=lambda r: r["created_at"], reverse=True)
            total = len(found)
            start = int(req.query.get("page_token") or 0)
            size = int(req.query.get("page_size") or 0) or total or 1
            page = found[start : start + size]
            answer = {"runs": page, "total_size": total} if page else {"total_size": total}  # proto3: [] omitted
            if start + size < total:
                answer["next_page_token"] = str(start + size)
            return 200, answer
        if len(parts) == 2 and parts[0] == "runs" and ":" in parts[1] and req.method == "POST":
            rid, _, verb = parts[1].partition(":")
            if rid not in self.runs:
                return _kfp_error(404, 5, f"Run {rid} not found")
            state = self.runs[rid].get("state", "PENDING")
            if verb == "terminate":
                if state in _KFP_FINAL:
                    return _kfp_error(400, 9, f"Failed to terminate run {rid}: the run is {state}")
                self.runs[rid]["state"] = "CANCELING"
                self._follow(rid, ("CANCELING", "CANCELED"))
                return 200, {}
            if verb == "retry":
                if state not in ("FAILED", "CANCELED"):
                    return _kfp_error(400, 9, f"Failed to retry run {rid}: the run is {state}, not failed")
                self.runs[rid].pop("error", None)
                self.runs[rid]["finished_at"] = EPOCH
                self._follow(rid, self.retry_states)
                return 200, {}
        if len(parts) == 2 and parts[0] == "runs" and req.method == "GET":
            if parts[1] not in self.runs:
                return _kfp_error(404, 5, f"Run {parts[1]} not found")
            return 200, self._current(parts[1])
        if p == "/recurringruns" and req.method == "GET":
            found = [
                r
                for r in self.recurring_runs.values()
                if "experiment_id" not in req.query or r.get("experiment_id") == req.query["experiment_id"]
            ]
            if pred := _predicate(req.query):
                found = [x for x in found if x.get(pred[0]) == pred[1]]
            return 200, {"recurringRuns": found, "total_size": len(found)}  # sic: the API's json_name
        if p == "/recurringruns" and req.method == "POST":
            rid = self._id("recurring")
            self.recurring_runs[rid] = {**req.json, "recurring_run_id": rid, "status": "ENABLED"}
            return 200, self.recurring_runs[rid]
        if len(parts) == 2 and parts[0] == "recurringruns" and req.method == "DELETE":
            self.recurring_runs.pop(parts[1], None)
            return 200, {}
        return 404, {"error": f"no route for {req.method} {req.path}", "code": 5}


@dataclass
class FakeVertex(_Server):
    """Vertex AI v1 REST: pipelineJobs create/get, schedules create/get.

    ``jobs`` is keyed by the job's resource name, so a ``pipelineJobId`` is remembered: creating a job whose
    name exists answers 409 ALREADY_EXISTS (what Vertex AI answers) and changes nothing."""

    job_states: tuple = ("PIPELINE_STATE_RUNNING", "PIPELINE_STATE_SUCCEEDED")
    jobs: dict = field(default_factory=dict)
    schedules: dict = field(default_factory=dict)

    def __post_init__(self):
        _Server.__init__(self)
        self._states: dict[str, itertools.chain] = {}
        self._ids = itertools.count(1)

    def route(self, req: Request) -> tuple[int, dict]:
        p = req.path.removeprefix("/v1/")
        parts = p.split("/")
        # projects/{p}/locations/{l}/pipelineJobs[/{id}] | schedules[/{id}]
        if len(parts) >= 5 and parts[0] == "projects" and parts[2] == "locations":
            parent = "/".join(parts[:4])
            kind = parts[4]
            if kind == "pipelineJobs" and req.method == "POST" and len(parts) == 5:
                job_id = req.query.get("pipelineJobId") or f"job-{next(self._ids)}"
                name = f"{parent}/pipelineJobs/{job_id}"
                if name in self.jobs:
                    return 409, {
                        "error": {
                            "code": 409,
                            "message": f"PipelineJob {name} already exists.",
                            "status": "ALREADY_EXISTS",
                        }
                    }
                self.jobs[name] = {
                    **req.json,
                    "name": name,
                    "state": "PIPELINE_STATE_PENDING",
                    "createTime": "2024-01-01T00:00:00Z",
                }
                self._states[name] = itertools.chain(self.job_states, itertools.repeat(self.job_states[-1]))
                return 200, self.jobs[name]
            if kind == "pipelineJobs" and req.method == "POST" and len(parts) == 6 and parts[5].endswith(":cancel"):
                name = "/".join(parts[:5]) + "/" + parts[5].removesuffix(":cancel")
                if name not in self.jobs:
                    return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
                self._states[name] = itertools.chain(
                    ["PIPELINE_STATE_CANCELLING"], itertools.repeat("PIPELINE_STATE_CANCELLED")
                )
                return 200, {}
            if kind == "pipelineJobs" and req.method == "GET" and len(parts) == 6:
                name = "/".join(parts[:6])
                if name not in self.jobs:
                    return 404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
                job = {**self.jobs[name], "state": next(self._states[name])}
                if job["state"] == "PIPELINE_STATE_FAILED":
                    job["error"] = {"code": 9, "message": "The DAG failed because some tasks failed."}
                return 200, job
            if kind == "schedules" and req.method == "POST" and len(parts) == 5:
                name = f"{parent}/schedules/{next(self._ids)}"
                self.schedules[name] = {
                    **req.json,
                    "name": name,
                    "state": "ACTIVE",
                    "createTime": "2024-01-01T00:00:00Z",
                }
                return 200, self.schedules[name]
            if kind == "schedules" and req.method == "GET" and len(parts) == 6:
                name = "/".join(parts[:6])
                if name in self.schedules:
                    return 200, self.schedules[name]
                return 404, {"error": {"code": 404, "message": "not found"}}
        return 404, {"error": {"code": 404, "message": f"no route for {req.method} {req.path}", "status": "NOT_FOUND"}}


@dataclass
class FakeGCS(_Server):
    """Cloud Storage: the media download ``Blob.download_to_filename`` sends (GET
    /download/storage/v1/b/{bucket}/o/{object}?alt=media) and object metadata (GET /storage/v1/b/.../o/...).
    ``objects`` maps ``gs://bucket/name`` to the object's bytes."""

    objects: dict = field(default_factory=dict)

    def __post_init__(self):
        _Server.__init__(self)

    def route(self, req: Request) -> tuple[int, dict | bytes]:
        path = req.path.removeprefix("/download")
        if req.method == "GET" and path.startswith("/storage/v1/b/") and "/o/" in path:
            bucket, _, name = path.removeprefix("/storage/v1/b/").partition("/o/")
            uri = f"gs://{unquote(bucket)}/{unquote(name)}"
            if uri not in self.objects:
                return 404, {"error": {"code": 404, "message": f"No such object: {uri[5:]}"}}
            data = self.objects[uri]
            if req.query.get("alt") == "media":
                return 200, data
            return 200, {
                "kind": "storage#object",
                "bucket": unquote(bucket),
                "name": unquote(name),
                "size": str(len(data)),
            }
        return 404, {"error": {"code": 404, "message": f"no route for {req.method} {req.path}"}}
