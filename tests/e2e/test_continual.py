"""One real local run of the continual pipeline (kfp.local SubprocessRunner) on the shared data.

Everything is real: the DuckDB file, dlt, Great Expectations, dbt, Optuna on SQLite, MLflow on SQLite.
Then the CLI's predict and evaluate run against the model the pipeline registered.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "madewithml"
STEPS = [
    "sync-projects",
    "sync-tags",
    "validate-projects",
    "validate-tags",
    "transform",
    "validate-labeled-projects",
    "drift",
    "extract",
    "validate-dataset",
    "optimize",
    "train",
    "evaluate",
]

pytestmark = pytest.mark.e2e


def _tagifai(home: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """``tagifai ARGS`` in a new process on state folder ``home``, none of this process's TAGIFAI_*/MLFLOW_*
    settings, the shared data as DATA_DIR, then ``env``; an AssertionError with the output when it fails."""
    extra = env
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAGIFAI_", "MLFLOW_"))}
    env.update({"TAGIFAI_HOME": str(home), "DATA_DIR": str(DATA), **(extra or {})})
    proc = subprocess.run(
        [sys.executable, "-m", "tagifai_cli.main", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"tagifai {' '.join(args)} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    proc = _tagifai(home, "run", "continual", "--num-trials", "3")
    return home, proc, json.loads((home / "last_run.json").read_text())


def test_continual_run_succeeds_with_every_step(run):
    _, proc, summary = run
    assert summary["pipeline"] == "continual" and summary["status"] == "succeeded"
    names = [s["name"] for s in summary["steps"]]
    assert sorted(names) == sorted(STEPS)
    assert all(s["status"] == "succeeded" and s["seconds"] > 0 for s in summary["steps"])
    assert "continual SUCCEEDED" in proc.stdout


def test_summary_has_rows_params_metrics_and_model(run):
    _, _, summary = run
    assert summary["rows"] == {"raw.projects": 764, "raw.tags": 764, "labeled_projects": 764, "extracted": 764}
    assert summary["best_params"] and summary["best_validation_score"] > 0.5
    assert set(summary["metrics"]) == {"precision", "recall", "f1"}
    assert summary["metrics"]["f1"] > 0.85
    assert summary["model_uri"].startswith("models:/tagifai/")


def test_model_is_registered_in_the_local_mlflow_registry(run):
    home, _, summary = run
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='tagifai'")
    assert len(versions) == 1
    assert summary["model_uri"] == f"models:/tagifai/{versions[0].version}"
    run_metrics = client.get_run(versions[0].run_id).data.metrics
    assert abs(run_metrics["test_f1"] - summary["metrics"]["f1"]) < 1e-9
    # the first version has no champion to beat: the gate (approval auto) promotes it and records why
    assert client.get_model_version_by_alias("tagifai", "champion").version == versions[0].version
    assert client.get_model_version_by_alias("tagifai", "challenger").version == versions[0].version
    tags = client.get_model_version("tagifai", versions[0].version).tags
    assert tags["tagifai.decision"] == "promoted" and "no champion yet" in tags["tagifai.decision_reason"]
    moves = json.loads(_tagifai(home, "models", "history", "--json").stdout)
    assert [(m["alias"], m["from_version"], m["to_version"]) for m in moves] == [
        ("challenger", None, int(versions[0].version)),
        ("champion", None, int(versions[0].version)),
    ]


def test_cli_predict_and_evaluate_use_the_registered_model(run, tmp_path):
    home, _, summary = run
    out = _tagifai(
        home,
        "predict",
        "--title",
        "Transformers for text classification",
        "--description",
        "BERT language models for NLP.",
    )
    assert json.loads(out.stdout)[0]["predicted_tag"] == "natural-language-processing"

    df = pd.read_csv(DATA / "projects.csv").merge(pd.read_csv(DATA / "tags.csv"), on="id").head(60)
    src = tmp_path / "labeled.csv"
    df.to_csv(src, index=False)
    out = _tagifai(home, "predict", "--input", str(src), "--output", str(tmp_path / "pred.csv"))
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert len(pred) == 60 and "predicted_tag" in pred.columns
    assert {c for c in pred.columns if c.startswith("prob_")} == {
        "prob_computer-vision",
        "prob_mlops",
        "prob_natural-language-processing",
        "prob_other",
    }

    report = json.loads(_tagifai(home, "evaluate", "--input", str(src)).stdout)
    assert report["overall"]["num_samples"] == 60
    assert 0 < report["overall"]["f1"] <= 1
    assert "per_class" in report and "slices" in report
    assert sum(map(sum, report["confusion_matrix"]["matrix"])) == 60
    # The same rows as a spreadsheet's semicolon export: the same scores, and a Markdown report.
    semi = tmp_path / "labeled_semicolon.csv"
    df.to_csv(semi, index=False, sep=";")
    again = json.loads(
        _tagifai(home, "evaluate", "--input", str(semi), "--report", str(tmp_path / "r" / "report.md")).stdout
    )
    assert again["overall"] == report["overall"]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Per class" in md and "## Confusion matrix" in md and str(semi) in md


def test_cli_errors_are_one_clear_line(run, tmp_path):
    home, _, _ = run
    bad = tmp_path / "bad.csv"
    bad.write_text("title,desc\nx,y\n")
    proc = _tagifai(home, "evaluate", "--input", str(bad), check=False)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert "missing column(s) description, tag" in proc.stderr


def test_rerunning_dataops_keeps_one_copy_of_each_row(run):
    home, _, _ = run
    _tagifai(home, "run", "dataops", "--quiet")
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for table in ("raw.projects", "raw.tags", "main.labeled_projects"):
            total, distinct = con.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()
            assert total == distinct == 764, table
