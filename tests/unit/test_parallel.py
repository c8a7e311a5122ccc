"""tagifai.parallel: fold fits in forked processes give what one process gives (optimize, train), in order,
pruned trials stop their folds, and the worker count follows the CPUs a process may use."""

from __future__ import annotations

import os
import pickle
import time

import numpy as np
import optuna
import pytest

from tagifai import parallel
from tagifai.embeddings import DIM, KnownVectors
from tagifai.model import TrainArgs
from tagifai.optimize import optimize
from tagifai.parallel import WORKERS_ENV, FoldPool, available_cpus, workers_setting
from tagifai.train import train

optuna.logging.set_verbosity(optuna.logging.WARNING)
needs_fork = pytest.mark.skipif(not parallel.can_fork(), reason="fork is not a start method on this platform")


# --------------------------------------------------------------------------- how many workers


def affinity() -> int:
    return len(os.sched_getaffinity(0))


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, lambda n: min(n, 2)),  # 1.5 CPUs: 2 processes
        ({"cpu.max": "100000 100000\n"}, lambda n: 1),
        ({"cpu.max": "max 100000\n"}, lambda n: n),  # no quota
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, lambda n: 1),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, lambda n: n),
        ({}, lambda n: n),  # no cgroup files at all
    ],
)
def test_available_cpus_follows_the_cgroup_quota(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert available_cpus(tmp_path) == expected(affinity())


def test_workers_setting_accepts_auto_numbers_and_off_and_names_the_variable_otherwise():
    assert workers_setting({}) == available_cpus()
    assert workers_setting({WORKERS_ENV: " AUTO "}) == available_cpus()
    assert workers_setting({WORKERS_ENV: "off"}) == 1
    assert workers_setting({WORKERS_ENV: "0"}) == 1
    assert workers_setting({WORKERS_ENV: "3"}) == 3
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(ValueError, match=WORKERS_ENV):
            workers_setting({WORKERS_ENV: bad})


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"memory.max": "1000000\n", "memory.current": "400000\n"}, 600_000),  # a pod's limit (cgroup v2)
        ({"memory.max": "max\n", "memory.current": "400000\n"}, 8 << 30),  # no limit: the machine's
        ({"memory/memory.limit_in_bytes": "3000000\n", "memory/memory.usage_in_bytes": "1000000\n"}, 2_000_000),
        ({"memory/memory.limit_in_bytes": "9223372036854771712\n", "memory/memory.usage_in_bytes": "1\n"}, 8 << 30),
        ({"memory.max": "1000\n", "memory.current": "5000\n"}, 0),  # over its limit: no room
    ],
)
def test_memory_available_is_the_cgroup_room_or_the_machines(tmp_path, files, expected):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal: 16777216 kB\nMemAvailable: {8 << 20} kB\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert parallel.memory_available(tmp_path, meminfo) == expected


def test_workers_fit_in_the_memory(monkeypatch):
    monkeypatch.setattr(parallel, "memory_available", lambda: 10_000)
    assert FoldPool({}, workers=8, bytes_per_worker=3_000).workers == (3 if parallel.can_fork() else 1)
    assert FoldPool({}, workers=8, bytes_per_worker=3_000, reserve_bytes=5_000).workers == 1
    assert FoldPool({}, workers=8, bytes_per_worker=20_000).workers == 1  # large data for the room: none
    assert FoldPool({}, workers=2).workers == (2 if parallel.can_fork() else 1)  # no estimate: the CPUs


# --------------------------------------------------------------------------- the pool


def pid_and_value(state, item):
    return os.getpid(), state["base"] + item


def fail_on_three(state, item):
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


def slow_mark(state, item):
    (state["folder"] / f"ran-{item}").write_text("")
    time.sleep(0.3)
    return item


@needs_fork
def test_pool_runs_items_in_worker_processes_inheriting_the_state_and_answers_in_order():
    with FoldPool({"base": 100}, workers=2) as pool:
        assert pool.parallel
        results = list(pool.ordered(pid_and_value, range(8)))
    assert [value for _, value in results] == list(range(100, 108))
    assert os.getpid() not in {pid for pid, _ in results}
    assert not parallel._STATE  # closed: nothing left for the next pool


def test_one_worker_runs_here_one_item_at_a_time():
    with FoldPool({"base": 1}, workers=1) as pool:
        assert not pool.parallel
        results = pool.ordered(pid_and_value, range(3))
        assert next(results) == (os.getpid(), 1)
    # max_items caps the workers: one item never forks
    assert FoldPool({}, workers=4, max_items=1).workers == 1


@needs_fork
def test_a_worker_error_is_raised_at_its_item():
    with FoldPool({}, workers=2) as pool:
        results = pool.ordered(fail_on_three, range(6))
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="item 3 is bad"):
            next(results)


@needs_fork
def test_closing_the_results_early_cancels_the_items_not_started(tmp_path):
    with FoldPool({"folder": tmp_path}, workers=2) as pool:
        results = pool.ordered(slow_mark, range(10))
        assert next(results) == 0
        results.close()
    assert len(list(tmp_path.glob("ran-*"))) < 10


@needs_fork
def test_only_one_pool_at_a_time():
    with FoldPool({"a": 1}, workers=2):
        with pytest.raises(RuntimeError, match="already open"), FoldPool({"b": 2}, workers=2):
            pass
        assert parallel._STATE == {"a": 1}  # the failed pool did not clear the open one's state


# --------------------------------------------------------------------------- known vectors


def test_known_vectors_answer_what_they_were_given_and_pickle():
    vectors = np.arange(3 * DIM, dtype=np.float32).reshape(3, DIM)
    known = KnownVectors(["a", "b", ""], vectors)
    np.testing.assert_array_equal(known.encode(["b", "a", None, "b"]), vectors[[1, 0, 2, 1]])
    assert known.encode([]).shape == (0, DIM)
    with pytest.raises(KeyError, match="'c'"):
        known.encode(["a", "c"])
    again = pickle.loads(pickle.dumps(known))
    np.testing.assert_array_equal(again.encode(["a"]), vectors[[0]])
    with pytest.raises(ValueError, match="expected 2 vectors"):
        KnownVectors(["a", "b"], vectors)


def test_for_folds_encodes_every_text_once_for_here_or_for_workers():
    from tagifai.embeddings import SentenceEmbedder, for_folds

    texts = ["a graph network", "a vision model", "a graph network"]
    here = SentenceEmbedder(store=None)
    assert for_folds(here, texts, workers=False) is here
    workers = for_folds(SentenceEmbedder(store=None), texts, workers=True)
    assert isinstance(workers, KnownVectors) and len(workers.rows) == 2
    np.testing.assert_array_equal(workers.encode(texts), here.encode(texts))


# --------------------------------------------------------------------------- the same results


def trial_record(summary):
    return [(t["number"], t["state"], t["value"], t["params"]) for t in summary["trials"]]


@needs_fork
def test_optimize_gives_the_same_study_with_two_workers(labeled_df):
    """The same trials, values, pruning and choice in one process and in two workers (the embedding in the space)."""
    runs = {}
    for workers in (1, 2):
        kwargs = dict(num_trials=6, cv_folds=3, pruner_startup_trials=2, seed=3, sample_rows=0, cv_workers=workers)
        runs[workers] = optimize(labeled_df, **kwargs)
    (args1, value1, summary1), (args2, value2, summary2) = runs[1], runs[2]
    assert trial_record(summary1) == trial_record(summary2)
    assert any(t["state"] == "PRUNED" for t in summary1["trials"]) or len(summary1["trials"]) == 6
    assert any(t["params"].get("embedding") == "minilm" for t in summary1["trials"])
    assert (args1, value1) == (args2, value2)


@needs_fork
def test_train_gives_the_same_model_with_two_workers(labeled_df):
    args = TrainArgs(threshold_cv_folds=3)
    one, two = train(labeled_df, args, cv_workers=1), train(labeled_df, args, cv_workers=2)
    assert one.threshold == two.threshold
    assert one.metrics == two.metrics
    test = one.splits.test
    np.testing.assert_array_equal(one.model.predict_proba(test), two.model.predict_proba(test))
    assert type(two.model.embedder).__name__ == "SentenceEmbedder"  # the model keeps the real embedder


def test_train_and_optimize_size_their_workers_to_the_memory(labeled_df, monkeypatch):
    """With no memory to spare, both fit their folds in their own process (and still finish)."""
    from tagifai import optimize as optimize_mod
    from tagifai import train as train_mod

    pools: list[FoldPool] = []

    class Recorded(FoldPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(parallel, "memory_available", lambda: 0)
    monkeypatch.setattr(train_mod, "FoldPool", Recorded)
    monkeypatch.setattr(optimize_mod, "FoldPool", Recorded)
    train(labeled_df, TrainArgs(threshold_cv_folds=2), cv_workers=2)
    optimize(labeled_df, num_trials=1, cv_folds=2, sample_rows=0, cv_workers=2)
    assert [pool.workers for pool in pools] == [1, 1]
