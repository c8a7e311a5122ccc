"""One run at a time on a state folder: ``tagifai run`` and ``tagifai sense --run`` hold its lock.

The state folder holds the embedded DuckDB warehouse, which allows one writer: a second run on the same
folder used to die inside DuckDB ("Could not set lock on file ..."), minutes in. Now the second run fails
at once (or waits up to ``--wait SECONDS``) with an error naming the run that holds the folder.

- ``<state>/state.lock``: an exclusive ``flock`` (the ``filelock`` library). The kernel drops it when its
  process ends, however it ends (even ``kill -9``), so a dead run never blocks the next one.
- ``<state>/state.lock.json``: who holds it (pid, command line, start time, host), written after the lock
  is taken and removed before it is released. It is only a description: a record left by a killed run is
  overwritten by the next holder, and ignored while nobody holds the lock.

The lock is re-entrant within a process (``sense --run`` holds it around the sense, the run and the
watermark advance; the run inside takes it again).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shlex
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = "state.lock"
HOLDER_NAME = "state.lock.json"

_held: dict[str, int] = {}  # state folder -> depth, in this process
_guard = threading.Lock()


class StateLocked(Exception):
    """Another run holds the state folder; the message names it."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def holder(home: str | Path) -> dict | None:
    """The record of the run holding ``home`` (None when there is none, or it names a process that is gone)."""
    try:
        record = json.loads((Path(home) / HOLDER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("host") == socket.gethostname() and not _alive(int(record.get("pid", 0) or 0)):
        return None  # a run that was killed: its record is stale
    return record


def describe(record: dict | None) -> str:
    if not record:
        return "another process (it has not recorded itself yet)"
    host = "" if record.get("host") == socket.gethostname() else f" on {record.get('host')}"
    return f"pid {record.get('pid')}{host} (`{record.get('command')}`, started {record.get('started_at')})"


def command_line() -> str:
    """This process's command line as a person typed it: ``tagifai run continual``, ``python -m ...``."""
    argv0 = sys.argv[0] if sys.argv else ""
    if argv0 and not argv0.endswith(".py") and argv0 not in ("-c", "-m"):  # a console script: tagifai ...
        words = [Path(argv0).name, *sys.argv[1:]]
    else:
        orig = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
        words = [Path(orig[0]).name, *orig[1:]]
    text = " ".join(shlex.join(words).split())  # one line, even for python -c with a script
    return text if len(text) <= 200 else text[:199] + "..."


def _write_holder(home: Path) -> dict:
    record = {
        "pid": os.getpid(),
        "command": command_line(),
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
    }
    tmp = home / f".{HOLDER_NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(tmp, home / HOLDER_NAME)  # readers see the old record or the new one, never half of one
    return record


def _remove_holder(home: Path) -> None:
    path = home / HOLDER_NAME
    with contextlib.suppress(OSError, ValueError):
        if json.loads(path.read_text()).get("pid") == os.getpid():
            path.unlink()


@contextlib.contextmanager
def state_lock(home: str | Path, wait: float = 0, out=None) -> Iterator[None]:
    """Hold the state folder ``home`` for the body; created when missing.

    ``wait``: seconds to wait for a run that holds it (0: fail at once). Raises :class:`StateLocked`
    naming the holder (pid, command line, start time) when it is still held then. While waiting, one line
    on ``out`` (default stderr) says for whom.
    """
    from filelock import FileLock, Timeout

    home = Path(home).expanduser().resolve()
    key = str(home)
    with _guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return

    home.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(home / LOCK_NAME), thread_local=False)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if wait <= 0:
            raise StateLocked(
                f"state folder {home} is in use by {describe(holder(home))}: wait for it to finish, "
                "or give --wait SECONDS"
            ) from None
        out = out or sys.stderr
        out.write(f"state folder {home} is in use by {describe(holder(home))}: waiting up to {wait:g} s\n")
        out.flush()
        try:
            lock.acquire(timeout=wait)
        except Timeout:
            raise StateLocked(
                f"state folder {home} is still in use after {wait:g} s (--wait) by {describe(holder(home))}"
            ) from None
    try:
        _write_holder(home)
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            _remove_holder(home)
    finally:
        lock.release()
