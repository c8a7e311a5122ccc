"""The sensor (tagifai.sensor) on real files and a real DuckDB warehouse: the watermark, the new-row rule,
the run key, advancing."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tagifai.sensor import Snapshot, advance, advance_for, read_snapshot, run_key, sense
from tagifai.sources import SourceError
from tagifai.warehouse import parse_warehouse

DATA = Path(__file__).resolve().parents[2] / "data" / "madewithml"
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def projects() -> pd.DataFrame:
    """projects.csv ordered by created_on (then id): batches are its first rows."""
    df = pd.read_csv(DATA / "projects.csv", dtype=str, keep_default_na=False)
    return df.sort_values(["created_on", "id"], kind="stable").reset_index(drop=True)


def batch(projects: pd.DataFrame, folder: Path, rows: int, name: str = "projects.csv", **csv) -> str:
    """The first ``rows`` projects by created_on, as a CSV file (the source after that many arrived)."""
    path = folder / name
    projects.head(rows).to_csv(path, index=False, **csv)
    return str(path)


def wh(tmp_path: Path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


def test_no_watermark_means_retrain(tmp_path, projects):
    source = batch(projects, tmp_path, 300)
    d = sense(source, wh(tmp_path), min_new_rows=50, max_age_days=30, now=NOW)
    assert d.retrain and d.drift_check_needed
    assert d.new_rows == d.rows == 300
    assert d.previous is None and "no watermark" in d.reason
    assert not (tmp_path / "warehouse.duckdb").exists(), "sensing writes nothing"


def test_nothing_new_keeps_the_run_key(tmp_path, projects):
    source = batch(projects, tmp_path, 300)
    first = sense(source, wh(tmp_path), 50, 30, now=NOW)
    advance(wh(tmp_path), first, now=NOW)
    again = sense(source, wh(tmp_path), 50, 30, now=NOW + dt.timedelta(days=400))
    assert (again.retrain, again.new_rows, again.drift_check_needed) == (False, 0, False)
    assert again.run_key == first.run_key
    assert again.reason == "nothing new"


def test_below_and_above_the_threshold(tmp_path, projects):
    uri = wh(tmp_path)
    first = sense(batch(projects, tmp_path, 300), uri, 50, 30, now=NOW)
    advance(uri, first, now=NOW)
    below = sense(batch(projects, tmp_path, 349), uri, 50, 30, now=NOW)
    assert (below.retrain, below.new_rows, below.drift_check_needed) == (False, 49, True)
    assert below.run_key != first.run_key, "the key names the data a run would process"
    above = sense(batch(projects, tmp_path, 350), uri, 50, 30, now=NOW)
    assert (above.retrain, above.new_rows) == (True, 50)
    assert above.last_created_on == projects["created_on"][349].replace(" ", "T")


def test_max_age_retrains_a_few_new_rows(tmp_path, projects):
    uri = wh(tmp_path)
    advance(uri, sense(batch(projects, tmp_path, 300), uri, 50, 30, now=NOW), now=NOW)
    source = batch(projects, tmp_path, 310)
    assert not sense(source, uri, 50, 30, now=NOW + dt.timedelta(days=29)).retrain
    old = sense(source, uri, 50, 30, now=NOW + dt.timedelta(days=31))
    assert old.retrain and old.new_rows == 10 and "days old" in old.reason
    # nothing new: an old watermark alone does not retrain
    assert not sense(batch(projects, tmp_path, 300), uri, 50, 30, now=NOW + dt.timedelta(days=99)).retrain


def test_advance_is_idempotent(tmp_path, projects):
    uri = wh(tmp_path)
    d = sense(batch(projects, tmp_path, 400), uri, 50, 30, now=NOW)
    stored = advance(uri, d, now=NOW)
    assert advance(uri, d, now=NOW + dt.timedelta(hours=1)) == stored, "the same decision writes once"
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        rows = con.execute("SELECT name FROM main.tagifai_watermark").fetchall()
    assert rows == [("continual",)]
    assert parse_warehouse(uri).read_state("continual") == stored
    assert stored["run_key"] == d.run_key and stored["rows"] == 400
    assert stored["written_at"] == NOW.isoformat(timespec="seconds")


def test_stale_advance_is_refused(tmp_path, projects):
    uri = wh(tmp_path)
    source = batch(projects, tmp_path, 300)
    advance(uri, sense(source, uri, 50, 30, now=NOW), now=NOW)
    decided = sense(batch(projects, tmp_path, 400), uri, 50, 30, now=NOW)
    assert decided.retrain
    batch(projects, tmp_path, 450)  # rows arrive while the triggered run runs
    advanced, now = advance_for(source, uri, decided.run_key, now=NOW)
    assert not advanced and now.run_key != decided.run_key
    stored = parse_warehouse(uri).read_state("continual")
    assert stored["rows"] == 300, "the watermark stays where it was"
    assert sense(source, uri, 50, 30, now=NOW).new_rows == 150, "the unprocessed rows count again"
    # the matching key advances
    ok, _ = advance_for(source, uri, sense(source, uri, 50, 30, now=NOW).run_key, now=NOW)
    assert ok and parse_warehouse(uri).read_state("continual")["rows"] == 450


def test_run_key_is_deterministic_and_kfp_safe(tmp_path, projects):
    a = sense(batch(projects, tmp_path, 500, "a.csv"), wh(tmp_path), 50, 30, now=NOW)
    shuffled = projects.head(500).sample(frac=1, random_state=0)
    b = sense(batch(shuffled, tmp_path, 500, "b.csv", sep=";"), wh(tmp_path), 50, 30, now=NOW)
    assert a.run_key == b.run_key, "same data, any row order or separator: same key"
    assert a.run_key == run_key(a.last_created_on, a.content_hash)
    assert re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", a.run_key) and len(a.run_key) <= 63
    assert sense(batch(projects, tmp_path, 501, "c.csv"), wh(tmp_path), 50, 30, now=NOW).run_key != a.run_key


def test_parquet_and_json_sources(tmp_path, projects):
    head = projects.head(120).assign(id=lambda d: d["id"].astype(int))
    head.to_parquet(tmp_path / "p.parquet")
    head.to_json(tmp_path / "p.jsonl", orient="records", lines=True)
    csv = read_snapshot(batch(projects, tmp_path, 120))
    assert read_snapshot(str(tmp_path / "p.parquet")).rows == csv.rows
    assert read_snapshot(str(tmp_path / "p.jsonl")).rows == csv.rows
    assert read_snapshot((tmp_path / "projects.csv").as_uri()).rows == csv.rows


def test_rows_changed_before_the_watermark_are_reported(tmp_path, projects):
    uri = wh(tmp_path)
    advance(uri, sense(batch(projects, tmp_path, 300), uri, 50, 30, now=NOW), now=NOW)
    late = pd.concat([projects.head(300), projects.iloc[[299]].assign(id="999999")])  # a late row, old timestamp
    d = sense(batch(late, tmp_path, len(late)), uri, 50, 30, now=NOW)
    assert d.new_rows == 0 and not d.retrain
    assert d.history_changed and d.drift_check_needed and "changed" in d.reason


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("id,title\n1,a\n", r"bad\.csv: missing column\(s\) created_on"),
        ("id,created_on,title\nx1,2020-01-01,a\n", r"bad\.csv: column id: 1 value\(s\) not an integer \(row 1: 'x1'\)"),
        ("id,created_on,title\n1,yesterday,a\n", r"bad\.csv: column created_on: .*row 1: 'yesterday'"),
        ("id,created_on,title\n1,2020-01-01,a\n1,2020-01-02,b\n", r"bad\.csv: column id: duplicated id\(s\) 1"),
    ],
)
def test_bad_source_names_the_file_and_column(tmp_path, content, match):
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(SourceError, match=match):
        sense(str(tmp_path / "bad.csv"), wh(tmp_path), 50, 30, now=NOW)


def test_missing_source_and_bad_thresholds(tmp_path):
    with pytest.raises(SourceError, match="nope.csv: no such file"):
        sense(str(tmp_path / "nope.csv"), wh(tmp_path), 50, 30)
    with pytest.raises(ValueError, match="min_new_rows"):
        sense(str(tmp_path / "nope.csv"), wh(tmp_path), 0, 30)


def test_state_round_trip_and_replace(tmp_path):
    w = parse_warehouse(wh(tmp_path))
    assert w.read_state("x") is None
    w.write_state("x", {"a": 1})
    w.write_state("y", {"b": [1, 2]})
    w.write_state("x", {"a": 2})
    assert (w.read_state("x"), w.read_state("y"), w.read_state("z")) == ({"a": 2}, {"b": [1, 2]}, None)


def test_empty_source_does_not_retrain(tmp_path):
    (tmp_path / "empty.csv").write_text("id,created_on,title,description\n")
    d = sense(str(tmp_path / "empty.csv"), wh(tmp_path), 50, 30, now=NOW)
    assert not d.retrain and d.rows == 0 and d.run_key == run_key(None, Snapshot("", []).content_hash())


@pytest.fixture
def fake_bigquery(tmp_path, monkeypatch):
    """The fake BigQuery of tests/fakes (a real client over HTTP) and a key file whose token_uri is the fake."""
    import json

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from fakes.bigquery import FakeBigQuery

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fake = FakeBigQuery("tagifai-test").start()
    keyfile = tmp_path / "key.json"
    keyfile.write_text(json.dumps(fake.service_account_info(pem.decode())))
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "TAGIFAI_BQ_LOCATION", "TAGIFAI_BQ_STORAGE_API"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TAGIFAI_BQ_KEYFILE", str(keyfile))
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", fake.endpoint)
    monkeypatch.setenv("TAGIFAI_BQ_STORAGE_ENDPOINT", fake.storage_endpoint)
    yield fake
    fake.stop()


def test_bigquery_state_is_a_merge(fake_bigquery, tmp_path, projects):
    uri = "bigquery://tagifai-test/tagifai"
    w = parse_warehouse(uri)
    assert w.read_state("continual") is None, "no dataset or table yet: no state"
    source = batch(projects, tmp_path, 300)
    d = sense(source, uri, 50, 30, now=NOW)
    assert d.retrain and d.previous is None
    stored = advance(uri, d, now=NOW)
    assert advance(uri, d, now=NOW) == stored == w.read_state("continual")
    w.write_state("other", {"a": 1})
    w.write_state("other", {"a": 2})
    assert w.read_state("other") == {"a": 2}
    assert sense(source, uri, 50, 30, now=NOW).run_key == d.run_key
    assert any("MERGE" in sql for sql in fake_bigquery.sql_texts())
