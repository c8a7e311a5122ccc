"""The warehouse: where raw and curated tables live.

``duckdb:///path/file.duckdb`` is the embedded default; ``bigquery://project/dataset`` the production
one. Everything that touches the warehouse goes through here so the rest of the library never cares
which it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

#: Schema (DuckDB) or dataset suffix (BigQuery) of the tables loaded by sync.
RAW_SCHEMA = "raw"
#: Schema of the dbt models (staging views and marts).
CURATED_SCHEMA = "main"


class WarehouseError(RuntimeError):
    """A warehouse URI, table or query could not be used."""


@dataclass(frozen=True)
class Warehouse:
    kind: str  # "duckdb" or "bigquery"
    path: Path | None = None  # duckdb
    project: str | None = None  # bigquery
    dataset: str | None = None  # bigquery

    @property
    def uri(self) -> str:
        if self.kind == "duckdb":
            return f"duckdb:///{self.path}"
        return f"bigquery://{self.project}/{self.dataset}"


def parse_warehouse(uri: str) -> Warehouse:
    """Parse ``duckdb:///abs/path.duckdb`` (or a bare path) and ``bigquery://project/dataset``."""
    if "://" not in uri:
        return Warehouse("duckdb", path=Path(uri).expanduser().resolve())
    parsed = urlparse(uri)
    if parsed.scheme == "duckdb":
        raw = uri[len("duckdb://"):]
        if not raw or raw == "/":
            raise WarehouseError(f"warehouse {uri!r}: expected duckdb:///path/to/file.duckdb")
        # duckdb:///abs/path -> /abs/path ; duckdb://rel/path -> rel/path
        return Warehouse("duckdb", path=Path(raw).expanduser().resolve())
    if parsed.scheme == "bigquery":
        dataset = parsed.path.strip("/")
        if not parsed.netloc or not dataset or "/" in dataset:
            raise WarehouseError(f"warehouse {uri!r}: expected bigquery://<project>/<dataset>")
        return Warehouse("bigquery", project=parsed.netloc, dataset=dataset)
    raise WarehouseError(f"warehouse {uri!r}: unsupported scheme {parsed.scheme!r} (expected duckdb or bigquery)")


def duckdb_path(uri: str) -> Path:
    """The DuckDB file of a ``duckdb://`` warehouse (error for other kinds)."""
    wh = parse_warehouse(uri)
    if wh.kind != "duckdb":
        raise WarehouseError(f"warehouse {uri!r} is not a DuckDB file")
    return wh.path


def read_table(uri: str, table: str, schema: str | None = None) -> pd.DataFrame:
    """Read a whole table into a dataframe. ``table`` may be ``schema.table``; default schema is ``main``.

    On BigQuery ``raw`` is the dataset ``<dataset>_raw`` and ``main`` the dataset ``<dataset>``; the
    table is read with the BigQuery Storage Read API when it is installed (see tagifai.bigquery).
    """
    wh = parse_warehouse(uri)
    if wh.kind == "bigquery":
        from tagifai import bigquery

        return bigquery.read_table(wh, table, schema)
    if "." not in table:
        table = f"{schema or CURATED_SCHEMA}.{table}"
    if wh.kind == "duckdb":
        import duckdb

        if not wh.path.exists():
            raise WarehouseError(f"warehouse file {wh.path} does not exist: run sync first")
        with duckdb.connect(str(wh.path), read_only=True) as con:
            try:
                return con.sql(f"SELECT * FROM {table}").df()
            except duckdb.CatalogException as exc:
                raise WarehouseError(f"table {table} not found in {wh.path}: {exc}") from exc
    raise WarehouseError(f"reading from {wh.kind} is not supported")
