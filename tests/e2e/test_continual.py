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
    "hold-warehouse",
    "fingerprint-projects",
    "sync-projects",
    "fingerprint-tags",
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
    "notify",
]
#: Reused by a second run on the same sources (pipelines/platform.yaml); the others always run.
CACHED = {s for s in STEPS if not s.startswith("fingerprint")} - {"drift", "notify", "hold-warehouse"}

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


def _outputs(summary: dict, task: str) -> dict:
    """The executor output of task ``task`` of a run (this run's folder, or the earlier run a cached task reused)."""
    step = next(s for s in summary["steps"] if s["task"] == task)
    folder = Path(step.get("dir") or Path(summary["run_dir"]) / task)
    return json.loads((folder / "executor_output.json").read_text())


def _meta(summary: dict, task: str, artifact: str) -> dict:
    return _outputs(summary, task)["artifacts"][artifact]["artifacts"][0]["metadata"]


def test_the_artifacts_trace_the_model_back_to_the_source_batches(run):
    """Issue 12 part 4 under kfp.local: extract read the table transform's Dataset names (same content hash),
    transform names the sync batches, evaluate judged train's Model, and notify summarised the run."""
    _, _, summary = run
    labeled = _meta(summary, "transform", "labeled_projects")
    assert labeled["warehouse_table"] == "labeled_projects"
    assert {b["source"] for b in labeled["sources"].values()} == {str(DATA / "projects.csv"), str(DATA / "tags.csv")}
    assert all(b["fingerprint"].startswith("sha256:") for b in labeled["sources"].values())
    assert _meta(summary, "extract", "dataset")["content_hash"] == labeled["content_hash"]
    model = _meta(summary, "train", "model")
    assert model["model_uri"] == summary["model_uri"]
    report = next(p for p in (Path(summary["run_dir"]) / "evaluate").iterdir() if p.name == "report")
    assert summary["model_uri"] in report.read_text()
    notice = (Path(summary["run_dir"]) / "notify" / "summary").read_text()
    assert "| status | SUCCEEDED |" in notice and "| pipeline | continual |" in notice


def test_a_second_run_on_unchanged_sources_reuses_the_cached_steps(run):
    """Issue 12 part 5: the same bytes give the same fingerprints, so sync and every step after it are reused
    (no new model version); the fingerprints, drift and notify run again."""
    home, _, first = run
    proc = _tagifai(home, "run", "continual", "--num-trials", "3")
    summary = json.loads((home / "last_run.json").read_text())
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert {n for n, s in status.items() if s == "cached"} == CACHED, status
    assert {n for n, s in status.items() if s == "succeeded"} == set(STEPS) - CACHED
    assert "cached" in proc.stdout  # the progress says so
    assert summary["model_uri"] == first["model_uri"]  # train reused: no new version registered
    assert summary["metrics"] == first["metrics"] and summary["rows"] == first["rows"]  # read from the cached run
    assert summary["seconds"] < first["seconds"] / 2


def test_rerunning_dataops_keeps_one_copy_of_each_row(run):
    home, _, _ = run
    _tagifai(home, "run", "dataops", "--quiet", "--no-cache")  # every step runs: the merge itself is tested
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        for table in ("raw.projects", "raw.tags", "main.labeled_projects"):
            total, distinct = con.execute(f"SELECT count(*), count(DISTINCT id) FROM {table}").fetchone()
            assert total == distinct == 764, table


def test_a_changed_source_recomputes_exactly_what_depends_on_it(run, tmp_path):
    """Another tags file (one tag changed): the tags' sync and validation, transform and the last validation
    run; the projects' sync and validation are reused. Last in this file: it changes the warehouse."""
    home, _, _ = run
    tags = pd.read_csv(DATA / "tags.csv")
    tags.loc[0, "tag"] = "mlops" if tags.loc[0, "tag"] != "mlops" else "time-series"
    changed = tmp_path / "tags.csv"
    tags.to_csv(changed, index=False)
    _tagifai(home, "run", "dataops", "--projects", str(DATA / "projects.csv"), "--tags", str(changed))
    status = {s["name"]: s["status"] for s in json.loads((home / "last_run.json").read_text())["steps"]}
    assert status == {
        "hold-warehouse": "succeeded",
        "fingerprint-projects": "succeeded",
        "sync-projects": "cached",
        "validate-projects": "cached",
        "fingerprint-tags": "succeeded",
        "sync-tags": "succeeded",
        "validate-tags": "succeeded",
        "transform": "succeeded",
        "validate-labeled-projects": "succeeded",
        "notify": "succeeded",
    }
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        first = con.execute("SELECT tag FROM main.labeled_projects ORDER BY id LIMIT 1").fetchone()[0]
    assert first == tags.sort_values("id").iloc[0]["tag"]
