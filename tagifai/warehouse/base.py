"""What every warehouse backend offers: the one interface sync, extract, validation and transform use.

A backend is a :class:`Warehouse` subclass in its own module of this package, registered by its URI
scheme in :data:`tagifai.warehouse.BACKENDS`. Callers never ask which backend they hold: they call the
methods below, and each backend answers in its own terms (a DuckDB schema or a BigQuery dataset, a
pandas batch or a SQL datasource for Great Expectations, the dbt target and the variables its profile
reads).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    import pandas as pd

#: Rows a batch of :meth:`Warehouse.iter_rows` by default (about 200 MB of a pandas frame of project texts).
BATCH_ROWS = 204_800
#: Schema (DuckDB) or dataset suffix (BigQuery) of the tables loaded by sync.
RAW_SCHEMA = "raw"
#: Schema of the dbt models (staging views and marts).
CURATED_SCHEMA = "main"
#: The small state table (schema ``main``) of :meth:`Warehouse.read_state` / :meth:`Warehouse.write_state`:
#: one row per name (``name``, ``value`` as JSON text, ``written_at``), e.g. the sensor's watermark.
STATE_TABLE = "tagifai_watermark"


class WarehouseError(RuntimeError):
    """A warehouse URI, table or query could not be used."""


def split_table(table: str, schema: str | None = None) -> tuple[str, str]:
    """``schema.table`` (or ``table`` with ``schema``, default ``main``) as ``(schema, table)``."""
    if "." in table:
        found, name = table.split(".", 1)
        return found, name
    return schema or CURATED_SCHEMA, table


class Warehouse(ABC):
    """A warehouse holding the raw tables (schema ``raw``) and the dbt models (schema ``main``).

    Table names are given as ``table`` (schema ``main``) or ``schema.table`` with the schema names
    :data:`RAW_SCHEMA` and :data:`CURATED_SCHEMA`; each backend maps them to its own namespaces.
    """

    #: The URI scheme that selects this backend (``duckdb://...``, ``bigquery://...``).
    scheme: ClassVar[str]
    #: The target of dbt_transforms/profiles.yml that runs on this backend.
    dbt_target: ClassVar[str]
    #: True: Great Expectations validates a pandas dataframe of the table (read with
    #: :meth:`read_table`). False: it runs as SQL on the datasource of :meth:`gx_batch_definition`.
    gx_pandas: ClassVar[bool] = True
    #: True: every pod of a cloud run (Vertex AI) reaches the same warehouse; False: it is a local
    #: file, shared only by the steps that mount it.
    shared_across_pods: ClassVar[bool] = False

    def lease_path(self) -> Path | None:
        """The file of the run lease (:mod:`tagifai.lease`) when runs must take turns on this warehouse (one
        file that one process at a time may write), else None (many pods may use it at once)."""
        return None

    @classmethod
    @abstractmethod
    def from_uri(cls, uri: str) -> Warehouse:
        """Parse a URI of this backend's scheme; :class:`WarehouseError` saying what is expected."""

    @property
    @abstractmethod
    def uri(self) -> str:
        """The warehouse as a URI (``parse_warehouse(wh.uri) == wh``)."""

    # ------------------------------------------------------------------------------------- tables

    @abstractmethod
    def table_ref(self, table: str, schema: str | None = None) -> str:
        """The table as this warehouse's SQL names it (quoted, fully qualified)."""

    @abstractmethod
    def read_table(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """A whole table as a dataframe; :class:`WarehouseError` naming what to run when it is missing.

        The same table gives the same dataframe (dtypes and content hash) on every backend.
        """

    def iter_rows(
        self, table: str, schema: str | None = None, order_by: str | None = None, batch_rows: int | None = None
    ) -> Iterator[pd.DataFrame]:
        """The rows of a table as dataframes of the dtypes :meth:`read_table` gives, sorted by the column
        ``order_by`` when the table has it (rows with equal values in the table's order, missing values last),
        as pandas' stable sort orders them; concatenated, the batches are :meth:`read_table` sorted so.
        This default reads the whole table; a backend that can stream it in batches of about ``batch_rows``
        rows (None: :data:`BATCH_ROWS`) overrides it (the memory of a step then stays that of a batch). An
        empty table yields nothing."""
        df = self.read_table(table, schema)
        if order_by is not None and order_by in df.columns:
            df = df.sort_values(order_by, kind="stable").reset_index(drop=True)
        if len(df):
            yield df

    @abstractmethod
    def count_rows(self, table: str, schema: str | None = None) -> int:
        """The number of rows of a table; 0 when it (or its schema) does not exist yet."""

    def missing(self) -> str | None:
        """Why the warehouse itself cannot be read yet (e.g. no database file), else None."""
        return None

    # ------------------------------------------------------------------------------------ loading

    @property
    @abstractmethod
    def raw_dataset(self) -> str:
        """The dataset (dlt's ``dataset_name``) the raw tables are loaded into."""

    @abstractmethod
    def dlt_destination(self) -> Any:
        """dlt's destination for this warehouse (credentials and location included)."""

    @abstractmethod
    def dlt_write_disposition(self) -> str | dict:
        """dlt's ``write_disposition`` for an atomic merge on the primary key on this warehouse."""

    #: True: sync stages a batch in an in-process DuckDB and this warehouse merges it with :meth:`merge_batch`
    #: (no dlt); False: sync loads with dlt (:meth:`dlt_destination`, :meth:`dlt_write_disposition`).
    merges_batches: ClassVar[bool] = False

    def merge_batch(
        self, con: Any, batch: str, table: str, columns: dict[str, str], key: str = "id"
    ) -> tuple[int, int]:
        """Merge the temporary table ``batch`` of the DuckDB connection ``con`` into the raw table ``table`` on
        ``key`` (its rows replace those with the same key, the others are added), atomically: in one transaction
        that leaves the table as it was when anything fails. ``columns``: name -> SQL type of the raw table (created
        when missing, ``key`` NOT NULL). Returns the table's row count before and after.

        Only called when :attr:`merges_batches` is True.
        """
        raise WarehouseError(f"warehouse {self.uri!r}: sync loads it with dlt (merge_batch is not implemented)")

    # ----------------------------------------------------------------------------- transform (dbt)

    @abstractmethod
    def dbt_env(self) -> dict[str, str]:
        """The environment variables dbt_transforms/profiles.yml reads for :attr:`dbt_target`."""

    def dbt_workdir(self) -> Path | None:
        """The folder dbt runs in, for a profile that names its warehouse relative to it (None: anywhere).

        dbt keys its saved parse on the profile's values; a profile that holds no per-run path lets a new
        state folder start from an earlier parse (:func:`tagifai.transform.run_dbt`)."""
        return None

    def release(self) -> None:
        """Free what an in-process client (dbt's adapter) may keep open on the warehouse."""

    # -------------------------------------------------------------------- validation (GX on SQL)

    def table_columns(self, table: str, schema: str | None = None) -> list[str]:
        """The column names of a table; :class:`WarehouseError` when it does not exist."""
        return [str(c) for c in self.read_table(table, schema).columns]

    def gx_batch_definition(self, context: Any, table: str) -> Any:
        """The whole-table batch definition of ``table`` on a GX SQL datasource of this warehouse.

        Only called when :attr:`gx_pandas` is False.
        """
        raise WarehouseError(f"warehouse {self.uri!r}: Great Expectations validates its tables as pandas batches")

    def gx_adapt_expectation(self, expectation: Any) -> None:
        """Rewrite an expectation (in place) for this warehouse's SQL dialect, e.g. its type names."""

    # -------------------------------------------------------------------------- state (the sensor)

    def read_state(self, name: str) -> dict | None:
        """The JSON value last written under ``name`` in the state table, or None (no table or no row yet).

        Reading never creates anything.
        """
        raise WarehouseError(f"warehouse {self.uri!r}: this backend keeps no state (read_state is not implemented)")

    def write_state(self, name: str, value: dict) -> None:
        """Store ``value`` (JSON-serialisable) under ``name``, replacing what was there, in one atomic statement.

        Idempotent: writing the same value twice leaves one row holding it. Creates the table when needed.
        """
        raise WarehouseError(f"warehouse {self.uri!r}: this backend keeps no state (write_state is not implemented)")
