"""Sync on a real DuckDB file: idempotent (merge on id), atomic (failures change nothing), the conformed rows."""

from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tagifai.extract import content_hash
from tagifai.sources import SourceError, read_source
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
    from tagifai.warehouse import duckdb as duckdb_backend

    path, uri, state = warehouse
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    before = content_hash(_table(path, "tags"))

    def crash_before_commit(con):
        # the delete and the insert ran: inside the transaction every tag is mlops now
        assert con.execute("SELECT count(*) FROM tagifai_warehouse.raw.tags WHERE tag <> 'mlops'").fetchone()[0] == 0
        raise RuntimeError("injected fault after merge statements")

    monkeypatch.setattr(duckdb_backend, "_commit", crash_before_commit)
    changed = pd.read_csv(DATA / "tags.csv").assign(tag="mlops")
    src = tmp_path / "tags_all_mlops.csv"
    changed.to_csv(src, index=False)
    with pytest.raises(SyncError, match="table is unchanged.*injected fault"):
        sync(str(src), "tags", uri, state)
    assert content_hash(_table(path, "tags")) == before

    monkeypatch.undo()
    # nothing of the failed load is replayed: a clean re-run loads exactly the given batch
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    assert content_hash(_table(path, "tags")) == before


def test_a_statement_failing_after_the_delete_rolls_back(warehouse):
    """A real failure inside the transaction (the insert breaks a NOT NULL after the delete ran) changes nothing."""
    path, uri, state = warehouse
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.tags (id BIGINT NOT NULL, tag VARCHAR, note VARCHAR NOT NULL)")
        con.execute("INSERT INTO raw.tags SELECT id, 'mlops', 'kept' FROM range(1, 2000) t(id)")
    before = content_hash(_table(path, "tags"))
    with pytest.raises(SyncError, match=r"loading tags into .* failed; the table is unchanged: .*note"):
        sync(str(DATA / "tags.csv"), "tags", uri, state)
    assert content_hash(_table(path, "tags")) == before


def test_raw_tables_have_the_schema_dbt_reads(warehouse):
    """The types dlt gave the raw tables (naive timestamps, id NOT NULL), nothing else (no loader columns)."""
    path, uri, state = warehouse
    sync(str(DATA / "projects.csv"), "projects", uri, state)
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    with duckdb.connect(str(path), read_only=True) as con:
        described = {
            t: [(r[0], r[1], r[2]) for r in con.execute(f"DESCRIBE raw.{t}").fetchall()] for t in ("projects", "tags")
        }
    assert described == {
        "projects": [
            ("id", "BIGINT", "NO"),
            ("created_on", "TIMESTAMP", "YES"),
            ("title", "VARCHAR", "YES"),
            ("description", "VARCHAR", "YES"),
        ],
        "tags": [("id", "BIGINT", "NO"), ("tag", "VARCHAR", "YES")],
    }


def test_loaded_rows_are_the_conformed_source(warehouse, tmp_path):
    """What lands in raw (and in the snapshot) is what conform makes of the source, value for value."""
    path, uri, state = warehouse
    snap = tmp_path / "snapshot"
    sync(str(DATA / "projects.csv"), "projects", uri, state, snapshot=snap)
    expected = read_source(str(DATA / "projects.csv"), "projects")
    assert _values(_table(path, "projects")) == _values(expected.sort_values("id"))
    assert _values(pd.read_parquet(snap)) == _values(expected)  # the source's order


def test_a_bad_source_never_creates_the_warehouse(warehouse, tmp_path):
    path, uri, state = warehouse
    bad = tmp_path / "tags.csv"
    bad.write_text("id,tag\n1,a\n1,b\n")
    with pytest.raises(SourceError, match=r"primary key 'id' is duplicated in data row\(s\) 1, 2 \(ids 1\)"):
        sync(str(bad), "tags", uri, state)
    assert not path.exists()


def test_a_changed_source_is_refused_before_loading(warehouse, tmp_path):
    from tagifai.sources import fingerprint

    path, uri, state = warehouse
    src = tmp_path / "tags.csv"
    src.write_bytes((DATA / "tags.csv").read_bytes())
    seen = fingerprint(str(src))
    result = sync(str(src), "tags", uri, state, expected_fingerprint=seen)
    assert result.fingerprint == seen and result.rows_after == 764
    src.write_text("id,tag\n1,mlops\n")
    with pytest.raises(SourceError, match="changed since this run took its fingerprint"):
        sync(str(src), "tags", uri, state, expected_fingerprint=seen)
    assert len(_table(path, "tags")) == 764


def test_sync_over_http_loads_the_fingerprinted_bytes(warehouse, monkeypatch):
    import functools
    import http.server
    import sys
    import threading

    from tagifai.sources import fingerprint

    monkeypatch.setitem(sys.modules, "aiohttp", None)  # as in the sync image: no fsspec HTTP
    path, uri, state = warehouse
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(DATA))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        result = sync(f"{base}/tags.csv", "tags", uri, state, expected_fingerprint=fingerprint(str(DATA / "tags.csv")))
        assert (result.rows_read, result.rows_after) == (764, 764)
        with pytest.raises(SourceError, match=r"missing\.csv: could not read its bytes"):
            sync(f"{base}/missing.csv", "tags", uri, state)
    finally:
        server.shutdown()
    assert _values(_table(path, "tags")) == _values(read_source(str(DATA / "tags.csv"), "tags").sort_values("id"))


def test_a_large_batch_merges_on_id(warehouse, tmp_path):
    """Synthetic rows in several of DuckDB's read buffers: merged on id (changed rows replaced, new rows added)."""
    from benchmarks import synth

    path, uri, state = warehouse
    first = synth.write(150_000, tmp_path / "first")
    sync(first.projects, "projects", uri, state)
    again = synth.write(50_000, tmp_path / "again", seed=1, id_start=synth.DEFAULT_ID_START + 125_000)
    result = sync(again.projects, "projects", uri, state)
    assert (result.rows_read, result.rows_before, result.rows_after) == (50_000, 150_000, 175_000)
    changed = synth.DEFAULT_ID_START + 130_000
    with duckdb.connect(str(path), read_only=True) as con:
        row = con.execute("SELECT title, description FROM raw.projects WHERE id = ?", [changed]).fetchone()
    replaced = pd.read_csv(again.projects).set_index("id").loc[changed]
    assert row == (replaced["title"], replaced["description"])


def _values(df: pd.DataFrame) -> list[tuple]:
    """Rows as plain values (timestamps as pandas Timestamps, missing as None), whatever the dtypes."""
    out = []
    for row in df.itertuples(index=False):
        out.append(tuple(None if pd.isna(v) else (pd.Timestamp(v) if hasattr(v, "year") else v) for v in row))
    return out


def test_a_writer_holding_the_file_is_waited_for(warehouse):
    """Another process holding DuckDB's lock on the file: the merge waits for it (growing pauses), then loads."""
    import subprocess
    import sys
    import time

    path, uri, state = warehouse
    sync(str(DATA / "tags.csv"), "tags", uri, state)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({str(path)!r}); print('held', flush=True); time.sleep(2)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        start = time.perf_counter()
        result = sync(str(DATA / "tags.csv"), "tags", uri, state)
        assert result.rows_after == 764 and time.perf_counter() - start > 0.4
    finally:
        holder.wait(timeout=30)


def test_fingerprint_and_the_duckdb_sync_run_without_pandas(tmp_path):
    """The fingerprint and sync tasks start without pandas (0.6 s of a task's start): the DuckDB path reads,
    checks and merges the source in DuckDB."""
    import subprocess
    import sys

    code = (
        "import sys; from pathlib import Path; from tagifai.sources import fingerprint; from tagifai.sync import sync; "
        f"source = {str(DATA / 'projects.csv')!r}; fingerprint(source); "
        f"r = sync(source, 'projects', 'duckdb:///{tmp_path}/w.duckdb', Path({str(tmp_path)!r})); "
        "print(r.rows_after, 'pandas' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split()[-2:] == ["764", "False"]
