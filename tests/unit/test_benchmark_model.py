"""benchmarks/model.py (make benchmark-model): the issue-4 protocol, its aggregation and its gate."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("tagifai_model_benchmark", ROOT / "benchmarks" / "model.py")
model_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(model_bench)


def test_benchmark_writes_the_table_and_aggregates_the_seeds(tmp_path, labeled_df):
    assert model_bench.main(["--configs", "tfidf", "--seeds", "0", "1", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "model.json").read_text())
    runs = report["runs"]
    assert [r["seed"] for r in runs] == [0, 1]
    # Two seeds are two different test splits of the same 764 rows, each 20% stratified.
    assert all(sum(m["num_samples"] for m in r["per_class"].values()) == 153 for r in runs)
    f1 = [r["test"]["f1"] for r in runs]
    agg = report["configs"]["tfidf"]["test"]["f1"]
    assert agg["mean"] == pytest.approx(statistics.fmean(f1)) and agg["std"] == pytest.approx(statistics.pstdev(f1))
    assert 0.8 < agg["mean"] <= 1.0 and all(r["seconds"] > 0 for r in runs)
    md = (tmp_path / "model.md").read_text()
    assert f"{agg['mean']:.3f} ± {agg['std']:.3f}" in md
    for reference in ("0.827", "0.905", "SciBERT"):
        assert reference in md
    assert "| mlops |" in md and "short_text" in md


def test_strict_fails_below_the_goal(tmp_path):
    args = ["--configs", "default", "--seeds", "0", "--out", str(tmp_path), "--strict"]
    assert model_bench.main([*args, "--goal", "0.999"]) == 1
    assert model_bench.main([*args, "--goal", "0.5", "--max-seconds", "600"]) == 0
