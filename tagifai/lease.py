"""One run at a time on a shared warehouse file: a lease on the cluster's data volume.

On a cluster with the embedded warehouse (DuckDB, one file on a volume every step mounts), two runs that
overlap (a schedule beside a submit, ``backfill --no-wait``) would open the file from two pods, and DuckDB
allows one writer. Within one run the DAG already orders the warehouse tasks; across runs nothing did.
Every pipeline now takes this lease in its first task (``hold_warehouse``) and gives it back in its exit
task (``notify``), which KFP and Vertex AI run whether the run succeeded or failed.

- ``<warehouse file>.lease`` (beside the DuckDB file: ``Warehouse.lease_path``): JSON ``{holder, acquired_at,
  expires_at}``, created with ``O_CREAT|O_EXCL``
  (atomic on a local file system and on NFS v3+, what ReadWriteMany volumes are), so one run holds it.
- A run that finds it held waits (polling) up to ``timeout`` seconds, then fails with one line naming the
  holder and since when. A lease past ``expires_at`` (its run was deleted or cancelled before its exit
  task ran) is taken over: renamed away (only one taker's rename succeeds), then created again.
- Taking it again with the same holder (a retried task) renews it; releasing a lease held by another run
  does nothing.

Not for the warehouses that many pods may use at once (BigQuery): their ``lease_path`` is None and the
steps take no lease. Locally ``tagifai run`` holds the state folder's lock for the whole run
(``tagifai_cli/statelock.py``), and clears a lease left by a run it interrupted (:func:`clear`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


class LeaseHeld(RuntimeError):
    """Another run holds the warehouse; the message names it."""


@dataclass(frozen=True)
class Lease:
    holder: str
    acquired_at: str
    expires_at: str

    def expired(self, now: dt.datetime) -> bool:
        return dt.datetime.fromisoformat(self.expires_at) <= now


def path_for(warehouse_uri: str) -> Path | None:
    """The lease file of the warehouse ``warehouse_uri`` (``Warehouse.lease_path``), or None when it needs none
    (or no warehouse is given)."""
    from tagifai.warehouse import parse_warehouse

    return parse_warehouse(warehouse_uri).lease_path() if warehouse_uri else None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def read(path: str | Path) -> Lease | None:
    """The lease in file ``path``, or None (free, or a file another writer is still writing)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return Lease(data["holder"], data["acquired_at"], data["expires_at"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _create(path: Path, lease: Lease) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(lease.__dict__, f)
    return True


def acquire(
    path: str | Path, holder: str, timeout: float = 1800.0, ttl: float = 6 * 3600.0, poll: float = 5.0
) -> Lease:
    """Take the lease in file ``path`` for ``holder`` (a run's name), waiting up to ``timeout`` seconds; it
    expires after ``ttl`` seconds. :class:`LeaseHeld` naming the holder when it is still held then."""
    if not holder:
        raise ValueError("a lease needs a holder (the run's name)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout
    while True:
        now = _now()
        mine = Lease(holder, now.isoformat(timespec="seconds"), (now + dt.timedelta(seconds=ttl)).isoformat())
        if _create(path, mine):
            return mine
        current = read(path)
        if current is not None and current.holder == holder:  # a retried task of the same run: renew
            tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}")
            tmp.write_text(json.dumps(mine.__dict__), encoding="utf-8")
            tmp.replace(path)
            return mine
        if current is not None and current.expired(now):  # its run never gave it back: take it over
            try:
                path.rename(path.with_name(f"{path.name}.expired-{uuid.uuid4().hex}"))
            except FileNotFoundError:
                pass  # another run took it over first; try again
            continue
        if time.monotonic() >= deadline:
            who = f"run {current.holder} since {current.acquired_at} (expires {current.expires_at})" if current else "?"
            raise LeaseHeld(
                f"the warehouse is held by {who}; waited {timeout:.0f} s. Runs on one DuckDB file go one at a "
                f"time: try again when it ends, or remove {path} if that run is gone"
            )
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def release(path: str | Path, holder: str) -> bool:
    """Give the lease in file ``path`` back when ``holder`` holds it; True when it did."""
    path = Path(path)
    current = read(path)
    if current is None or current.holder != holder:
        return False
    try:
        path.rename(path.with_name(f"{path.name}.released-{uuid.uuid4().hex}"))
    except FileNotFoundError:
        return False
    _sweep(path)
    return True


def clear(path: str | Path) -> Lease | None:
    """Remove the lease whoever holds it (the local runner, which alone can run on its state folder, after a
    run it interrupted); the lease that was there, or None."""
    path = Path(path)
    current = read(path)
    path.unlink(missing_ok=True)
    _sweep(path)
    return current


def _sweep(path: Path) -> None:
    for old in path.parent.glob(f"{path.name}.*-*"):  # renamed leases: kept only to make the renames atomic
        old.unlink(missing_ok=True)
