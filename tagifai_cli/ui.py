"""``tagifai ui`` and ``tagifai docs``: the UIs people already know, on the embedded default.

``tagifai ui`` starts the MLflow UI (``mlflow server``) on the state folder's tracking store and
``optuna-dashboard`` on its Optuna storage, waits until each answers HTTP, prints their addresses and runs
until Ctrl-C (SIGINT) or SIGTERM. Each server runs in its own session (so its own process group: a Ctrl-C in
the terminal reaches only this process, which then ends each group: SIGTERM, then SIGKILL after a timeout),
so no server outlives the command. Their output goes to ``$TAGIFAI_HOME/logs/ui-<name>.log``.

``tagifai docs`` builds dbt's documentation site of ``dbt_transforms/`` as one self-contained page
(``dbt docs generate --static``, :func:`tagifai.transform.generate_docs`) at
``$TAGIFAI_HOME/dbt-docs/index.html``; a run's report links it. It is a separate command and not part of
``tagifai ui``: it needs no server (the page opens from disk), and generating it costs dbt's import and parse
(several seconds) that starting the UIs should not pay every time.

Nothing heavy is imported here: the servers import MLflow and Optuna in their own processes.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from tagifai_cli.commands import help_of
from tagifai_cli.options import settings_from

#: Seconds a server may take to answer HTTP after it was started (MLflow imports for several seconds).
READY_TIMEOUT = 120.0
#: Seconds a server's process group gets to end after SIGTERM before it is killed.
STOP_TIMEOUT = 10.0
_WILDCARDS = {"0.0.0.0", "::", ""}


class UIError(RuntimeError):
    """A UI could not start: no store yet, a port taken, a server that stopped or never answered."""


@dataclass
class Server:
    """One UI server: its command line, where it listens, the path that answers once it is up, its log."""

    name: str
    argv: list[str]
    host: str
    port: int
    log: Path
    probe: str = "/"
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    ready_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}"

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "a", encoding="utf-8") as out:
            out.write(f"$ {' '.join(self.argv)}\n")
            out.flush()
            # start_new_session: its own session and process group (the workers it forks join it)
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**self.env, **os.environ},  # the environment wins over these defaults
                start_new_session=True,
            )

    def tail(self, lines: int = 12) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "".join(text.splitlines(True)[-lines:]).rstrip()

    def answers(self) -> bool:
        """True when the server answers its probe with HTTP 200."""
        try:
            with urllib.request.urlopen(f"http://{_probe_host(self.host)}:{self.port}{self.probe}", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """End the server's whole process group: SIGTERM, then SIGKILL for what is left after ``timeout``."""
        proc = self.proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the server leads its own group
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or it stays in the group as a zombie
            if proc.returncode is not None and not _group_alive(pgid):
                return
            time.sleep(0.1)
        _signal_group(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)


def _url_host(host: str) -> str:
    host = _probe_host(host)
    return f"[{host}]" if ":" in host else host


def _probe_host(host: str) -> str:
    """Where this machine reaches a server listening on ``host`` (a wildcard address: loopback)."""
    return "127.0.0.1" if host in _WILDCARDS else host


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies waiting for their reaper do not count)."""
    proc_dir = Path("/proc")
    if not proc_dir.is_dir():  # not Linux: ask the kernel (zombies count here)
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in proc_dir.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for another scheme or an in-memory database)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def _missing_store(what: str, path: Path) -> UIError:
    return UIError(f"no {what} at {path} yet: run `make run` (or `tagifai run`) first, or pass --home")


def _script(name: str) -> str | None:
    """A console script of this environment (beside the interpreter), else one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def mlflow_server(settings, host: str, port: int) -> Server | None:
    """``mlflow server`` on the settings' tracking store, artifacts served from the state folder's mlartifacts/.

    None when the tracking URI is a tracking server already (it has its own UI). Raises :class:`UIError`
    when a local store does not exist yet.
    """
    uri = settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://", "databricks")):
        return None
    path = _sqlite_path(uri)
    if path is not None and not path.is_file():
        raise _missing_store("MLflow store", path)
    if "://" not in uri or uri.startswith("file:"):  # a file store: a folder
        folder = Path(uri.removeprefix("file://"))
        if not folder.is_dir():
            raise _missing_store("MLflow store", folder)
    home = Path(settings.home)
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri,
        # runs logged by `tagifai run` keep file:// artifact URIs under mlartifacts/ (read by the server
        # directly); experiments made through this server get mlflow-artifacts:/ URIs served from the same folder
        "--serve-artifacts",
        "--artifacts-destination",
        (home / "mlartifacts").as_uri(),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # no job runner: it serves MLflow's GenAI jobs (seven huey workers here), nothing a tagifai run logs
    env = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "1", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return Server("MLflow", argv, host, port, home / "logs" / "ui-mlflow.log", probe="/health", env=env)


def optuna_dashboard(settings, host: str, port: int) -> Server:
    """``optuna-dashboard`` on the settings' Optuna storage. Raises :class:`UIError` when it is not installed
    or a local storage does not exist yet."""
    storage = settings.optuna_storage
    path = _sqlite_path(storage)
    if path is not None and not path.is_file():
        raise _missing_store("Optuna storage", path)
    script = _script("optuna-dashboard")
    if importlib.util.find_spec("optuna_dashboard") is None or script is None:
        raise UIError("optuna-dashboard is not installed: pip install -e '.[ui]' (or pass --no-optuna)")
    # wsgiref (threaded, one process) rather than gunicorn, which mlflow brings along and optuna-dashboard
    # would pick: a master, a worker and a control socket in ~/.gunicorn for a page one person looks at
    argv = [script, storage, "--host", host, "--port", str(port), "--server", "wsgiref"]
    return Server("Optuna", argv, host, port, Path(settings.home) / "logs" / "ui-optuna.log", probe="/api/studies")


def serve(
    servers: list[Server],
    *,
    ready_timeout: float = READY_TIMEOUT,
    stop_timeout: float = STOP_TIMEOUT,
    extra_lines: list[str] | None = None,
) -> int:
    """Start the servers, print their addresses once they answer, run until SIGINT or SIGTERM; stop them all.

    Returns 0 when stopped by a signal. Raises :class:`UIError` when one does not come up or stops on its own
    (the others are stopped first).
    """
    for s in servers:
        if not _port_free(s.host, s.port):
            flag = "--mlflow-port" if s.name == "MLflow" else "--optuna-port"
            raise UIError(f"port {s.port} on {s.host} is taken (another {s.name} UI?); choose another with {flag}")
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001 - the signal module's signature
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    started = time.monotonic()
    try:
        for s in servers:
            s.start()
        waiting = list(servers)
        while waiting and not stop.is_set():
            for s in list(waiting):
                _check_running(s)
                if s.answers():
                    s.ready_seconds = time.monotonic() - started
                    print(f"{s.name} ready: {s.url}  ({s.ready_seconds:.1f} s; log {s.log})", flush=True)
                    waiting.remove(s)
            if waiting and time.monotonic() - started > ready_timeout:
                names = ", ".join(f"{s.name} ({s.url}, log {s.log})" for s in waiting)
                raise UIError(f"no answer within {ready_timeout:.0f} s from {names}")
            if waiting:
                stop.wait(0.25)
        if not stop.is_set():
            for line in extra_lines or []:
                print(line, flush=True)
            print("Ctrl-C stops them.", flush=True)
        while not stop.wait(0.5):
            for s in servers:
                _check_running(s)
        print("stopping ...", flush=True)
        return 0
    finally:
        for s in servers:
            s.stop(stop_timeout)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _check_running(s: Server) -> None:
    if s.proc is not None and s.proc.poll() is not None:
        raise UIError(f"{s.name} stopped on its own (exit {s.proc.returncode}); its log {s.log}:\n{s.tail()}")


def cmd_ui(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.no_mlflow and args.no_optuna:
        raise UIError("--no-mlflow and --no-optuna: nothing to start")
    servers: list[Server] = []
    lines: list[str] = []
    if not args.no_mlflow:
        server = mlflow_server(settings, args.host, args.mlflow_port)
        if server is None:
            lines.append(f"MLflow: {settings.mlflow_tracking_uri} (a tracking server, with its own UI)")
        else:
            servers.append(server)
    if not args.no_optuna:
        servers.append(optuna_dashboard(settings, args.host, args.optuna_port))
    home = Path(settings.home)
    for label, page in (("run reports", home / "runs" / "index.html"), ("dbt docs", home / "dbt-docs" / "index.html")):
        if page.is_file():
            lines.append(f"{label}: {page.as_uri()}")
    if not (home / "dbt-docs" / "index.html").is_file():
        lines.append("dbt docs: `tagifai docs` builds dbt's documentation site")
    if not servers:
        print("\n".join(lines))
        return 0
    return serve(servers, ready_timeout=args.timeout, extra_lines=lines)


def cmd_docs(args: argparse.Namespace) -> int:
    from tagifai.transform import generate_docs

    settings = settings_from(args)
    page = generate_docs(
        warehouse_uri=settings.warehouse,
        project_dir=settings.dbt_project_dir,
        state_dir=Path(settings.home) / "dbt",
        output=Path(settings.home) / "dbt-docs" / "index.html",
    )
    print(page)
    print(f"open {page.as_uri()} (one self-contained page; the run reports link it)")
    return 0


def add_parsers(sub) -> None:
    ui = sub.add_parser("ui", help=help_of("ui"))
    ui.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
    ui.add_argument("--mlflow-tracking-uri", help="MLflow tracking URI (default sqlite in the state folder)")
    ui.add_argument("--optuna-storage", help="Optuna storage URL (default sqlite in the state folder)")
    ui.add_argument("--host", default="127.0.0.1", help="address both listen on (default 127.0.0.1)")
    ui.add_argument("--mlflow-port", type=int, default=5000, help="default 5000")
    ui.add_argument("--optuna-port", type=int, default=8080, help="default 8080")
    ui.add_argument("--no-mlflow", action="store_true", help="start optuna-dashboard only")
    ui.add_argument("--no-optuna", action="store_true", help="start the MLflow UI only")
    ui.add_argument(
        "--timeout", type=float, default=READY_TIMEOUT, help=f"seconds to wait for each (default {READY_TIMEOUT:.0f})"
    )
    ui.set_defaults(func=cmd_ui)

    docs = sub.add_parser("docs", help=help_of("docs"))
    docs.add_argument("--home", help="state folder (TAGIFAI_HOME; default .tagifai in the project)")
    docs.add_argument("--warehouse", help="duckdb:///file.duckdb or bigquery://project/dataset")
    docs.set_defaults(func=cmd_docs)
