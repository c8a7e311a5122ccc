"""Sync (extract + load): one source into one raw warehouse table, with dlt.

Why dlt: it is a maintained extract-and-load library with DuckDB and BigQuery destinations that
share one interface, merges on a primary key (re-running never duplicates rows), loads into a staging
dataset first and applies the merge in one step (a transaction on DuckDB, one MERGE statement on
BigQuery), so a failed load leaves the previous table as it was. Hand-writing that for two warehouses
is exactly the glue this project exists to remove.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from tagifai.sources import PRIMARY_KEY, SCHEMAS, SourceError, fingerprint, read_source
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
    if expected_fingerprint and (now := fingerprint(source_uri)) != expected_fingerprint:
        raise SourceError(
            f"{source_uri}: changed since this run took its fingerprint ({expected_fingerprint[:19]}... then, "
            f"{now[:19]}... now); nothing was loaded: run again"
        )
    df = read_source(source_uri, table, fmt)
    if snapshot:
        Path(snapshot).parent.mkdir(parents=True, exist_ok=True)
        df.to_parquet(snapshot, index=False)
    wh = parse_warehouse(warehouse_uri)
    before = wh.count_rows(table, RAW_SCHEMA)
    load_dataframe(df, table, warehouse_uri, Path(state_dir) / "dlt")
    # one progress line that `tagifai run` shows live (the line contract: tagifai_cli/progress.py)
    print(f"tagifai-progress sync rows {len(df)}", flush=True)
    after = wh.count_rows(table, RAW_SCHEMA)
    seconds = round(time.perf_counter() - start, 3)
    return SyncResult(table, source_uri, len(df), before, after, seconds, expected_fingerprint)
