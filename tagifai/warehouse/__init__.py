"""The warehouse: where raw and curated tables live, behind one interface (:class:`Warehouse`).

``duckdb:///path/file.duckdb`` (or a bare path) is the embedded default; ``bigquery://project/dataset``
the production one. :func:`parse_warehouse` picks the backend by the URI's scheme from
:data:`BACKENDS`; everything else (sync, extract, validation, transform) only calls the interface, so
the rest of the library never cares which backend it holds.

Adding a backend (say ``postgres://``) is one module here with a :class:`Warehouse` subclass and one
line in :data:`BACKENDS`.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from tagifai.warehouse.base import CURATED_SCHEMA, RAW_SCHEMA, Warehouse, WarehouseError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["BACKENDS", "CURATED_SCHEMA", "RAW_SCHEMA", "Warehouse", "WarehouseError", "parse_warehouse", "read_table"]

#: URI scheme -> ``module:class`` of its backend (imported when a URI of that scheme is parsed).
BACKENDS: dict[str, str] = {
    "duckdb": "tagifai.warehouse.duckdb:DuckDBWarehouse",
    "bigquery": "tagifai.warehouse.bigquery:BigQueryWarehouse",
}
#: The backend of a bare path (no ``scheme://``).
DEFAULT_SCHEME = "duckdb"


def backend(scheme: str) -> type[Warehouse]:
    """The :class:`Warehouse` class registered for ``scheme``."""
    module, _, name = BACKENDS[scheme].partition(":")
    return getattr(import_module(module), name)


def parse_warehouse(uri: str) -> Warehouse:
    """The warehouse of a URI: ``duckdb:///abs/path.duckdb`` (or a bare path), ``bigquery://project/dataset``."""
    scheme = uri.split("://", 1)[0] if "://" in uri else DEFAULT_SCHEME
    if scheme not in BACKENDS:
        expected = " or ".join(BACKENDS)
        raise WarehouseError(f"warehouse {uri!r}: unsupported scheme {scheme!r} (expected {expected})")
    return backend(scheme).from_uri(uri)


def read_table(uri: str, table: str, schema: str | None = None) -> pd.DataFrame:
    """Read a whole table into a dataframe. ``table`` may be ``schema.table``; default schema is ``main``.

    On BigQuery ``raw`` is the dataset ``<dataset>_raw`` and ``main`` the dataset ``<dataset>``.
    """
    return parse_warehouse(uri).read_table(table, schema)
