"""DuckDB as the warehouse (``duckdb:///path/file.duckdb``, or a bare path): the embedded default.

Schemas: the raw tables that sync loads live in ``raw``, the dbt models in ``main`` (dbt's ``local``
target). Great Expectations validates a pandas dataframe of a table: GX 1.24's SQL datasource on
DuckDB fails every expectation with ``MetricResolutionError``.

duckdb and dlt are imported inside the methods.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from tagifai.warehouse.base import (
    BATCH_ROWS,
    CURATED_SCHEMA,
    RAW_SCHEMA,
    STATE_TABLE,
    Warehouse,
    WarehouseError,
    split_table,
)

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterator

    import pandas as pd

#: The name the file is attached under while a batch is merged into it.
_ALIAS = "tagifai_warehouse"


def _ident(name: str) -> str:
    """A column name as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def _literal(path: Path) -> str:
    """A path as the inside of a SQL string literal."""
    return str(path).replace("'", "''")


def _commit(con) -> None:
    """Commit the merge's transaction (one function: a test makes it fail to check that nothing changed)."""
    con.execute("COMMIT")


@dataclass(frozen=True)
class DuckDBWarehouse(Warehouse):
    """One DuckDB file."""

    path: Path

    scheme: ClassVar[str] = "duckdb"
    dbt_target: ClassVar[str] = "local"
    gx_pandas: ClassVar[bool] = True

    @classmethod
    def from_uri(cls, uri: str) -> DuckDBWarehouse:
        """``duckdb:///abs/path.duckdb``, ``duckdb://rel/path.duckdb`` or a bare path."""
        if "://" not in uri:
            return cls(Path(uri).expanduser().resolve())
        raw = uri[len("duckdb://") :]
        if not uri.startswith("duckdb://") or not raw or raw == "/":
            raise WarehouseError(f"warehouse {uri!r}: expected duckdb:///path/to/file.duckdb")
        # duckdb:///abs/path -> /abs/path ; duckdb://rel/path -> rel/path
        return cls(Path(raw).expanduser().resolve())

    @property
    def uri(self) -> str:
        """``duckdb:///<absolute path>``."""
        return f"duckdb:///{self.path}"

    def lease_path(self) -> Path | None:
        return self.path.with_name(self.path.name + ".lease")  # beside the file: one lease per warehouse file

    # ------------------------------------------------------------------------------------- tables

    def table_ref(self, table: str, schema: str | None = None) -> str:
        """``schema."table"`` (the file is the database)."""
        found, name = split_table(table, schema)
        return f'{found}."{name}"'

    def missing(self) -> str | None:
        """The file does not exist until sync has loaded a first table."""
        if not self.path.exists():
            return f"warehouse file {self.path} does not exist: run sync first"
        return None

    def read_table(self, table: str, schema: str | None = None) -> pd.DataFrame:
        """``SELECT *`` of the table, read-only."""
        import duckdb

        if (problem := self.missing()) is not None:
            raise WarehouseError(problem)
        found, name = split_table(table, schema)
        with duckdb.connect(str(self.path), read_only=True) as con:
            try:
                return con.sql(f"SELECT * FROM {found}.{name}").df()
            except duckdb.CatalogException as exc:
                raise WarehouseError(f"table {found}.{name} not found in {self.path}: {exc}") from exc

    def iter_rows(
        self, table: str, schema: str | None = None, order_by: str | None = None, batch_rows: int | None = None
    ) -> Iterator[pd.DataFrame]:
        """The table in batches (:meth:`Warehouse.iter_rows`), streamed from DuckDB: ``ORDER BY`` the column,
        missing values last, ties in row order (``rowid``, for a base table); each batch converted as
        :meth:`read_table` converts the whole (``fetch_df_chunk``), so the dtypes and values are the same."""
        import duckdb

        if (problem := self.missing()) is not None:
            raise WarehouseError(problem)
        found, name = split_table(table, schema)
        with duckdb.connect(str(self.path), read_only=True) as con:
            kind = con.execute(
                "SELECT table_type FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [found, name],
            ).fetchall()  # (all: DuckDB wants a result finished before the next statement)
            if not kind:
                raise WarehouseError(f"table {found}.{name} not found in {self.path}")
            described = con.execute(f"DESCRIBE SELECT * FROM {found}.{name}").fetchall()
        columns = [row[0] for row in described]
        ordered = order_by is not None and order_by in columns
        if ordered and kind[0][0] != "BASE TABLE":  # a view has no rowid: equal values would come in any order
            yield from super().iter_rows(table, schema, order_by, batch_rows)
            return
        with duckdb.connect(str(self.path), read_only=True) as con:
            # How DuckDB converts a column with NULLs depends on the rows converted together: integers and booleans
            # become pandas' nullable dtypes and strings pandas' string dtype when the rows hold a NULL and a value,
            # numpy's (object for strings) otherwise. Batches take the dtypes the whole table converts to: those
            # of a sample holding a NULL and a value of every column that has both.
            has_null = con.execute(
                f"SELECT {', '.join(f'bool_or({_ident(c)} IS NULL)' for c in columns)} FROM {found}.{name}"
            ).fetchall()[0]
            probes = [
                f"(SELECT * FROM {found}.{name} WHERE {_ident(c)} IS {test} LIMIT 1)"
                for c, null in zip(columns, has_null, strict=True)
                if null
                for test in ("NULL", "NOT NULL")
            ]
            dtypes = con.sql(" UNION ALL ".join(probes)).df().dtypes.to_dict() if probes else {}
            order = f" ORDER BY {_ident(order_by)} ASC NULLS LAST, rowid" if ordered else ""
            result = con.execute(f"SELECT * FROM {found}.{name}{order}")
            vectors = max(1, int(batch_rows or BATCH_ROWS) // 2048)  # DuckDB's vectors hold 2048 rows
            while (chunk := result.fetch_df_chunk(vectors)) is not None and len(chunk):
                cast = {c: d for c, d in dtypes.items() if chunk[c].dtype != d}
                yield chunk.astype(cast) if cast else chunk

    def count_rows(self, table: str, schema: str | None = None) -> int:
        """``count(*)`` of the table; 0 when the file or the table does not exist."""
        if self.missing() is not None:
            return 0
        import duckdb

        found, name = split_table(table, schema)
        with duckdb.connect(str(self.path), read_only=True) as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [found, name],
            ).fetchone()[0]
            if not exists:
                return 0
            return con.execute(f"SELECT count(*) FROM {self.table_ref(name, found)}").fetchone()[0]

    # -------------------------------------------------------------------------- state (the sensor)

    def read_state(self, name: str) -> dict | None:
        """The value of ``name`` in ``main.tagifai_watermark``; None when the file, table or row is missing."""
        if self.missing() is not None:
            return None
        import json

        import duckdb

        with duckdb.connect(str(self.path), read_only=True) as con:
            exists = con.execute(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [CURATED_SCHEMA, STATE_TABLE],
            ).fetchone()[0]
            if not exists:
                return None
            row = con.execute(f"SELECT value FROM {self.table_ref(STATE_TABLE)} WHERE name = ?", [name]).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except ValueError as exc:
            raise WarehouseError(f"state {name!r} in {self.path} ({self.table_ref(STATE_TABLE)}) is not JSON") from exc

    def write_state(self, name: str, value: dict) -> None:
        """Upsert ``name`` into ``main.tagifai_watermark`` in one transaction (the file is created if needed)."""
        import json

        import duckdb

        text = json.dumps(value, sort_keys=True, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        table = self.table_ref(STATE_TABLE)
        with duckdb.connect(str(self.path)) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {CURATED_SCHEMA}")
                con.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} "
                    "(name VARCHAR PRIMARY KEY, value VARCHAR NOT NULL, written_at TIMESTAMP NOT NULL)"
                )
                con.execute(
                    f"INSERT INTO {table} VALUES (?, ?, now()::TIMESTAMP) "
                    "ON CONFLICT (name) DO UPDATE SET value = excluded.value, written_at = excluded.written_at",
                    [name, text],
                )
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------------------------------ loading

    @property
    def raw_dataset(self) -> str:
        """The schema ``raw``."""
        return RAW_SCHEMA

    def dlt_destination(self):
        """dlt's DuckDB destination on this file (its folder is created)."""
        import dlt

        self.path.parent.mkdir(parents=True, exist_ok=True)
        return dlt.destinations.duckdb(str(self.path))

    def dlt_write_disposition(self) -> str:
        """dlt's default merge (delete-insert), which dlt runs in one transaction on DuckDB."""
        return "merge"

    #: sync stages a batch in an in-process DuckDB and merges it here in one transaction (tagifai.sync says why).
    merges_batches: ClassVar[bool] = True

    def merge_batch(
        self, con, batch: str, table: str, columns: dict[str, str], key: str = "id", retries: int = 5
    ) -> tuple[int, int]:
        """Attach the file to ``con`` and merge ``temp.<batch>`` into ``raw.<table>`` in one transaction.

        ``DELETE`` the rows whose key is in the batch, then ``INSERT`` the batch (its rows in their order): the
        delete-insert of dlt's DuckDB merge, and like it atomic: any failure rolls the transaction back, so the
        table (created here with ``columns`` when missing) is as it was. The file is created when missing and
        attached only for the transaction (DuckDB lets one process write a file): a writer holding it is waited
        for, ``retries`` times with growing pauses (0.5 s, 1 s, 2 s, ...).
        """
        import duckdb

        self.path.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(retries + 1):
            try:
                con.execute(f"ATTACH '{_literal(self.path)}' AS {_ALIAS}")
                break
            except duckdb.Error as exc:
                text = str(exc).lower()
                if attempt < retries and "lock" in text and ("conflicting" in text or "could not set" in text):
                    time.sleep(0.5 * 2**attempt)
                    continue
                raise
        target = f'{_ALIAS}.{RAW_SCHEMA}."{table}"'
        names = ", ".join(f'"{c}"' for c in columns)
        ddl = ", ".join(f'"{c}" {kind}{" NOT NULL" if c == key else ""}' for c, kind in columns.items())
        try:
            con.execute("BEGIN TRANSACTION")
            try:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ALIAS}.{RAW_SCHEMA}")
                con.execute(f"CREATE TABLE IF NOT EXISTS {target} ({ddl})")
                before = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
                con.execute(f'DELETE FROM {target} WHERE "{key}" IN (SELECT "{key}" FROM temp."{batch}")')
                con.execute(f'INSERT INTO {target} ({names}) SELECT {names} FROM temp."{batch}"')
                after = con.execute(f"SELECT count(*) FROM {target}").fetchone()[0]
                _commit(con)
            except BaseException:
                try:
                    con.execute("ROLLBACK")
                except duckdb.Error:  # a fatal error already ended the transaction: nothing was committed
                    pass
                raise
        finally:
            with contextlib.suppress(duckdb.Error):  # closing the connection detaches it too
                con.execute(f"DETACH {_ALIAS}")
        return int(before), int(after)

    # ----------------------------------------------------------------------------- transform (dbt)

    def dbt_env(self) -> dict[str, str]:
        """``TAGIFAI_DUCKDB_PATH``, the file of the ``local`` profile: its name, in :meth:`dbt_workdir`.

        Not the whole path: dbt keys its saved parse on the profile's values, and one path a state folder
        would make every new state folder parse the project again (about 4 s)."""
        return {"TAGIFAI_DUCKDB_PATH": self.path.name}

    def dbt_workdir(self) -> Path:
        """The file's folder: dbt runs there, so DuckDB opens ``TAGIFAI_DUCKDB_PATH`` in it."""
        return self.path.parent

    def release(self) -> None:
        """Close the DuckDB database that dbt-duckdb may keep open in this process after a run.

        The profile sets ``keep_open: false``; this also covers a profile that does not, so the file is
        never left locked for the next reader (DuckDB refuses a second connection with another
        configuration in the same process).
        """
        try:
            from dbt.adapters.duckdb.connections import DuckDBConnectionManager
        except ImportError:  # pragma: no cover - dbt-duckdb not installed
            return
        with DuckDBConnectionManager._LOCK:
            env = DuckDBConnectionManager._ENV
            DuckDBConnectionManager._ENV = None
        if env is not None:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
