"""The sensor pipeline run for real with kfp.local: sense -> (retrain) continual -> advance the watermark.

The first run finds no watermark and retrains under manual approval (the model waits for a person); the
second finds nothing new and runs only its sense task; a new batch above the threshold is sensed with a
new run key.
"""

import json

import duckdb
import pandas as pd
import pytest
from test_continual import DATA, _tagifai

pytestmark = pytest.mark.e2e


def _batch(folder, projects: pd.DataFrame, tags: pd.DataFrame, rows: int):
    first = projects.sort_values(["created_on", "id"]).head(rows)
    folder.mkdir(parents=True, exist_ok=True)
    first.to_csv(folder / "projects.csv", index=False)
    tags[tags["id"].isin(first["id"])].to_csv(folder / "tags.csv", index=False)
    return str(folder / "projects.csv"), str(folder / "tags.csv")


def test_the_sensor_runs_continual_once_then_waits_for_new_data(tmp_path):
    projects = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
    tags = pd.read_csv(DATA / "tags.csv", dtype=str, keep_default_na=False)
    home = tmp_path / "home"
    p, t = _batch(tmp_path / "batch1", projects, tags, 700)

    _tagifai(home, "run", "sensor", "--projects", p, "--tags", t, "--num-trials", "2")
    first = json.loads((home / "last_run.json").read_text())
    names = [s["name"] for s in first["steps"]]
    assert first["status"] == "succeeded", first["steps"]
    assert names[:2] == ["hold-warehouse", "sense"] and names[-2:] == ["advance-watermark", "notify"], names
    assert "evaluate" in names
    assert first["retrain"] is True and first["new_rows"] == 700
    assert first["evaluation"]["outcome"] == 1, "a sensor-triggered run waits for approval"
    with duckdb.connect(str(home / "warehouse.duckdb"), read_only=True) as con:
        [(value,)] = con.sql("SELECT value FROM main.tagifai_watermark WHERE name = 'continual'").fetchall()
    assert json.loads(value)["run_key"] == first["run_key"]

    _tagifai(home, "run", "sensor", "--projects", p, "--tags", t, "--num-trials", "2")
    second = json.loads((home / "last_run.json").read_text())
    assert [s["name"] for s in second["steps"]] == ["hold-warehouse", "sense", "notify"], second["steps"]
    assert second["retrain"] is False and second["run_key"] == first["run_key"]

    p, t = _batch(tmp_path / "batch2", projects, tags, 764)
    decision = json.loads(_tagifai(home, "sense", "--projects", p).stdout)
    assert decision["retrain"] is True and decision["new_rows"] == 64
    assert decision["run_key"] != first["run_key"]
