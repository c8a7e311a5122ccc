"""One run at a time on a state folder (tagifai_cli.statelock), with real processes.

A holder process takes the state folder's lock and keeps it until told to go (a line on its stdin) or killed;
``tagifai run`` and ``tagifai sense --run`` are started beside it as a user would start them. No timing is
asserted: "at once" means the second command ends on its own while the holder still holds the folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tagifai_cli.statelock import HOLDER_NAME, holder, state_lock

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "madewithml"
SAFETY = 600  # seconds: only so that a broken lock cannot hang the suite


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "MLFLOW_"))}


def _tagifai(*args: str) -> list[str]:
    script = Path(sys.executable).parent / "tagifai"
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "tagifai_cli.main", *args]


class Holder:
    """A process that holds ``home`` (``python hold_state.py HOME``) until :meth:`release` or :meth:`kill`."""

    def __init__(self, home: Path, script: Path):
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(home)],
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout.readline().strip() == "held"
        self.pid = self.proc.pid

    def release(self) -> None:
        self.proc.communicate("\n", timeout=SAFETY)
        assert self.proc.returncode == 0

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.communicate(timeout=SAFETY)


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "hold_state.py"
    path.write_text(
        textwrap.dedent(
            """
            import sys

            from tagifai_cli.statelock import state_lock

            with state_lock(sys.argv[1]):
                print("held", flush=True)
                sys.stdin.readline()
            """
        )
    )
    return path


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "state"


def _run_dataops(home: Path, *extra: str, missing: Path) -> list[str]:
    """``tagifai run dataops`` on sources that do not exist: when it runs, its first step fails fast."""
    return _tagifai("run", "dataops", "--home", str(home), "--projects", str(missing), "--tags", str(missing), *extra)


def test_a_second_run_fails_at_once_naming_the_holder(home, script, tmp_path):
    first = Holder(home, script)
    try:
        for argv in (
            _run_dataops(home, missing=tmp_path / "missing.csv"),
            _tagifai("sense", "--run", "--home", str(home), "--projects", str(DATA / "projects.csv")),
        ):
            proc = subprocess.run(argv, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=SAFETY)
            assert proc.returncode == 1
            [line] = proc.stderr.strip().splitlines()
            command = argv[1] if argv[1] in ("run", "sense") else argv[3]
            assert line.startswith(f"tagifai {command}: error: StateLocked: state folder {home} is in use by ")
            assert f"pid {first.pid} (`python" in line and f"hold_state.py {home}`, started " in line
            assert line.endswith("wait for it to finish, or give --wait SECONDS")
            assert "Could not set lock" not in proc.stdout + proc.stderr
        assert not (home / "logs").exists() and not (home / "warehouse.duckdb").exists()  # nothing ran
        assert first.proc.poll() is None  # still holding
    finally:
        first.release()
    assert not (home / HOLDER_NAME).exists()  # released: its record is gone


def test_with_wait_the_second_run_waits_then_runs(home, script, tmp_path):
    first = Holder(home, script)
    second = subprocess.Popen(
        _run_dataops(home, "--wait", str(SAFETY), missing=tmp_path / "missing.csv"),
        cwd=ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        seen = []
        for line in second.stderr:  # it says for whom it waits, then waits
            seen.append(line)
            if "waiting up to" in line:
                break
        assert f"state folder {home} is in use by pid {first.pid}" in seen[-1]
        assert second.poll() is None and not (home / "last_run.json").exists()
    finally:
        first.release()
    out, err = second.communicate(timeout=SAFETY)
    assert "StateLocked" not in err
    assert "running dataops" in out  # it ran, once the holder was gone (the source's fingerprint fails: no file)
    summary = json.loads((home / "last_run.json").read_text())
    assert summary["pipeline"] == "dataops"
    assert [s["status"] for s in summary["steps"] if s["name"].startswith("fingerprint-")][0] == "failed"
    assert not (home / HOLDER_NAME).exists()


def test_a_killed_holder_does_not_block(home, script, tmp_path):
    dead = Holder(home, script)
    dead.kill()  # SIGKILL: no clean-up; the kernel drops its flock
    stale = json.loads((home / HOLDER_NAME).read_text())
    assert stale["pid"] == dead.pid  # its record is left behind ...
    assert holder(home) is None  # ... and ignored: it names a process that is gone

    second = Holder(home, script)  # takes the folder at once
    try:
        assert json.loads((home / HOLDER_NAME).read_text())["pid"] == second.pid  # the record is overwritten
        proc = subprocess.run(
            _run_dataops(home, missing=tmp_path / "missing.csv"),
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=SAFETY,
        )
        assert proc.returncode == 1
        assert f"in use by pid {second.pid} " in proc.stderr and f"pid {dead.pid} " not in proc.stderr
    finally:
        second.release()


def test_the_lock_is_reentrant_in_one_process_and_says_who_holds_it(home):
    with state_lock(home):
        record = holder(home)
        assert record["pid"] == os.getpid() and record["started_at"]
        with state_lock(home):  # sense --run holds it, and the run inside takes it again
            pass
        assert holder(home)["pid"] == os.getpid()  # the inner exit does not release it
    assert holder(home) is None and not (home / HOLDER_NAME).exists()
