"""Run a pipeline with kfp.local's DockerRunner: every step in its own image, as on a cluster.

Nothing reaches a step through the host's Python environment. What each step needs arrives the way
it would in a Kubeflow deployment:

- **sources** over http: local source files (``DATA_DIR``, ``--projects``/``--tags`` paths) are served
  by a small file server on the host's loopback, and the steps read ``http://127.0.0.1:<port>/...``;
  http(s):// and gs:// sources are passed through untouched;
- **MLflow** (tracking and model registry) behind a real ``mlflow server`` process on loopback, whose
  backend store is the state folder's ``mlflow.db`` (the same store the subprocess runner writes) and
  whose artifact store is ``mlartifacts/`` there (``--serve-artifacts``); a tracking URI that is already
  http(s) is used as it is and no server is started;
- **the warehouse (DuckDB file) and the Optuna storage (SQLite)** in the mounted workspace: the state
  folder (and the folders of a warehouse or Optuna file outside it) is bind-mounted at the same path
  in every container, like a persistent volume; kfp mounts the pipeline root itself. BigQuery and
  server-backed Optuna URLs need no mount.

The containers join the host's network namespace (``network_mode="host"``) to reach those two
loopback servers, run as the images' non-root user (uid 10001; when the host user is root the state
folder is handed to that uid first), or as the host user when that is not root, so that files keep
their owner. Containers are labelled with a run token; a watcher on the engine's events records,
for every container, the task it ran, its image, the image's step label, its user and exit code:
the summary's ``containers`` list, which is how a test checks that each task ran in its own image.

Entry point: :func:`session`, used by ``tagifai run --runner docker`` (local_run.run_local).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlparse

#: The uid/gid of the images' user (images/base.Dockerfile).
IMAGE_UID = 10001
STEP_LABEL = "org.tagifai.step"
RUN_LABEL = "org.tagifai.run"
#: Quiet the libraries' telemetry and git probing in the containers, as the subprocess runner's host does.
CONTAINER_ENV = {
    "DO_NOT_TRACK": "1",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "PYTHONUNBUFFERED": "1",
    # the MLflow client's retries on connection errors (about 4 minutes in all) cover a server that
    # is still creating its tables when the first MLflow step starts
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "8",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}


class DockerRunError(RuntimeError):
    """The Docker runner cannot start: no engine, a missing image, a server that did not come up."""


# ------------------------------------------------------------------------------------------------
# the file server for local sources


class FileServer:
    """Serves a fixed set of local files over http on loopback (GET and HEAD only, nothing else)."""

    def __init__(self, host: str = "127.0.0.1"):
        self.files: dict[str, Path] = {}
        self.requests: list[str] = []
        files, requests = self.files, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, body: bool) -> None:
                path = files.get(urlparse(self.path).path)
                requests.append(self.path)
                if path is None or not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self):  # noqa: N802 - http.server's naming
                self._send(True)

            def do_HEAD(self):  # noqa: N802
                self._send(False)

            def log_message(self, *args):  # keep the terminal clean; requests are recorded above
                pass

        self._server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="tagifai-file-server", daemon=True)

    def add(self, path: Path) -> str:
        """Serve ``path``; returns its URL (``/<n>/<file name>``, so the extension still tells the format)."""
        path = Path(path).resolve()
        for key, existing in self.files.items():
            if existing == path:
                return self.url + key
        key = f"/{len(self.files)}/{quote(path.name)}"
        self.files[key] = path
        return self.url + key

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# ------------------------------------------------------------------------------------------------
# the MLflow server


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on loopback, tracking and registry in ``backend_store_uri``, artifacts served."""

    def __init__(self, backend_store_uri: str, artifacts_destination: Path, log_path: Path, host: str = "127.0.0.1"):
        self.backend_store_uri = backend_store_uri
        self.artifacts_destination = Path(artifacts_destination)
        self.log_path = Path(log_path)
        self.host = host
        self.port = 0
        self.url = ""
        self._proc: subprocess.Popen | None = None
        self._log = None
        self._started = 0.0
        self.ready_seconds: float | None = None

    def start(self, wait: bool = True, timeout: float = 180.0) -> MlflowServer:
        """Launch the server; with ``wait`` return once /health answers, else return at once and let
        :meth:`wait_ready` (or a thread running it) watch it come up."""
        self.artifacts_destination.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.port = free_port(self.host)
        self.url = f"http://{self.host}:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--workers",
            "1",
            "--backend-store-uri",
            self.backend_store_uri,
            "--serve-artifacts",
            "--artifacts-destination",
            self.artifacts_destination.as_uri(),
        ]
        self._log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - open while the server runs
        self._log.write(f"$ {' '.join(cmd)}\n")
        self._log.flush()
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="1")
        self._started = time.monotonic()
        self._proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 180.0) -> float:
        """Block until /health answers; returns the seconds since launch. Raises DockerRunError otherwise."""
        deadline = self._started + timeout
        while time.monotonic() < deadline:
            proc = self._proc
            if proc is None:
                raise DockerRunError("mlflow server was stopped before it answered")
            if proc.poll() is not None:
                tail = "".join(self.log_path.read_text(encoding="utf-8", errors="replace").splitlines(True)[-15:])
                raise DockerRunError(f"mlflow server exited with {proc.returncode} (log {self.log_path}):\n{tail}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        self.ready_seconds = round(time.monotonic() - self._started, 1)
                        return self.ready_seconds
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.5)
        raise DockerRunError(f"mlflow server did not answer on {self.url} within {timeout:.0f} s (log {self.log_path})")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            # the server runs its workers in its own session: end that whole group, and only it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(timeout=5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


# ------------------------------------------------------------------------------------------------
# what the containers ran


@dataclass
class ContainerRecord:
    container: str
    image: str
    step_label: str | None
    user: str
    task: str | None = None
    function: str | None = None
    run: str | None = None
    exit_code: int | None = None
    seconds: float | None = None
    _started_ns: int = field(default=0, repr=False)

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}


def _task_of(args: list[str]) -> tuple[str | None, str | None, str | None]:
    """(run, task, function) from a KFP container's command: the executor input names the task's output file."""
    run = task = function = None
    with contextlib.suppress(ValueError, IndexError, KeyError, TypeError):
        function = args[args.index("--function_to_execute") + 1]
    with contextlib.suppress(ValueError, IndexError, KeyError, TypeError, json.JSONDecodeError):
        executor_input = json.loads(args[args.index("--executor_input") + 1])
        output_file = Path(executor_input["outputs"]["outputFile"])
        task, run = output_file.parent.name, output_file.parent.parent.name
    return run, task, function


class ContainerWatcher:
    """Records every container of one run (by its run label) from the engine's event stream."""

    def __init__(self, client, run_token: str):
        self.client = client
        self.run_token = run_token
        self.records: dict[str, ContainerRecord] = {}
        self._events = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    def start(self) -> ContainerWatcher:
        self._events = self.client.events(
            decode=True,
            since=int(time.time()) - 1,
            filters={"type": "container", "event": ["start", "die"], "label": f"{RUN_LABEL}={self.run_token}"},
        )
        self._thread = threading.Thread(target=self._watch, name="tagifai-container-watcher", daemon=True)
        self._thread.start()
        return self

    def _watch(self) -> None:
        with contextlib.suppress(Exception):  # the stream ends with an error when stop() closes it
            for event in self._events:
                cid = event.get("id") or event.get("Actor", {}).get("ID", "")
                attrs = event.get("Actor", {}).get("Attributes", {})
                if event.get("Action") == "start":
                    rec = ContainerRecord(
                        container=cid[:12],
                        image=attrs.get("image", ""),
                        step_label=attrs.get(STEP_LABEL),
                        user="",
                        _started_ns=event.get("timeNano", 0),
                    )
                    try:  # the container is running: read its command (which task) and user
                        info = self.client.api.inspect_container(cid)
                        rec.user = info["Config"].get("User") or ""
                        rec.image = info["Config"].get("Image") or rec.image
                        rec.run, rec.task, rec.function = _task_of(list(info.get("Args") or []))
                    except Exception:  # gone already (auto-removed): keep what the event said
                        pass
                    self.records[cid] = rec
                elif event.get("Action") == "die" and cid in self.records:
                    rec = self.records[cid]
                    with contextlib.suppress(ValueError, TypeError):
                        rec.exit_code = int(attrs.get("exitCode"))
                    if rec._started_ns and event.get("timeNano"):
                        rec.seconds = round((event["timeNano"] - rec._started_ns) / 1e9, 2)

    def stop(self, settle: float = 1.0) -> list[dict]:
        time.sleep(settle)  # let the last "die" event arrive
        if self._events is not None:
            with contextlib.suppress(Exception):
                self._events.close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return [r.to_dict() for r in sorted(self.records.values(), key=lambda r: r._started_ns)]


# ------------------------------------------------------------------------------------------------
# setting up a run


@dataclass
class DockerPlan:
    """What a Docker run needs: rewritten pipeline arguments, mounts, container environment and user."""

    arguments: dict
    mounts: list[Path]
    environment: dict
    user: str | None
    mlflow_backend: str | None = None  # start a server on this store when set
    local_files: dict[str, Path] = field(default_factory=dict)  # argument -> local file to serve


def _local_path(uri: str) -> Path | None:
    if not uri:
        return None
    if uri.startswith("file://"):
        return Path(urlparse(uri).path)
    if "://" in uri:
        return None
    return Path(uri).expanduser().resolve()


def _sqlite_or_duckdb_file(uri: str) -> Path | None:
    for prefix in ("sqlite:///", "duckdb:///"):
        if uri.startswith(prefix):
            return Path(uri[len(prefix) :]).expanduser().resolve()
    return None


def _collapse(paths: list[Path]) -> list[Path]:
    """Distinct folders, dropping any folder inside another one of the list."""
    out: list[Path] = []
    for p in sorted({p.resolve() for p in paths}, key=lambda p: len(p.parts)):
        if not any(p == q or q in p.parents for q in out):
            out.append(p)
    return out


def plan(arguments: dict, home: Path, image_user: str | None = None) -> DockerPlan:
    """Rewrite ``arguments`` for containers and collect the mounts (pure: starts nothing)."""
    home = Path(home).resolve()
    args = dict(arguments)
    mounts = [home]
    local_files: dict[str, Path] = {}
    for key in ("projects_source", "tags_source"):
        path = _local_path(args.get(key, ""))
        if path is not None:
            if not path.is_file():
                raise DockerRunError(f"{key}: {path}: no such file")
            local_files[key] = path
    if warehouse := _sqlite_or_duckdb_file(args.get("warehouse", "")):
        mounts.append(warehouse.parent)
    if optuna := _sqlite_or_duckdb_file(args.get("optuna_storage", "")):
        mounts.append(optuna.parent)
    mlflow_backend = None
    tracking = args.get("mlflow_tracking_uri")
    if tracking is not None and not tracking.startswith(("http://", "https://", "databricks")):
        mlflow_backend = tracking or f"sqlite:///{home / 'mlflow.db'}"
        if db := _sqlite_or_duckdb_file(mlflow_backend):
            # a file: artifact location of an experiment made by the subprocess runner is written directly
            mounts.append(db.parent)
    if state_dir := args.get("state_dir"):
        mounts.append(Path(state_dir).resolve())
    env = dict(CONTAINER_ENV)
    env.update({k: v for k, v in os.environ.items() if k.startswith("TAGIFAI_")})  # the run's settings
    env["TAGIFAI_HOME"] = str(home)
    for key, var in (("warehouse", "TAGIFAI_WAREHOUSE"), ("optuna_storage", "TAGIFAI_OPTUNA_STORAGE")):
        if args.get(key):
            env[var] = args[key]
    env.pop("TAGIFAI_PROJECT_DIR", None)  # the image's own (/app), never the host checkout
    env.pop("TAGIFAI_DATA_DIR", None)
    user = None
    if os.getuid() != 0:
        user = f"{os.getuid()}:{os.getgid()}"  # keep the host user's ownership of the state folder
        env["HOME"] = "/tmp"  # that uid has no home in the image
    return DockerPlan(
        arguments=args,
        mounts=_collapse(mounts),
        environment=env,
        user=user,
        mlflow_backend=mlflow_backend,
        local_files=local_files,
    )


def hand_over(paths: list[Path], uid: int = IMAGE_UID, gid: int = IMAGE_UID) -> int:
    """Give ``paths`` (recursively) to the images' user, so that it can write the state (host root only)."""
    changed = 0
    for top in paths:
        if not top.exists():
            top.mkdir(parents=True, exist_ok=True)
        for dirpath, dirnames, filenames in os.walk(top):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                with contextlib.suppress(FileNotFoundError):
                    st = os.lstat(name)
                    if (st.st_uid, st.st_gid) != (uid, gid):
                        os.lchown(name, uid, gid)
                        changed += 1
    return changed


def pipeline_images(pipeline) -> dict[str, str]:
    """executor -> image of every container task of a built pipeline."""
    from google.protobuf import json_format

    spec = json_format.MessageToDict(pipeline.pipeline_spec)
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    return {name: ex["container"]["image"] for name, ex in executors.items() if "container" in ex}


def docker_client():
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - docker is in the dev environment
        raise DockerRunError("the Docker runner needs the `docker` package (pip install docker)") from exc
    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except Exception as exc:
        raise DockerRunError(
            f"no Docker engine answers ({type(exc).__name__}: {exc}); "
            "start one (bash .ci/docker.sh as root) or set DOCKER_HOST"
        ) from exc
    return client


def check_images(client, images: list[str]) -> dict[str, dict]:
    """image -> {id, user, step label}; fails naming every image that is not built (no registry is pulled)."""
    found, missing = {}, []
    for image in sorted(set(images)):
        try:
            attrs = client.images.get(image).attrs
        except Exception:
            missing.append(image)
            continue
        config = attrs.get("Config") or {}
        found[image] = {
            "id": attrs["Id"][:19],
            "user": config.get("User") or "",
            "step": (config.get("Labels") or {}).get(STEP_LABEL),
        }
    if missing:
        raise DockerRunError(
            f"image(s) not built: {', '.join(missing)}; build them with `tagifai images build` "
            "(`make images`; BASE_IMAGE=... where no registry is reachable)"
        )
    return found


@contextlib.contextmanager
def services(docker_plan: DockerPlan, home: Path, wait_for_mlflow: bool = False):
    """Start the file server and the MLflow server the plan needs; rewrite its arguments; stop them after."""
    started: list = []
    info: dict = {}
    try:
        if docker_plan.local_files:
            files = FileServer().start()
            started.append(files)
            for key, path in docker_plan.local_files.items():
                docker_plan.arguments[key] = files.add(path)
            info["file_server"] = files.url
        if docker_plan.mlflow_backend:
            # Launched, not awaited: the first step that talks to MLflow (optimize) comes after the
            # DataOps steps, and the MLflow client retries while the server creates its tables (about
            # 10 s on a new store here, 25 s on a loaded machine). A thread watches it come up.
            server = MlflowServer(
                docker_plan.mlflow_backend, Path(home) / "mlartifacts", Path(home) / "logs" / "mlflow-server.log"
            ).start(wait=wait_for_mlflow)
            started.append(server)
            if not wait_for_mlflow:

                def watch():
                    try:
                        info["mlflow_ready_seconds"] = server.wait_ready()
                    except DockerRunError as exc:
                        info["mlflow_error"] = str(exc)

                threading.Thread(target=watch, name="tagifai-mlflow-ready", daemon=True).start()
            else:
                info["mlflow_ready_seconds"] = server.ready_seconds
            docker_plan.arguments["mlflow_tracking_uri"] = server.url
            docker_plan.environment["TAGIFAI_MLFLOW_TRACKING_URI"] = server.url
            docker_plan.environment["MLFLOW_TRACKING_URI"] = server.url
            info["mlflow_server"] = server.url
            info["mlflow_backend"] = docker_plan.mlflow_backend
        yield info
    finally:
        for svc in reversed(started):
            with contextlib.suppress(Exception):
                svc.stop()


def make_runner(docker_plan: DockerPlan, run_token: str):
    """kfp.local.DockerRunner with the plan's mounts, environment and user, on the host network."""
    from docker.types import Mount
    from kfp import local

    kwargs = dict(
        network_mode="host",
        mounts=[Mount(target=str(p), source=str(p), type="bind", read_only=False) for p in docker_plan.mounts],
        environment=dict(docker_plan.environment),
        labels={RUN_LABEL: run_token},
    )
    if docker_plan.user:
        kwargs["user"] = docker_plan.user
    return local.DockerRunner(**kwargs)


@dataclass
class DockerSession:
    """What a pipeline run under Docker needs: the kfp runner, the rewritten arguments, and afterwards
    the services, images and containers for the summary (:meth:`report`)."""

    runner: object
    arguments: dict
    services: dict
    images: dict
    watcher: ContainerWatcher
    containers: list | None = None

    def close(self) -> list:
        """Stop watching the engine (once); the containers that ran."""
        if self.containers is None:
            self.containers = self.watcher.stop()
        return self.containers

    def report(self) -> dict:
        if "mlflow_error" in self.services:
            print(f"warning: {self.services['mlflow_error']}", file=sys.stderr)
        return {"runner": "docker", "services": self.services, "images": self.images, "containers": self.close()}


@contextlib.contextmanager
def session(pipeline, arguments: dict, home: Path, quiet: bool = False):
    """Prepare a Docker run of the built ``pipeline``; yields a :class:`DockerSession`.

    Checks that the engine answers and that every image of the pipeline is built, starts what the
    steps need (file server, mlflow server) and stops it afterwards. The caller runs the pipeline with
    ``session.runner`` and ``session.arguments`` and adds ``session.report()`` to its summary.
    """
    home = Path(home).resolve()
    for sub in ("runs", "mlartifacts"):  # the pipeline root, and where file: experiment artifacts go
        (home / sub).mkdir(parents=True, exist_ok=True)
    docker_plan = plan(arguments, home)
    client = docker_client()
    run_token = uuid.uuid4().hex[:12]
    with services(docker_plan, home) as service_info:  # the MLflow server comes up while we go on
        image_info = check_images(client, list(pipeline_images(pipeline).values()))
        if docker_plan.user is None:  # host root: the images' own non-root user writes the state folder
            hand_over(docker_plan.mounts)
        if not quiet:
            for name in ("file_server", "mlflow_server"):
                if name in service_info:
                    print(f"{name.replace('_', ' ')}: {service_info[name]}")
            print("mounts: " + ", ".join(str(p) for p in docker_plan.mounts))
        watcher = ContainerWatcher(client, run_token).start()
        current = DockerSession(
            make_runner(docker_plan, run_token), docker_plan.arguments, service_info, image_info, watcher
        )
        try:
            yield current
        finally:
            current.close()
