"""extract_table's ``full`` policy streamed batch by batch (tagifai/extract.py: _extract_whole, DuckDB's iter_rows)
gives the file, metadata and composition of the whole-frame path (compose + describe), on data with ties, missing
ids, missing times and tags, unicode, across many batches."""

import duckdb
import numpy as np
import pandas as pd
import pytest

from tagifai import extract
from tagifai.compose import CompositionPolicy, Tally, compose, content_hash
from tagifai.extract import describe, extract_table
from tagifai.warehouse import parse_warehouse, read_table
from tagifai.warehouse.base import Warehouse

ROWS = 9_000  # DuckDB hands out multiples of 2048 rows: several batches


def _frame(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = rng.permutation(rows).astype("float")
    ids[rng.choice(rows, 30, replace=False)] = np.nan  # missing ids sort last
    ids[rng.choice(rows, 40, replace=False)] = 7.0  # ties keep the table's order
    times = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, rows), unit="D")
    times = pd.Series(times).mask(rng.random(rows) < 0.01)
    tags = pd.Series(rng.choice(["mlops", "nlp", "computer-vision", "other", "é-ü"], rows)).mask(
        rng.random(rows) < 0.02
    )
    return pd.DataFrame(
        {
            "id": pd.array(ids, dtype="Int64"),
            "created_on": times,
            "title": [f"Title {i} ✓ {'x' * (i % 50)}" for i in range(rows)],
            "description": [None if i % 97 == 0 else f"Description {i}\twith  spaces" for i in range(rows)],
            "tag": tags,
        }
    )


@pytest.fixture
def warehouse(tmp_path) -> str:
    path = tmp_path / "wh.duckdb"
    with duckdb.connect(str(path)) as con:
        df = _frame()  # noqa: F841 (DuckDB reads the frame by its name)
        con.execute("CREATE TABLE main.labeled_projects AS SELECT * FROM df")
        con.execute("CREATE TABLE main.empty AS SELECT * FROM df LIMIT 0")
        con.execute("CREATE VIEW main.recent AS SELECT * FROM main.labeled_projects WHERE id > 100 OR id IS NULL")
    return f"duckdb:///{path}"


def _frame_path(uri: str, table: str, seed: int = 42) -> tuple[pd.DataFrame, dict]:
    """What extract_table wrote before it streamed: the whole table composed, then described."""
    df, composition = compose(read_table(uri, table), None, seed, table=table)
    return df, {"table": table, **describe(df), "composition": composition}


@pytest.mark.parametrize("table", ["labeled_projects", "recent"])
def test_the_stream_writes_what_the_frame_path_wrote(warehouse, tmp_path, table, monkeypatch):
    monkeypatch.setattr(extract, "BATCH_ROWS", 2048)
    seen = []
    original = Tally.add
    monkeypatch.setattr(Tally, "add", lambda self, df: (seen.append(len(df)), original(self, df))[1])
    out = tmp_path / "out" / "dataset"
    meta = extract_table(warehouse, table, out, seed=5)
    assert len(seen) > 1 if table == "labeled_projects" else len(seen) == 1  # a view is read whole
    expected_df, expected_meta = _frame_path(warehouse, table, seed=5)
    assert meta == expected_meta
    assert list(meta) == list(expected_meta) and list(meta["composition"]) == list(expected_meta["composition"])
    pd.testing.assert_frame_equal(pd.read_parquet(out), expected_df)
    assert not list(out.parent.glob("*.tmp"))


def test_an_explicit_full_policy_streams_too_and_a_window_does_not(warehouse, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(extract, "_extract_whole", lambda *a: calls.append(a) or None)
    extract_table(warehouse, "labeled_projects", tmp_path / "a", CompositionPolicy("full"))
    extract_table(warehouse, "labeled_projects", tmp_path / "b", CompositionPolicy("window", window_days=400))
    assert len(calls) == 1


def test_a_changed_table_fails_and_leaves_no_file(warehouse, tmp_path):
    out = tmp_path / "out" / "dataset"
    with pytest.raises(ValueError, match="labeled_projects changed since the step that built it"):
        extract_table(warehouse, "labeled_projects", out, expected_hash="0" * 64)
    assert not out.exists() and not list(out.parent.iterdir())
    right = content_hash(read_table(warehouse, "labeled_projects"))
    assert extract_table(warehouse, "labeled_projects", out, expected_hash=right)["content_hash"] == right


def test_an_empty_table_takes_the_frame_path(warehouse, tmp_path):
    out = tmp_path / "dataset"
    meta = extract_table(warehouse, "empty", out)
    assert meta == _frame_path(warehouse, "empty")[1] and meta["rows"] == 0
    assert list(pd.read_parquet(out).columns) == ["id", "created_on", "title", "description", "tag"]


def test_the_default_iter_rows_sorts_as_duckdb_streams(warehouse):
    duck = parse_warehouse(warehouse)
    streamed = pd.concat(list(duck.iter_rows("labeled_projects", order_by="id", batch_rows=2048)), ignore_index=True)
    default = pd.concat(list(Warehouse.iter_rows(duck, "labeled_projects", order_by="id")), ignore_index=True)
    pd.testing.assert_frame_equal(streamed, default)
    missing = int(streamed["id"].isna().sum())
    assert missing > 0 and streamed["id"].isna().iloc[-missing:].all() and str(streamed["id"].dtype) == "Int64"


def test_a_missing_table_is_named(warehouse):
    with pytest.raises(Exception, match="table main.nope not found"):
        list(parse_warehouse(warehouse).iter_rows("nope"))


def test_a_batch_with_other_columns_is_refused():
    tally = Tally()
    tally.add(pd.DataFrame({"id": [1], "tag": ["a"]}))
    with pytest.raises(ValueError, match="differ from the first batch"):
        tally.add(pd.DataFrame({"id": [2], "title": ["b"]}))


def test_the_real_curated_rows_stream_alike(labeled_df, tmp_path):
    path = tmp_path / "real.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE main.labeled_projects AS SELECT * FROM labeled_df")
    uri = f"duckdb:///{path}"
    meta = extract_table(uri, "labeled_projects", tmp_path / "dataset")
    expected_df, expected_meta = _frame_path(uri, "labeled_projects")
    assert meta == expected_meta and meta["rows"] == len(labeled_df)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dataset"), expected_df)
