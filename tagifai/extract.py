"""Extract: a warehouse table into a Parquet file, with the metadata a Dataset artifact carries."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from tagifai.warehouse import read_table


def content_hash(df: pd.DataFrame, key: str = "id") -> str:
    """A sha256 of the rows' values, independent of row order and of the file format."""
    if key in df.columns:
        df = df.sort_values(key, kind="stable")
    hashed = pd.util.hash_pandas_object(df.reset_index(drop=True), index=False).to_numpy()
    digest = hashlib.sha256(hashed.tobytes())
    digest.update(",".join(map(str, df.columns)).encode())
    return digest.hexdigest()


def describe(df: pd.DataFrame, time_column: str = "created_on") -> dict:
    """Row count, columns, content hash and time range of a dataframe."""
    meta: dict = {"rows": int(len(df)), "columns": list(map(str, df.columns)), "content_hash": content_hash(df)}
    if time_column in df.columns and len(df):
        times = pd.to_datetime(df[time_column])
        meta["created_on_min"] = times.min().isoformat()
        meta["created_on_max"] = times.max().isoformat()
    return meta


def extract_table(warehouse_uri: str, table: str, out_path: str | Path) -> dict:
    """Write ``table`` to ``out_path`` as Parquet (rows sorted by id) and return its metadata."""
    df = read_table(warehouse_uri, table)
    if "id" in df.columns:
        df = df.sort_values("id", kind="stable").reset_index(drop=True)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(out_path)  # never leave a half-written file under the artifact's name
    return {"table": table, **describe(df)}
