"""benchmarks/continual.py: the results page and the goal verdict (a measured run takes minutes:
`python benchmarks/continual.py`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from _bench import machine as bench_machine

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tagifai_continual_benchmark", ROOT / "benchmarks" / "continual.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

GIB = 1024**3


def _run(wall: float, optimize: float) -> dict:
    measured = {
        "peak_tree_rss": 0.67 * GIB,
        "peak_tree_pss": 0.55 * GIB,
        "max_process_rss": 0.56 * GIB,
        "load_start": 1.3,
        "load_end": 1.15,
    }
    return {
        "status": "succeeded",
        "wall_seconds": wall,
        "pipeline_seconds": wall - 5,
        "steps": {"sync-projects": 1.0, "optimize": optimize},
        "measured": measured,
    }


def _report(*walls: float) -> dict:
    machine = bench_machine()
    return {
        "machine": machine,
        "command": "python benchmarks/continual.py",
        "num_trials": 20,
        "runs": [_run(w, w / 2) for w in walls],
    }


def test_the_page_has_each_run_step_and_memory():
    page = bench.render(_report(75.3, 80.1))
    assert "| 1 | succeeded | 75.3 | 70.3 | 0.67 GiB | 0.55 GiB | 0.56 GiB | 1.30 → 1.15 |" in page
    assert "| optimize | 37.6 | 40.0 |" in page and "| sync-projects | 1.0 | 1.0 |" in page
    assert "<= 35 s | 77.7 s (median of 2) | over |" in page


def test_the_verdict_is_under_at_the_goal():
    assert "| 35.0 s (median of 1) | under |" in bench.render(_report(35.0))
