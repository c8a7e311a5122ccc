"""The run lease of a DuckDB warehouse file (tagifai.lease): one run at a time across pods."""

import datetime as dt
import json
import multiprocessing
from pathlib import Path

import pytest

from tagifai import lease


def test_one_holder_at_a_time_and_the_waiter_is_told_who_holds_it(tmp_path):
    path = tmp_path / "warehouse.duckdb.lease"
    first = lease.acquire(path, "run-a", timeout=0)
    assert lease.read(path) == first and first.holder == "run-a"
    with pytest.raises(lease.LeaseHeld, match=r"held by run run-a since .*waited 0 s"):
        lease.acquire(path, "run-b", timeout=0.3, poll=0.1)
    assert lease.release(path, "run-b") is False  # not its lease: nothing happens
    assert lease.read(path).holder == "run-a"
    assert lease.release(path, "run-a") is True
    assert lease.read(path) is None and not list(tmp_path.glob("*.lease.*"))  # no leftovers
    assert lease.acquire(path, "run-b", timeout=0).holder == "run-b"


def test_a_retried_task_of_the_same_run_renews_its_lease(tmp_path):
    path = tmp_path / "w.lease"
    first = lease.acquire(path, "run-a", ttl=60)
    again = lease.acquire(path, "run-a", timeout=0, ttl=3600)
    assert again.holder == "run-a" and again.expires_at > first.expires_at


def test_an_expired_lease_is_taken_over(tmp_path):
    path = tmp_path / "w.lease"
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    path.write_text(json.dumps({"holder": "gone", "acquired_at": past.isoformat(), "expires_at": past.isoformat()}))
    assert lease.acquire(path, "run-b", timeout=0).holder == "run-b"


def test_a_waiter_gets_the_lease_once_it_is_released(tmp_path):
    path = tmp_path / "w.lease"
    lease.acquire(path, "run-a")
    ctx = multiprocessing.get_context("fork")
    waiter = ctx.Process(target=lease.acquire, args=(path, "run-b"), kwargs={"timeout": 30, "poll": 0.05})
    waiter.start()
    try:
        waiter.join(0.5)
        assert waiter.is_alive() and lease.read(path).holder == "run-a"  # still waiting
        lease.release(path, "run-a")
        waiter.join(10)
        assert waiter.exitcode == 0 and lease.read(path).holder == "run-b"
    finally:
        waiter.kill()


def _race(path: str, holder: str, results) -> None:
    try:
        lease.acquire(path, holder, timeout=0)
        results.put(holder)
    except lease.LeaseHeld:
        results.put(None)


def test_of_processes_racing_for_a_free_lease_exactly_one_wins(tmp_path):
    path = str(tmp_path / "w.lease")
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_race, args=(path, f"run-{i}", results)) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(20)
    winners = [w for w in (results.get(timeout=5) for _ in procs) if w]
    assert len(winners) == 1 and lease.read(path).holder == winners[0]


def test_clear_removes_whatever_lease_is_there(tmp_path):
    path = tmp_path / "w.lease"
    assert lease.clear(path) is None
    lease.acquire(path, "run-a")
    assert lease.clear(path).holder == "run-a" and not Path(path).exists()


def test_only_a_single_file_warehouse_has_a_lease(tmp_path):
    from tagifai.warehouse import parse_warehouse

    assert parse_warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}").lease_path() == tmp_path / "w.duckdb.lease"
    assert parse_warehouse("bigquery://proj/tagifai").lease_path() is None


def test_the_steps_hold_and_give_back_the_lease(tmp_path):
    """hold_warehouse takes it for the run (and fails naming a holding run); notify gives it back."""
    from kfp import dsl
    from kfp.dsl import Markdown

    from components.notify import hold_warehouse, notify

    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    path = hold_warehouse.python_func(warehouse=uri, holder="run-a", timeout_seconds=0)
    assert path == str(tmp_path / "w.duckdb.lease") and lease.read(path).holder == "run-a"
    with pytest.raises(lease.LeaseHeld, match="held by run run-a"):
        hold_warehouse.python_func(warehouse=uri, holder="run-b", timeout_seconds=0)
    status = dsl.PipelineTaskFinalStatus(
        state="SUCCEEDED",
        pipeline_job_resource_name="run-a",
        pipeline_task_name="exit-handler-1",
        error_code=None,
        error_message=None,
    )
    summary = Markdown(name="summary", uri=str(tmp_path / "notify" / "summary"), metadata={})
    Path(summary.path).parent.mkdir(parents=True)
    notify.python_func(
        pipeline="dataops",
        status=status,
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'none.db'}",
        model_name="tagifai",
        state_dir=str(tmp_path),
        summary=summary,
        warehouse=uri,
        holder="run-a",
    )
    assert lease.read(path) is None
    assert hold_warehouse.python_func(warehouse="bigquery://proj/tagifai", holder="run-b") == ""
