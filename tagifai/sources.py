"""Sources: read a raw table (CSV, JSON or Parquet) from a local path, file://, http(s):// or gs://.

Every source is conformed to its schema before anything is loaded: a missing column, an id that is
not an integer, a duplicated id or an unparseable timestamp is a :class:`SourceError` that names the
source, the column and the offending rows, so nothing half-checked reaches the warehouse.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

import pandas as pd

#: The raw tables and their columns: name -> (column -> kind). ``id`` is the primary key of each.
SCHEMAS: dict[str, dict[str, str]] = {
    "projects": {"id": "int", "created_on": "timestamp", "title": "string", "description": "string"},
    "tags": {"id": "int", "tag": "string"},
}
PRIMARY_KEY = "id"
FORMATS = ("csv", "json", "parquet")
_MAX_SAMPLES = 5
#: Field separators a CSV header is sniffed for (a spreadsheet's export may use ";" or a tab).
CSV_SEPARATORS = (",", ";", "\t", "|")


class SourceError(ValueError):
    """A source could not be read or does not match its table's schema."""


def detect_format(uri: str, fmt: str | None = None) -> str:
    """The format of a source, from ``fmt`` or the file extension (.csv, .json/.jsonl/.ndjson, .parquet)."""
    if fmt:
        fmt = fmt.lower()
        if fmt not in FORMATS:
            raise SourceError(f"{uri}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    path = urlparse(uri).path if "://" in uri else uri
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] in (".gz", ".bz2", ".zst", ".xz"):
        suffixes = suffixes[:-1]
    ext = suffixes[-1] if suffixes else ""
    mapping = {
        ".csv": "csv",
        ".json": "json",
        ".jsonl": "json",
        ".ndjson": "json",
        ".parquet": "parquet",
        ".pq": "parquet",
    }
    if ext not in mapping:
        raise SourceError(
            f"{uri}: cannot tell the format from {ext or 'no extension'!r}; pass one of {', '.join(FORMATS)}"
        )
    return mapping[ext]


def read_raw(uri: str, fmt: str | None = None) -> pd.DataFrame:
    """Read a source as it is (no conformance). Errors name the source."""
    fmt = detect_format(uri, fmt)
    scheme = urlparse(uri).scheme if "://" in uri else ""
    if scheme == "file":
        uri = urlparse(uri).path
        scheme = ""
    if scheme == "" and not Path(uri).exists():
        raise SourceError(f"{uri}: no such file")
    if scheme == "gs":
        try:
            import gcsfs  # noqa: F401  (pandas reads gs:// through fsspec + gcsfs)
        except ImportError as exc:
            raise SourceError(
                f"{uri}: reading gs:// needs the gcsfs package (pip install gcsfs) and credentials"
            ) from exc
    try:
        if fmt == "csv":
            sep = _sniff_separator(uri) if scheme == "" else ","
            return pd.read_csv(uri, dtype=str, keep_default_na=False, na_values=[""], sep=sep)
        if fmt == "json":
            lines = urlparse(uri).path.lower().rstrip(".gz").endswith((".jsonl", ".ndjson"))
            return pd.read_json(uri, lines=lines, dtype=False)
        return pd.read_parquet(uri)
    except SourceError:
        raise
    except Exception as exc:  # pandas/pyarrow/urllib raise many kinds; name the source once
        raise SourceError(f"{uri}: could not read as {fmt}: {type(exc).__name__}: {exc}") from exc


def fingerprint(uri: str, chunk: int = 1 << 20) -> str:
    """``sha256:<hex>`` of a source's bytes, as stored (a local path, file://, http(s):// or gs://).

    What the pipelines key their caches on: the same bytes give the same fingerprint, so a run on an
    unchanged source reuses the steps after it (docs/deploy.md, "Caching"). It reads the bytes only (no
    parsing), so a malformed source still gets one; reading it is :func:`read_raw`'s job.
    """
    import hashlib

    scheme = urlparse(uri).scheme if "://" in uri else ""
    path = urlparse(uri).path if scheme == "file" else uri
    digest = hashlib.sha256()
    try:
        if scheme in ("", "file"):
            if not Path(path).is_file():
                raise SourceError(f"{uri}: no such file")
            opened = open(path, "rb")  # noqa: SIM115  (closed by the with below)
        elif scheme in ("http", "https"):  # the standard library, as pandas reads them (fsspec's needs aiohttp)
            import urllib.request

            opened = urllib.request.urlopen(uri, timeout=60)  # noqa: S310 - the user's source URL
        else:
            import fsspec  # gs:// (gcsfs) and other fsspec schemes, with the credentials of the environment

            opened = fsspec.open(uri, "rb").open()
        with opened as fh:
            while block := fh.read(chunk):
                digest.update(block)
    except SourceError:
        raise
    except Exception as exc:  # urllib/aiohttp/gcsfs raise many kinds; name the source once
        raise SourceError(f"{uri}: could not read its bytes: {type(exc).__name__}: {exc}") from exc
    return f"sha256:{digest.hexdigest()}"


def _sniff_separator(path: str) -> str:
    """The separator of a local CSV: the one of :data:`CSV_SEPARATORS` that its header line holds most
    often (a comma when none is there, or the file is compressed)."""
    if Path(path).suffix.lower() in (".gz", ".bz2", ".zst", ".xz"):
        return ","
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as f:
        header = f.readline()
    counts = {sep: header.count(sep) for sep in CSV_SEPARATORS}
    best = max(CSV_SEPARATORS, key=lambda sep: counts[sep])  # ties (and no separator at all) keep ","
    return best if counts[best] > counts[","] else ","


def read_input(uri: str, required: tuple[str, ...] = ("title", "description"), fmt: str | None = None) -> pd.DataFrame:
    """A user's file of projects to predict or evaluate (CSV with any of :data:`CSV_SEPARATORS`, JSON,
    Parquet; local, file://, http(s):// or gs://), as strings with empty cells as "".

    Column names are matched without case and surrounding spaces (``Title`` is ``title``); other columns
    are kept. A :class:`SourceError` names the file when a column of ``required`` is missing, when there
    is no row, or, when ``tag`` is required, the data rows (1-based, header excluded) whose tag is empty.
    A file whose extension names no format is read as CSV.
    """
    if fmt is None:
        try:
            fmt = detect_format(uri)
        except SourceError:
            fmt = "csv"
    df = read_raw(uri, fmt)
    renamed = {c: str(c).strip().lower() for c in df.columns if str(c).strip().lower() in required}
    df = df.rename(columns=renamed)
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SourceError(
            f"{uri}: missing column(s) {', '.join(missing)}; expected {', '.join(required)}, "
            f"found {', '.join(map(str, df.columns)) or 'none'}"
        )
    if df.empty:
        raise SourceError(f"{uri}: no rows")
    df = df.reset_index(drop=True)
    for col in required:
        df[col] = df[col].fillna("").astype(str)
    if "tag" in required:
        empty = df["tag"].str.strip() == ""
        if empty.any():
            raise SourceError(
                f"{uri}: column 'tag' is empty in data row(s) {_rows(empty)}; every row to evaluate needs its tag"
            )
    return df


def _rows(mask: pd.Series) -> str:
    """Data row numbers (1-based, header excluded) of a boolean mask, a few of them."""
    idx = [int(i) + 1 for i in mask[mask].index[:_MAX_SAMPLES]]
    more = int(mask.sum()) - len(idx)
    return ", ".join(map(str, idx)) + (f" (and {more} more)" if more > 0 else "")


def conform(df: pd.DataFrame, table: str, uri: str = "<dataframe>") -> pd.DataFrame:
    """Check and type a raw dataframe against ``SCHEMAS[table]``; returns only the schema's columns."""
    if table not in SCHEMAS:
        raise SourceError(f"{uri}: unknown table {table!r}; expected one of {', '.join(SCHEMAS)}")
    schema = SCHEMAS[table]
    df = df.reset_index(drop=True)
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise SourceError(
            f"{uri}: missing column(s) {', '.join(missing)} for table {table!r}; "
            f"expected {', '.join(schema)}, found {', '.join(df.columns) or 'none'}"
        )
    if df.empty:
        raise SourceError(f"{uri}: no rows; table {table!r} needs at least one")
    out = pd.DataFrame(index=df.index)
    for col, kind in schema.items():
        values = df[col]
        if kind == "int":
            nulls = values.isna()
            if nulls.any():
                raise SourceError(f"{uri}: column {col!r} is empty in data row(s) {_rows(nulls)}; expected an integer")
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() | (numbers != numbers.round())
            if bad.any():
                samples = ", ".join(repr(v) for v in values[bad].head(_MAX_SAMPLES))
                raise SourceError(f"{uri}: column {col!r} is not an integer in data row(s) {_rows(bad)}: {samples}")
            out[col] = numbers.astype("int64")
        elif kind == "timestamp":
            parsed = pd.to_datetime(values, errors="coerce", utc=True)
            bad = parsed.isna() & values.notna()
            if bad.any():
                samples = ", ".join(repr(v) for v in values[bad].head(_MAX_SAMPLES))
                raise SourceError(f"{uri}: column {col!r} is not a timestamp in data row(s) {_rows(bad)}: {samples}")
            out[col] = parsed.dt.tz_localize(None)
        else:
            out[col] = values.astype("string")
    dup = out[PRIMARY_KEY].duplicated(keep=False)
    if dup.any():
        ids = ", ".join(map(str, out.loc[dup, PRIMARY_KEY].unique()[:_MAX_SAMPLES]))
        raise SourceError(f"{uri}: primary key {PRIMARY_KEY!r} is duplicated in data row(s) {_rows(dup)} (ids {ids})")
    return out


def read_source(uri: str, table: str, fmt: str | None = None) -> pd.DataFrame:
    """Read and conform one source for ``table``."""
    return conform(read_raw(uri, fmt), table, uri)


def load_labeled_projects(data_dir: str | Path) -> pd.DataFrame:
    """``projects.csv`` joined one-to-one with ``tags.csv`` on id from a local folder (the layout of
    data/madewithml), ``created_on`` parsed, ordered by id. For benchmarks and tests that
    start from the files rather than the warehouse; pipelines go through sync and the dbt model."""
    data_dir = Path(data_dir)
    projects = pd.read_csv(data_dir / "projects.csv")
    tags = pd.read_csv(data_dir / "tags.csv")
    df = projects.merge(tags, on="id", how="inner", validate="one_to_one")
    df["created_on"] = pd.to_datetime(df["created_on"])
    return df.sort_values("id").reset_index(drop=True)
