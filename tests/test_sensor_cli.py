"""``tagifai sense`` and ``tagifai watch`` on a temp home (no run: the thresholds are not met)."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tagifai.sensor import advance, sense
from tagifai_cli.main import main
from tagifai_cli.sensor import parse_duration

DATA = Path(__file__).resolve().parents[1] / "data" / "madewithml"


@pytest.fixture
def source(tmp_path) -> str:
    df = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
    path = tmp_path / "projects.csv"
    df.sort_values(["created_on", "id"]).head(100).to_csv(path, index=False)
    return str(path)


def test_sense_prints_the_decision_as_json(tmp_path, source, capsys, monkeypatch):
    for name in ("TAGIFAI_WAREHOUSE", "TAGIFAI_HOME", "TAGIFAI_SENSOR_MIN_NEW_ROWS"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    assert main(["sense", "--home", str(home), "--projects", source]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["retrain"] is True and decision["new_rows"] == 100
    assert decision["run_key"].startswith("continual-")

    # after a (pretend) successful run: nothing new, the same key, and --run does not start anything
    advance(f"duckdb:///{home / 'warehouse.duckdb'}", sense(source, f"duckdb:///{home / 'warehouse.duckdb'}", 50, 30))
    assert main(["sense", "--home", str(home), "--projects", source, "--run"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["retrain"], again["new_rows"], again["run_key"]) == (False, 0, decision["run_key"])
    assert not (home / "runs").exists()


def test_watch_stops_after_max_iterations(tmp_path, source, capsys, monkeypatch):
    monkeypatch.delenv("TAGIFAI_WAREHOUSE", raising=False)
    home = tmp_path / "home"
    wh = f"duckdb:///{home / 'warehouse.duckdb'}"
    advance(wh, sense(source, wh, 50, 30))
    argv = ["watch", "--home", str(home), "--projects", source, "--every", "0.01s", "--max-iterations", "2"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count('"retrain": false') == 2


def test_sense_error_is_one_line(tmp_path, capsys):
    assert main(["sense", "--home", str(tmp_path), "--projects", str(tmp_path / "missing.csv")]) == 1
    err = capsys.readouterr().err
    assert "SourceError: " in err and "missing.csv: no such file" in err


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("10m", 600), ("1h", 3600), ("2d", 172800)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_duration():
    with pytest.raises(ValueError, match="expected a positive duration"):
        parse_duration("soon")


def test_run_and_submit_are_one_or_the_other(tmp_path, source, capsys):
    argv = ["sense", "--home", str(tmp_path), "--projects", source, "--run", "--submit", "kubeflow"]
    assert main(argv) == 1
    assert (
        "--run runs continual here, --submit sends the sensor pipeline to a cluster: give one"
        in capsys.readouterr().err
    )


def test_submit_without_enough_new_data_contacts_nothing(tmp_path, source, capsys, monkeypatch):
    """Nothing new: the decision is printed and no cluster is asked (the host here answers nothing)."""
    monkeypatch.delenv("TAGIFAI_WAREHOUSE", raising=False)
    home = tmp_path / "home"
    wh = f"duckdb:///{home / 'warehouse.duckdb'}"
    advance(wh, sense(source, wh, 50, 30))
    for target in (["kubeflow", "--host", "http://127.0.0.1:9"], ["vertex", "--api-endpoint", "http://127.0.0.1:9"]):
        assert main(["sense", "--home", str(home), "--projects", source, "--submit", *target]) == 0
        assert json.loads(capsys.readouterr().out)["retrain"] is False
