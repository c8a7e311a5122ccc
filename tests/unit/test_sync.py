"""Sync on a real DuckDB file with dlt: idempotent (merge on id) and atomic (failures change nothing)."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tagifai.extract import content_hash
from tagifai.sources import SourceError
from tagifai.sync import SyncError, sync

DATA = Path(__file__).resolve().parents[2] / "data" / "madewithml"


def _table(path: Path, table: str) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f"SELECT * FROM raw.{table} ORDER BY id").df()


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    return path, f"duckdb:///{path}", tmp_path / "state"


def test_sync_twice_leaves_one_copy_of_each_row(warehouse):
    path, uri, state = warehouse
    first = sync(str(DATA / "projects.csv"), "projects", uri, state)
    assert (first.rows_read, first.rows_before, first.rows_after) == (764, 0, 764)
    again = sync(str(DATA / "projects.csv"), "projects", uri, state)
    assert (again.rows_before, again.rows_after) == (764, 764)
    df = _table(path, "projects")
    assert len(df) == 764 and df["id"].is_unique


def test_merge_updates_changed_rows_and_adds_new_ones(warehouse, tmp_path):
    path, uri, state = warehouse
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    changed = pd.read_csv(DATA / "tags.csv")
    changed.loc[0, "tag"] = "mlops"
    changed = pd.concat([changed, pd.DataFrame([{"id": 10_000_001, "tag": "computer-vision"}])])
    src = tmp_path / "tags_v2.csv"
    changed.to_csv(src, index=False)
    result = sync(str(src), "tags", uri, state)
    assert result.rows_after == 765
    df = _table(path, "tags").set_index("id")
    assert df.loc[changed.iloc[0]["id"], "tag"] == "mlops"
    assert df.loc[10_000_001, "tag"] == "computer-vision"


def test_snapshot_is_written(warehouse, tmp_path):
    _, uri, state = warehouse
    snap = tmp_path / "artifact" / "dataset"
    sync(str(DATA / "tags.csv"), "tags", uri, state, snapshot=snap)
    assert len(pd.read_parquet(snap)) == 764


def test_bad_source_leaves_table_unchanged(warehouse, tmp_path):
    path, uri, state = warehouse
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    before = content_hash(_table(path, "tags"))
    bad = tmp_path / "tags.csv"
    bad.write_text("id,tag\n1,a\nnot-an-id,b\n")
    with pytest.raises(SourceError, match=r"tags\.csv: column 'id' is not an integer in data row\(s\) 2"):
        sync(str(bad), "tags", uri, state)
    assert content_hash(_table(path, "tags")) == before


def test_failure_inside_the_merge_rolls_back(warehouse, tmp_path, monkeypatch):
    """Inject a crash after the merge statements ran but before commit: the table must be as before."""
    from dlt.destinations.impl.duckdb.sql_client import DuckDbSqlClient

    path, uri, state = warehouse
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    before = content_hash(_table(path, "tags"))

    original = DuckDbSqlClient.execute_many

    def crash_after_merge(self, statements, *args, **kwargs):
        result = original(self, statements, *args, **kwargs)
        if any("DELETE" in s.upper() and '"tags"' in s for s in statements):
            raise RuntimeError("injected fault after merge statements")
        return result

    monkeypatch.setattr(DuckDbSqlClient, "execute_many", crash_after_merge)
    changed = pd.read_csv(DATA / "tags.csv").assign(tag="mlops")
    src = tmp_path / "tags_all_mlops.csv"
    changed.to_csv(src, index=False)
    with pytest.raises(SyncError, match="table is unchanged.*injected fault"):
        sync(str(src), "tags", uri, state)
    assert content_hash(_table(path, "tags")) == before

    monkeypatch.setattr(DuckDbSqlClient, "execute_many", original)
    # the failed package is not replayed: a clean re-run loads exactly the given batch
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    assert content_hash(_table(path, "tags")) == before
