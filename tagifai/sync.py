"""Sync (extract + load): one source into one raw warehouse table, merged on ``id``.

Two loaders, one contract: every row of the source is checked and typed first (:mod:`tagifai.sources`; a bad
source is a SourceError naming file, column and rows, and the warehouse is not touched), then merged on the
primary key (re-running never duplicates rows), atomically (a failed load leaves the previous table as it was).

- **DuckDB** (the embedded default): the source is read by DuckDB itself into an in-process, in-memory DuckDB
  (:func:`tagifai.sources.stage_source`: its parallel CSV/Parquet readers, the checks in SQL), written from there
  as the step's Parquet snapshot, and merged into ``raw.<table>`` by the warehouse in one transaction
  (:meth:`tagifai.warehouse.Warehouse.merge_batch`: delete the batch's ids, insert the batch, commit).
- **BigQuery** (and any warehouse whose ``merges_batches`` is False): pandas reads and conforms the source and dlt
  loads it: a maintained extract-and-load library that loads into a staging dataset and applies the merge in one
  MERGE statement, which is exactly the glue this project should not hand-write for a remote warehouse.

Why not dlt on DuckDB too (issue 13): on 1M synthetic projects dlt's load alone took 11.4 s of the step's 16 s
(it writes the batch to Parquet, copies it into ``raw_staging``, then deletes and inserts with a ``ROW_NUMBER()``
de-duplication of the batch), after pandas read every column as text (2.2 s) and conformed it (1.5 s), the batch
held in pandas (0.9 GB at 1M rows). Its fastest documented path, an Arrow table with ``deduplicated: true``, still
took 10.1 s to load: two copies into the file (staging, then the table), each paying DuckDB's string compression.
Reading the file with DuckDB, checking it in SQL and merging it in one transaction copies it into the file once:
the step went from 17.5 to 7.2 s of CPU at 1M rows (3.2 GB peak at 10M). The delete-insert is dlt's own DuckDB
merge strategy, in one transaction as dlt runs it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tagifai.sources import (
    PRIMARY_KEY,
    SCHEMAS,
    SQL_TYPES,
    SourceError,
    detect_format,
    fingerprint,
    local_copy,
    read_source,
    stage_source,
)
from tagifai.warehouse import RAW_SCHEMA, parse_warehouse

_DLT_TYPES = {"int": "bigint", "timestamp": "timestamp", "string": "text"}


class SyncError(RuntimeError):
    """The load into the warehouse failed (the previous table is left as it was)."""


def _root_cause(exc: BaseException) -> str:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {exc}"


@dataclass
class SyncResult:
    table: str
    source: str
    rows_read: int
    rows_before: int
    rows_after: int
    seconds: float
    fingerprint: str = ""  # sha256 of the source's bytes, when the caller gave the one it expects

    def to_dict(self) -> dict:
        return asdict(self)


def _dlt_column(name: str, kind: str) -> dict:
    """dlt's column hints of one column of a raw table (timestamps are naive UTC)."""
    hints = {"data_type": _DLT_TYPES[kind], "nullable": name != PRIMARY_KEY}
    if kind == "timestamp":
        hints["timezone"] = False
    return hints


def _is_lock_error(exc: BaseException) -> bool:
    text = f"{exc!r} {getattr(exc, '__cause__', '')!r}"
    return "lock" in text.lower() and ("conflicting" in text.lower() or "could not set" in text.lower())


def load_dataframe(df, table: str, warehouse_uri: str, state_dir: Path, retries: int = 5) -> None:
    """Merge ``df`` into ``raw.<table>`` on ``id`` with dlt (idempotent, atomic per table)."""
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "ERROR")
    import dlt

    logging.getLogger("dlt").setLevel(logging.ERROR)  # dlt warns that arrow hints differ from ours: ours win

    columns = {name: _dlt_column(name, kind) for name, kind in SCHEMAS[table].items()}
    wh = parse_warehouse(warehouse_uri)
    pipeline = dlt.pipeline(
        pipeline_name=f"tagifai_{table}",
        destination=wh.dlt_destination(),
        # DuckDB: schema raw. BigQuery: dataset <dataset>_raw, the default of dbt's raw source there.
        dataset_name=wh.raw_dataset,
        pipelines_dir=str(state_dir),
    )
    # Merge on id, atomically: the warehouse says how (DuckDB: dlt's delete-insert in one transaction;
    # BigQuery: one MERGE statement). Same result for unique ids (conform guarantees them).
    disposition = wh.dlt_write_disposition()
    # A package left by an earlier failed load is dropped, not replayed: only this batch is loaded.
    if pipeline.has_pending_data:
        pipeline.abort_packages()
    for attempt in range(retries + 1):
        try:
            pipeline.run(df, table_name=table, write_disposition=disposition, primary_key=PRIMARY_KEY, columns=columns)
            return
        except Exception as exc:
            if pipeline.has_pending_data:
                pipeline.abort_packages()
            if attempt < retries and _is_lock_error(exc):  # a concurrent writer holds DuckDB's file lock
                time.sleep(0.5 * 2**attempt)
                continue
            raise SyncError(
                f"loading {table} into {warehouse_uri} failed; the table is unchanged: {_root_cause(exc)}"
            ) from exc


def sync(
    source_uri: str,
    table: str,
    warehouse_uri: str,
    state_dir: Path,
    fmt: str | None = None,
    snapshot: str | Path | None = None,
    expected_fingerprint: str = "",
) -> SyncResult:
    """Read, conform and load one source. Raises SourceError (bad input) before touching the warehouse.

    ``snapshot``: where to write the conformed batch as Parquet (the step's Dataset artifact).
    ``expected_fingerprint``: the :func:`tagifai.sources.fingerprint` the source had when the run keyed its
    cache on it; a source that changed since is a SourceError (a later run on those bytes would otherwise
    reuse this load under the old key).
    """
    start = time.perf_counter()
    wh = parse_warehouse(warehouse_uri)
    if wh.merges_batches:
        rows, before, after = _sync_staged(source_uri, table, warehouse_uri, fmt, snapshot, expected_fingerprint)
    else:
        _check_fingerprint(source_uri, expected_fingerprint, fingerprint(source_uri) if expected_fingerprint else "")
        df = read_source(source_uri, table, fmt)
        if snapshot:
            Path(snapshot).parent.mkdir(parents=True, exist_ok=True)
            df.to_parquet(snapshot, index=False)
        before = wh.count_rows(table, RAW_SCHEMA)
        load_dataframe(df, table, warehouse_uri, Path(state_dir) / "dlt")
        rows, after = len(df), wh.count_rows(table, RAW_SCHEMA)
    # one progress line that `tagifai run` shows live (the line contract: tagifai_cli/progress.py)
    print(f"tagifai-progress sync rows {rows}", flush=True)
    seconds = round(time.perf_counter() - start, 3)
    return SyncResult(table, source_uri, rows, before, after, seconds, expected_fingerprint)


def _check_fingerprint(source_uri: str, expected: str, now: str) -> None:
    if expected and now != expected:
        raise SourceError(
            f"{source_uri}: changed since this run took its fingerprint ({expected[:19]}... then, "
            f"{now[:19]}... now); nothing was loaded: run again"
        )


def _sync_staged(
    source_uri: str,
    table: str,
    warehouse_uri: str,
    fmt: str | None,
    snapshot: str | Path | None,
    expected_fingerprint: str,
) -> tuple[int, int, int]:
    """Stage the source in an in-memory DuckDB, write the snapshot, merge it into the warehouse: (rows, before,
    after). The warehouse file is opened only for the merge, after every check passed."""
    import tempfile

    import duckdb

    fmt = detect_format(source_uri, fmt)
    if table not in SCHEMAS:
        raise SourceError(f"{source_uri}: unknown table {table!r}; expected one of {', '.join(SCHEMAS)}")
    with (
        local_copy(source_uri, fingerprint_local=bool(expected_fingerprint)) as (path, digest),
        tempfile.TemporaryDirectory(prefix="tagifai-sync-") as spill,
        duckdb.connect(":memory:", config={"temp_directory": spill}) as con,
    ):
        _check_fingerprint(source_uri, expected_fingerprint, digest)
        rows = stage_source(con, path, table, fmt, name="batch", label=source_uri)
        if snapshot:
            _write_snapshot(con, "batch", list(SCHEMAS[table]), Path(snapshot))
        columns = {col: SQL_TYPES[kind] for col, kind in SCHEMAS[table].items()}
        try:
            before, after = parse_warehouse(warehouse_uri).merge_batch(con, "batch", table, columns, key=PRIMARY_KEY)
        except Exception as exc:
            raise SyncError(
                f"loading {table} into {warehouse_uri} failed; the table is unchanged: {_root_cause(exc)}"
            ) from exc
    return rows, before, after


def _write_snapshot(con, batch: str, columns: list[str], path: Path) -> None:
    """The staged batch as Parquet at ``path`` (written beside it, then renamed: whole or not at all)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    names = ", ".join(f'"{c}"' for c in columns)
    target = str(tmp).replace("'", "''")
    # zstd: smaller than DuckDB's default snappy and, on these texts, cheaper to write (1M synthetic projects:
    # 14 MiB in 0.6 s of CPU, against 72 MiB in 0.9 s); pandas and pyarrow read it.
    con.execute(f"COPY (SELECT {names} FROM temp.\"{batch}\") TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
    tmp.replace(path)
