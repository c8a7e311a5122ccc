"""benchmarks/mlops.py: its options, the embedding store count, the goal verdicts and the results page
(the measured runs themselves take many minutes: `python benchmarks/mlops.py --sizes 2000 --num-trials 2`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tagifai_mlops_benchmark", ROOT / "benchmarks" / "mlops.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_sample_settings_parse():
    assert bench.parse_samples("default") == [None]
    assert bench.parse_samples("off, 5_000,default") == ["0", "5000", None]
    assert bench.parse_samples("") == [None]
    with pytest.raises(ValueError):
        bench.parse_samples("lots")


def test_the_store_count_reads_every_shard(tmp_path):
    from tagifai.embeddings import VectorStore

    assert bench.store_vectors(tmp_path / "absent") == {"vectors": 0, "shards": 0, "bytes": 0, "folders": {}}
    store = VectorStore(tmp_path / "embeddings" / "minilm")
    keys = [bytes([i]) * 32 for i in range(7)]
    store.put(keys[:3], np.zeros((3, 384), dtype=np.float32))
    store.put(keys[3:], np.ones((4, 384), dtype=np.float32))
    counted = bench.store_vectors(tmp_path / "embeddings")
    assert counted["vectors"] == 7 and counted["shards"] == 2 and counted["bytes"] > 7 * 384 * 4
    assert counted["folders"] == {"minilm": 7} and bench._encoders(counted) == ""
    VectorStore(tmp_path / "embeddings" / "minilm-int8").put(keys[:2], np.ones((2, 384), dtype=np.float32))
    counted = bench.store_vectors(tmp_path / "embeddings")
    assert counted["folders"] == {"minilm": 7, "minilm-int8": 2} and counted["vectors"] == 9
    assert "7 in minilm + 2 in minilm-int8: the encoder changed" in bench._encoders(counted)


def _result(rows: int, wall: float, label: str = "default", status: str = "succeeded") -> dict:
    return {
        "rows": rows,
        "label": label,
        "status": status,
        "wall_seconds": wall,
        "mlops_steps_seconds": wall - 5,
        "steps": {"optimize": wall / 2, "train": wall / 3},
        "measured": {
            "peak_tree_rss": 2**30,
            "peak_tree_pss": 2**29,
            "max_process_rss": 2**29,
            "load_start": 2.0,
            "load_end": 3.0,
        },
        "test_metrics": {"f1": 0.9},
        "study": {
            "user_attrs": {"search_rows": 5000, "dev_rows": rows * 0.8},
            "n_complete": 20,
            "n_pruned": 0,
            "folds_run": 100,
            "trials_seconds": wall / 3,
            "first_trial_seconds": 10.0,
            "median_other_trial_seconds": 5.0,
        },
        "embedding_store": {"vectors": rows, "shards": 2, "bytes": rows * 1568},
    }


def test_goals_judge_only_the_100k_runs():
    verdicts = bench.goals([_result(10_000, 100.0), _result(100_000, 599.0), _result(100_000, 601.0, "sample-0")])
    assert [v.get("run") for v in verdicts] == ["default", "sample-0"]
    assert [v["verdict"] for v in verdicts] == ["under in this one run", "over"]
    assert bench.goals([_result(10_000, 100.0)])[0]["verdict"] == "not measured"
    assert bench.goals([_result(100_000, 1.0, status="failed")])[0]["verdict"] == "run failed"


def test_the_page_has_every_run_and_the_growth():
    results = [_result(10_000, 100.0), _result(100_000, 400.0)]
    growth = bench.growth(results[0], results[1])
    assert growth["rows_ratio"] == 10 and growth["wall_ratio"] == 4
    # wall = fixed + per_row * rows through both points: 100 = f + 10k p, 400 = f + 100k p
    assert growth["wall_fit"]["per_100k_rows"] == pytest.approx(300 / 0.9) and growth["steps"]["train"]["ratio"] == 4
    report = {
        "command": "python benchmarks/mlops.py",
        "num_trials": 20,
        "format": "csv",
        "seed": 0,
        "machine": {"cpus": 2, "python": "3.11", "load_start": 1.0, "load_end": 2.0, "date": "2026-12-02"},
        "results": results,
        "growth": [growth],
        "goals": bench.goals(results),
    }
    page = bench.markdown(report)
    assert "| 10,000 | default | succeeded | 100.0 |" in page and "| 100,000 | default | succeeded | 400.0 |" in page
    assert "| 5000 / 80000.0 | 20 + 0 | 100 |" in page and "under in this one run" in page
    assert "| **wall** | 100.0 | 400.0 | 4.00 |" in page
