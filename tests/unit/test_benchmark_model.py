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
    assert (
        model_bench.main(
            [
                "--configs",
                "tfidf",
                "--seeds",
                "0",
                "1",
                "--out",
                str(tmp_path),
                "--estimate-config",
                "tfidf",
                "--estimate-seeds",
                "3",
            ]
        )
        == 0
    )
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
    # The estimate reuses the protocol's seeds 0 and 1 and adds seed 2.
    est = report["estimate"]
    assert est["seeds"] == [0, 1, 2] and est["config"] == "tfidf"
    assert [est["f1"][str(s)] for s in (0, 1)] == f1
    assert est["mean"] == pytest.approx(statistics.fmean(est["f1"].values()))
    assert est["ci"][0] < est["mean"] < est["ci"][1]
    assert f"test f1 {est['mean']:.4f}, standard error {est['se']:.4f}" in md


def test_strict_fails_below_the_goal(tmp_path):
    args = ["--configs", "default", "--seeds", "0", "--out", str(tmp_path), "--strict", "--estimate-seeds", "0"]
    assert model_bench.main([*args, "--goal", "0.999"]) == 1
    assert model_bench.main([*args, "--goal", "0.5", "--max-seconds", "600"]) == 0


def test_paired_difference_and_estimate():
    def runs(*f1s, seeds=None):
        return [{"seed": s, "test": {"f1": f}} for s, f in zip(seeds or range(len(f1s)), f1s, strict=False)]

    d = model_bench.paired_difference(runs(0.91, 0.93, 0.95), runs(0.90, 0.90, 0.90))
    assert d["mean"] == pytest.approx(0.03) and d["n"] == 3
    assert d["se"] == pytest.approx(statistics.stdev([0.01, 0.03, 0.05]) / 3**0.5)
    # Only the seeds both have are compared.
    assert model_bench.paired_difference(runs(0.9, 0.8, seeds=[0, 7]), runs(0.85, seeds=[0]))["n"] == 1
    assert model_bench.paired_difference(runs(0.9, seeds=[3]), runs(0.9, seeds=[4])) is None
    e = model_bench.estimate([0.90, 0.92, 0.94, 0.96])
    assert e["mean"] == pytest.approx(0.93) and e["n"] == 4
    # t(0.975, 3) = 3.182: the interval is wider than mean ± 2 se with so few seeds.
    assert e["ci"][1] - e["mean"] == pytest.approx(3.1824 * e["se"], rel=1e-3)
    assert model_bench.estimate([0.9])["ci"] is None
