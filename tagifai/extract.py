"""Extract: a warehouse table into a Parquet file, with the metadata a Dataset artifact carries.

The rows written are the table composed by a :class:`~tagifai.compose.CompositionPolicy` (``full``, the
default: the whole table, as always; ``window``: the recent window plus a stratified replay sample of
older rows, :mod:`tagifai.compose`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tagifai.compose import KEY_COLUMN, CompositionPolicy, Tally, compose, content_hash
from tagifai.warehouse import parse_warehouse, read_table

__all__ = ["content_hash", "describe", "extract_table"]

#: Rows a batch of the streamed ``full`` extract; None: the warehouse's default (tests set smaller batches).
BATCH_ROWS: int | None = None


def describe(df: pd.DataFrame, time_column: str = "created_on") -> dict:
    """Row count, columns, content hash and time range of a dataframe."""
    meta: dict = {"rows": int(len(df)), "columns": list(map(str, df.columns)), "content_hash": content_hash(df)}
    if time_column in df.columns and len(df):
        times = pd.to_datetime(df[time_column])
        meta["created_on_min"] = times.min().isoformat()
        meta["created_on_max"] = times.max().isoformat()
    return meta


def extract_table(
    warehouse_uri: str,
    table: str,
    out_path: str | Path,
    policy: CompositionPolicy | None = None,
    seed: int = 42,
    expected_hash: str = "",
) -> dict:
    """Write ``table`` composed by ``policy`` (None: ``full``, the whole table) to ``out_path`` as Parquet
    (rows sorted by id) and return its metadata: ``table``, ``rows``, ``columns``, ``content_hash``,
    ``created_on_min``/``created_on_max`` (of the rows written) and ``composition``
    (:func:`tagifai.compose.compose`; ``seed`` draws the replay sample of ``window``).

    The file appears whole or not at all. An empty window is a ValueError naming the table.
    ``expected_hash``: the :func:`content_hash` the whole table had when the step that built it described
    it (its Dataset's metadata); a table that changed since (another run wrote it) is a ValueError, so the
    rows written are the ones the lineage names.
    """
    if policy is None or policy.policy == "full":
        meta = _extract_whole(warehouse_uri, table, Path(out_path), seed, expected_hash)
        if meta is not None:
            return meta
    whole = read_table(warehouse_uri, table)
    if expected_hash and (now := content_hash(whole)) != expected_hash:
        raise _changed(table, expected_hash, now)
    df, composition = compose(whole, policy, seed, table=table)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(out_path)  # never leave a half-written file under the artifact's name
    return {"table": table, **describe(df), "composition": composition}


def _changed(table: str, expected: str, now: str) -> ValueError:
    return ValueError(
        f"{table} changed since the step that built it described it (content hash {expected[:12]}... "
        f"then, {now[:12]}... now): another run wrote the warehouse meanwhile; run again"
    )


def _extract_whole(warehouse_uri: str, table: str, out_path: Path, seed: int, expected_hash: str) -> dict | None:
    """The ``full`` policy batch by batch (:meth:`~tagifai.warehouse.base.Warehouse.iter_rows`, sorted by id):
    each batch goes to the Parquet file and a :class:`~tagifai.compose.Tally`, so a warehouse that streams
    needs the memory of one batch, not of the table (issue 13: 10M rows). The file, the metadata and the
    composition are those of the frame path (``tests/unit/test_extract_stream.py``). None for an empty table
    (the frame path writes its columns)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tally, writer, schema = Tally(), None, None
    try:
        for batch in parse_warehouse(warehouse_uri).iter_rows(table, order_by=KEY_COLUMN, batch_rows=BATCH_ROWS):
            tally.add(batch)
            arrow = pa.Table.from_pandas(batch, preserve_index=False)
            if writer is None:
                schema = arrow.schema
                writer = pq.ParquetWriter(tmp, schema)
            writer.write_table(arrow.cast(schema))
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        return None
    writer.close()
    if expected_hash and (now := tally.content_hash()) != expected_hash:
        tmp.unlink(missing_ok=True)
        raise _changed(table, expected_hash, now)
    tmp.replace(out_path)  # never leave a half-written file under the artifact's name
    meta: dict = {"table": table, "rows": tally.rows, "columns": tally.columns, "content_hash": tally.content_hash()}
    if (span := tally.time_range()) is not None:
        meta["created_on_min"], meta["created_on_max"] = span[0].isoformat(), span[1].isoformat()
    return {**meta, "composition": tally.composition(seed)}
