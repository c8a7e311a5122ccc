"""Extract: a warehouse table into a Parquet file, with the metadata a Dataset artifact carries.

The rows written are the table composed by a :class:`~tagifai.compose.CompositionPolicy` (``full``, the
default: the whole table, as always; ``window``: the recent window plus a stratified replay sample of
older rows, :mod:`tagifai.compose`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tagifai.compose import CompositionPolicy, compose, content_hash
from tagifai.warehouse import read_table

__all__ = ["content_hash", "describe", "extract_table"]


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
    whole = read_table(warehouse_uri, table)
    if expected_hash and (now := content_hash(whole)) != expected_hash:
        raise ValueError(
            f"{table} changed since the step that built it described it (content hash {expected_hash[:12]}... "
            f"then, {now[:12]}... now): another run wrote the warehouse meanwhile; run again"
        )
    df, composition = compose(whole, policy, seed, table=table)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(out_path)  # never leave a half-written file under the artifact's name
    return {"table": table, **describe(df), "composition": composition}
