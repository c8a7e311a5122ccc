"""The sense and advance_watermark components called directly, with a real Artifact, files and DuckDB."""

import json
from pathlib import Path

import pandas as pd
from _artifacts import make_artifact
from kfp.dsl import Artifact

from components.sense import advance_watermark, sense
from tagifai.warehouse import parse_warehouse

DATA = Path(__file__).resolve().parents[2] / "data" / "madewithml"


def _source(folder: Path, rows: int) -> str:
    df = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
    path = folder / "projects.csv"
    df.sort_values(["created_on", "id"]).head(rows).to_csv(path, index=False)
    return str(path)


def _sense(tmp_path: Path, source: str, uri: str, name: str):
    decision = make_artifact(Artifact, tmp_path, name)
    retrain = sense.python_func(
        projects_source=source, warehouse=uri, min_new_rows=50, max_age_days=30.0, decision=decision
    )
    assert retrain is decision.metadata["retrain"]
    return decision.metadata, decision


def test_sense_then_advance_then_nothing_new(tmp_path):
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    source = _source(tmp_path, 200)
    out, decision = _sense(tmp_path, source, uri, "decision")
    assert (out["retrain"], out["new_rows"], out["drift_check_needed"]) == (True, 200, True)
    written = json.loads(Path(decision.path).read_text())
    assert written["run_key"] == out["run_key"]

    assert advance_watermark.python_func(projects_source=source, warehouse=uri, decision=decision) is True
    assert advance_watermark.python_func(projects_source=source, warehouse=uri, decision=decision) is True
    assert parse_warehouse(uri).read_state("continual")["run_key"] == out["run_key"]

    again, _ = _sense(tmp_path, source, uri, "again")
    assert (again["retrain"], again["new_rows"], again["run_key"]) == (False, 0, out["run_key"])


def test_stale_advance_leaves_the_watermark(tmp_path):
    uri = f"duckdb:///{tmp_path / 'w.duckdb'}"
    _, decision = _sense(tmp_path, _source(tmp_path, 200), uri, "decision")
    source = _source(tmp_path, 260)  # new rows after the decision
    assert advance_watermark.python_func(projects_source=source, warehouse=uri, decision=decision) is False
    assert parse_warehouse(uri).read_state("continual") is None
