"""The warehouse interface: URI parsing through the registry, and the DuckDB backend on a real file.

(The BigQuery backend is tested against a loopback BigQuery in test_bigquery.py.)
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import duckdb
import pytest

import tagifai.warehouse as warehouse
from tagifai.config import PACKAGE_ROOT
from tagifai.warehouse import BACKENDS, RAW_SCHEMA, Warehouse, WarehouseError, parse_warehouse, read_table
from tagifai.warehouse.duckdb import DuckDBWarehouse


@pytest.fixture
def duck(tmp_path) -> DuckDBWarehouse:
    """A DuckDB warehouse with raw.tags (two rows) and main.labeled (one row)."""
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.tags AS SELECT * FROM (VALUES (1, 'mlops'), (2, 'time-series')) t(id, tag)")
        con.execute("CREATE TABLE main.labeled AS SELECT 1 AS id")
    return parse_warehouse(f"duckdb:///{path}")


def test_uris_round_trip():
    for uri in ("duckdb:////tmp/w.duckdb", "bigquery://p/d"):
        assert parse_warehouse(uri).uri == uri
    assert parse_warehouse("/tmp/w.duckdb") == DuckDBWarehouse(Path("/tmp/w.duckdb"))
    assert parse_warehouse("duckdb://rel/w.duckdb").path == Path("rel/w.duckdb").resolve()


def test_unknown_schemes_name_the_registered_ones():
    with pytest.raises(WarehouseError, match=r"unsupported scheme 'postgres' \(expected duckdb or bigquery\)"):
        parse_warehouse("postgres://h/db")


def test_duckdb_reads_counts_and_names_tables(duck):
    assert isinstance(duck, Warehouse) and duck.dbt_target == "local" and duck.gx_pandas
    assert duck.missing() is None and duck.raw_dataset == RAW_SCHEMA
    assert duck.table_ref("tags", RAW_SCHEMA) == 'raw."tags"' and duck.table_ref("labeled") == 'main."labeled"'
    assert duck.count_rows("raw.tags") == 2 and duck.count_rows("tags", RAW_SCHEMA) == 2
    assert duck.count_rows("raw.not_there") == 0
    assert read_table(duck.uri, "raw.tags")["tag"].tolist() == ["mlops", "time-series"]
    assert read_table(duck.uri, "labeled")["id"].tolist() == [1]
    assert duck.table_columns("raw.tags") == ["id", "tag"]
    with pytest.raises(WarehouseError, match="table raw.nope not found"):
        duck.read_table("raw.nope")
    assert duck.dbt_env() == {"TAGIFAI_DUCKDB_PATH": duck.path.name}  # opened in dbt_workdir
    assert duck.dbt_workdir() == duck.path.parent
    assert duck.dlt_write_disposition() == "merge"


def test_a_missing_duckdb_file_says_run_sync(tmp_path):
    wh = parse_warehouse(str(tmp_path / "none.duckdb"))
    assert "run sync first" in wh.missing()
    assert wh.count_rows("raw.tags") == 0
    with pytest.raises(WarehouseError, match="does not exist: run sync first"):
        wh.read_table("raw.tags")
    assert not wh.path.exists()


@dataclass(frozen=True)
class MemoryWarehouse(Warehouse):
    """A third backend, as a test would add one: a class and one registry entry."""

    name: str
    scheme: ClassVar[str] = "memory"
    dbt_target: ClassVar[str] = "memory"

    @classmethod
    def from_uri(cls, uri):
        return cls(uri.split("://", 1)[1])

    uri = property(lambda self: f"memory://{self.name}")
    raw_dataset = property(lambda self: "raw")

    def table_ref(self, table, schema=None):
        return table

    def read_table(self, table, schema=None):
        import pandas as pd

        return pd.DataFrame({"id": [1, 2, 3]})

    def count_rows(self, table, schema=None):
        return 3

    def dlt_destination(self):
        return None

    def dlt_write_disposition(self):
        return "merge"

    def dbt_env(self):
        return {}


def test_a_third_backend_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(BACKENDS, "memory", f"{__name__}:MemoryWarehouse")
    wh = parse_warehouse("memory://x")
    assert wh == MemoryWarehouse("x") and wh.uri == "memory://x"
    assert len(read_table("memory://x", "t")) == 3 and wh.table_columns("t") == ["id"]


def _imports(path: Path) -> set[str]:
    """The modules a source file imports (anywhere in it, functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_only_the_warehouse_package_knows_its_backends():
    package = Path(warehouse.__file__).parent
    for path in (PACKAGE_ROOT / "tagifai").rglob("*.py"):
        if package in path.parents:
            continue
        source = path.read_text()
        assert ".kind ==" not in source and ".kind !=" not in source, path
        backends = {m for m in _imports(path) if m.startswith("tagifai.warehouse.") and m.count(".") >= 2}
        assert backends <= {
            "tagifai.warehouse.RAW_SCHEMA",
            "tagifai.warehouse.CURATED_SCHEMA",
            "tagifai.warehouse.Warehouse",
            "tagifai.warehouse.WarehouseError",
            "tagifai.warehouse.parse_warehouse",
            "tagifai.warehouse.read_table",
        }, path
        assert "tagifai.bigquery" not in _imports(path), path
