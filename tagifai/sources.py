"""Sources: read a raw table (CSV, JSON or Parquet) from a local path, file://, http(s):// or gs://.

Every source is conformed to its schema before anything is loaded: a missing column, an id that is
not an integer, a duplicated id or an unparseable timestamp is a :class:`SourceError` that names the
source, the column and the offending rows, so nothing half-checked reaches the warehouse.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

if TYPE_CHECKING:
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


def read_raw(uri: str, fmt: str | None = None, *, name: str | None = None) -> pd.DataFrame:
    """Read a source as it is (no conformance). Errors name the source (``name``, default ``uri``: the source a
    local copy was made of)."""
    import pandas as pd

    label = name or uri
    fmt = detect_format(uri, fmt)
    scheme = urlparse(uri).scheme if "://" in uri else ""
    if scheme == "file":
        uri = urlparse(uri).path
        scheme = ""
    if scheme == "" and not Path(uri).exists():
        raise SourceError(f"{label}: no such file")
    if scheme == "gs":
        try:
            import gcsfs  # noqa: F401  (pandas reads gs:// through fsspec + gcsfs)
        except ImportError as exc:
            raise SourceError(
                f"{label}: reading gs:// needs the gcsfs package (pip install gcsfs) and credentials"
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
        raise SourceError(f"{label}: could not read as {fmt}: {type(exc).__name__}: {exc}") from exc


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
    return _rows_text([int(i) + 1 for i in mask[mask].index[:_MAX_SAMPLES]], int(mask.sum()))


def _rows_text(first: list[int], total: int) -> str:
    """``1, 3 (and 7 more)``: the first data rows of ``total``."""
    more = total - len(first)
    return ", ".join(map(str, first)) + (f" (and {more} more)" if more > 0 else "")


def conform(df: pd.DataFrame, table: str, uri: str = "<dataframe>") -> pd.DataFrame:
    """Check and type a raw dataframe against ``SCHEMAS[table]``; returns only the schema's columns."""
    import pandas as pd

    if table not in SCHEMAS:
        raise SourceError(f"{uri}: unknown table {table!r}; expected one of {', '.join(SCHEMAS)}")
    schema = SCHEMAS[table]
    df = df.reset_index(drop=True)
    df.columns = [str(c).strip() for c in df.columns]
    _check_columns(table, list(df.columns), uri)
    if df.empty:
        raise SourceError(f"{uri}: no rows; table {table!r} needs at least one")
    out = pd.DataFrame(index=df.index)
    for col, kind in schema.items():
        out[col] = conform_column(df[col], col, kind, uri)
    dup = out[PRIMARY_KEY].duplicated(keep=False)
    if dup.any():
        ids = ", ".join(map(str, out.loc[dup, PRIMARY_KEY].unique()[:_MAX_SAMPLES]))
        raise SourceError(f"{uri}: primary key {PRIMARY_KEY!r} is duplicated in data row(s) {_rows(dup)} (ids {ids})")
    return out


def _check_columns(table: str, found: list[str], uri: str) -> None:
    """A :class:`SourceError` naming the columns of ``SCHEMAS[table]`` missing from ``found`` (stripped names)."""
    missing = [c for c in SCHEMAS[table] if c not in found]
    if missing:
        raise SourceError(
            f"{uri}: missing column(s) {', '.join(missing)} for table {table!r}; "
            f"expected {', '.join(SCHEMAS[table])}, found {', '.join(found) or 'none'}"
        )


def conform_column(values: pd.Series, col: str, kind: str, uri: str = "<dataframe>") -> pd.Series:
    """One column of a raw table typed as its ``kind`` (int, timestamp, string), or a :class:`SourceError` naming
    the data rows (1-based: ``values`` indexed 0..n-1 in the source's order) and sample values that are not."""
    import pandas as pd

    if kind == "int":
        nulls = values.isna()
        if nulls.any():
            raise SourceError(f"{uri}: column {col!r} is empty in data row(s) {_rows(nulls)}; expected an integer")
        numbers = pd.to_numeric(values, errors="coerce")
        bad = numbers.isna() | (numbers != numbers.round())
        if bad.any():
            samples = ", ".join(repr(v) for v in values[bad].head(_MAX_SAMPLES))
            raise SourceError(f"{uri}: column {col!r} is not an integer in data row(s) {_rows(bad)}: {samples}")
        return numbers.astype("int64")
    if kind == "timestamp":
        parsed = pd.to_datetime(values, errors="coerce", utc=True)
        bad = parsed.isna() & values.notna()
        if bad.any():
            samples = ", ".join(repr(v) for v in values[bad].head(_MAX_SAMPLES))
            raise SourceError(f"{uri}: column {col!r} is not a timestamp in data row(s) {_rows(bad)}: {samples}")
        return parsed.dt.tz_localize(None)
    return values.astype("string")


def read_source(uri: str, table: str, fmt: str | None = None) -> pd.DataFrame:
    """Read and conform one source for ``table``."""
    return conform(read_raw(uri, fmt), table, uri)


# ------------------------------------------------------------------ reading into DuckDB (the sync of large batches)

#: DuckDB's type of each kind of column: the types of the raw tables on DuckDB.
SQL_TYPES = {"int": "BIGINT", "timestamp": "TIMESTAMP", "string": "VARCHAR"}
#: The text form of timestamps that DuckDB converts itself (the Made With ML files', the synthetic ones'): a value
#: in any other form is converted as :func:`conform` converts it.
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_SQL_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_SQL_TIMESTAMPS = ("TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATE")
_SQL_TIMESTAMPS_TZ = ("TIMESTAMP WITH TIME ZONE",)
#: Compressions of a CSV that DuckDB reads itself (others are read by pandas).
_DUCKDB_CSV_COMPRESSIONS = ("", ".gz")


@contextmanager
def local_copy(uri: str, fingerprint_local: bool = True, chunk: int = 1 << 20) -> Iterator[tuple[str, str]]:
    """``(path, fingerprint)``: a local file holding the source's bytes and their :func:`fingerprint`.

    A local path (or file://) is itself, hashed where it is (its fingerprint is "" with ``fingerprint_local``
    False). A remote source (http(s)://, gs://) is read once, into a temporary file named like it (its extensions
    kept) that is deleted afterwards, and hashed while it is copied: what is loaded is exactly the bytes that were
    fingerprinted. :class:`SourceError` names the source when it cannot be read.
    """
    import hashlib
    import tempfile

    scheme = urlparse(uri).scheme if "://" in uri else ""
    if scheme in ("", "file"):
        path = urlparse(uri).path if scheme == "file" else uri
        if not Path(path).is_file():
            raise SourceError(f"{uri}: no such file")
        yield path, fingerprint(path) if fingerprint_local else ""
        return
    name = Path(urlparse(uri).path).name or "source"
    with tempfile.TemporaryDirectory(prefix="tagifai-source-") as folder:
        path = str(Path(folder) / name)
        digest = hashlib.sha256()
        try:
            if scheme in ("http", "https"):  # the standard library, as fingerprint() reads them
                import urllib.request

                opened = urllib.request.urlopen(uri, timeout=60)  # noqa: S310 - the user's source URL
            else:
                if scheme == "gs":
                    try:
                        import gcsfs  # noqa: F401  (fsspec reads gs:// through gcsfs)
                    except ImportError as exc:
                        raise SourceError(
                            f"{uri}: reading gs:// needs the gcsfs package (pip install gcsfs) and credentials"
                        ) from exc
                import fsspec

                opened = fsspec.open(uri, "rb").open()
            with opened as fh, open(path, "wb") as out:
                while block := fh.read(chunk):
                    digest.update(block)
                    out.write(block)
        except SourceError:
            raise
        except Exception as exc:  # urllib/gcsfs raise many kinds; name the source once
            raise SourceError(f"{uri}: could not read its bytes: {type(exc).__name__}: {exc}") from exc
        yield path, f"sha256:{digest.hexdigest()}"


def stage_source(con, path: str, table: str, fmt: str, name: str = "batch", label: str | None = None) -> int:
    """Read and conform the local source ``path`` into the temporary table ``name`` of the DuckDB connection
    ``con``; its number of rows. ``label`` names the source in errors (default ``path``).

    The table holds the columns of ``SCHEMAS[table]`` with their :data:`SQL_TYPES`, one row per data row in the
    source's order (``rowid`` 0 is data row 1), exactly what :func:`conform` returns for the same source:

    - a CSV (plain or .gz; its separator sniffed as :func:`read_raw` does) or a Parquet file is read by DuckDB
      (in parallel, without pandas) when every value is in a form DuckDB converts exactly as :func:`conform`
      does: integers in their plain decimal form, timestamps as ``YYYY-MM-DD HH:MM:SS`` (:data:`TIMESTAMP_FORMAT`)
      or typed, text as text. Duplicated ids are found in SQL and named as :func:`conform` names them;
    - anything else (another format or compression, a value in another form, a file DuckDB's strict CSV reader
      rejects, a header with empty or repeated names) is read and conformed by :func:`read_raw` and
      :func:`conform` themselves: the same values are accepted and the same :class:`SourceError` raised.

    One difference is known (tests/unit/test_sources_duckdb.py): a separator ending a CSV row is read as nothing
    by DuckDB, where pandas took a first field of such rows for an index and shifted the values left.
    """
    import duckdb

    label = label or path
    if table not in SCHEMAS:
        raise SourceError(f"{label}: unknown table {table!r}; expected one of {', '.join(SCHEMAS)}")
    if not Path(path).is_file():
        raise SourceError(f"{label}: no such file")
    con.execute(f'DROP TABLE IF EXISTS temp."{name}"')
    reader = _duckdb_reader(path, fmt)
    if reader is not None:
        try:
            staged = _stage_with_duckdb(con, reader, table, name, label)
        except (duckdb.OutOfMemoryException, duckdb.InterruptException):
            raise
        except duckdb.Error:
            staged = None  # DuckDB cannot read it as it is: pandas decides (reads it, or names the problem)
        if staged is not None:
            return staged
        con.execute(f'DROP TABLE IF EXISTS temp."{name}"')
    frame = conform(read_raw(path, fmt, name=label), table, label)
    con.register("tagifai_frame", frame)
    try:
        select = ", ".join(f'CAST("{col}" AS {SQL_TYPES[kind]}) AS "{col}"' for col, kind in SCHEMAS[table].items())
        con.execute(f'CREATE TEMP TABLE "{name}" AS SELECT {select} FROM tagifai_frame')
    finally:
        con.unregister("tagifai_frame")
    return len(frame)


def _duckdb_reader(path: str, fmt: str) -> tuple[str, list, dict[str, str] | None] | None:
    """DuckDB's table function reading ``path`` (SQL, parameters, {column: stripped name} for a CSV), or None
    when pandas reads this source."""
    suffix = Path(path).suffix.lower()
    compression = suffix if suffix in (".gz", ".bz2", ".zst", ".xz") else ""
    if fmt == "parquet":
        return "read_parquet(?)", [path], None
    if fmt != "csv" or compression not in _DUCKDB_CSV_COMPRESSIONS:
        return None
    sep = _sniff_separator(path)
    header = _csv_header(path, sep, compression)
    stripped = [h.strip() for h in header or []]
    if not stripped or "" in stripped or len(set(stripped)) != len(stripped):
        return None  # no header, or names pandas would make up ("Unnamed: 2", "id.1"): pandas reads it
    names = {f"c{i}": h for i, h in enumerate(stripped)}
    columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in names) + "}"
    # Strict: a row with more or fewer fields, an unterminated quote or bytes that are not UTF-8 are errors,
    # which send the file to pandas (that reads the lenient cases as before and names the others).
    sql = (
        f"read_csv(?, header = true, auto_detect = false, columns = {columns}, delim = ?, quote = '\"', "
        "escape = '\"', nullstr = '', strict_mode = true, encoding = 'utf-8', compression = 'auto')"
    )
    return sql, [path, sep], names


def _csv_header(path: str, sep: str, compression: str) -> list[str] | None:
    """The header record of a CSV (BOM removed, quoted fields parsed), None when there is none or it is unreadable."""
    import csv
    import gzip

    try:
        opener = gzip.open if compression == ".gz" else open
        with opener(path, "rt", encoding="utf-8-sig", newline="") as f:
            return next(csv.reader(f, delimiter=sep, quotechar='"', doublequote=True), None)
    except (OSError, UnicodeDecodeError, csv.Error):
        return None


def _stage_with_duckdb(con, reader: tuple, table: str, name: str, label: str) -> int | None:
    """Stage with DuckDB alone; None when a value needs pandas (the caller then reads the source with pandas)."""
    sql, params, csv_names = reader
    described = con.execute(f"DESCRIBE SELECT * FROM {sql}", params).fetchall()
    if csv_names is not None:
        columns = {csv_names[row[0]]: (row[0], "VARCHAR") for row in described}
    else:
        stripped = [str(row[0]).strip() for row in described]
        if len(set(stripped)) != len(stripped):
            return None
        columns = {s: (row[0], str(row[1])) for s, row in zip(stripped, described, strict=True)}
    _check_columns(table, list(columns), label)
    selects, checks = [], []
    for col, kind in SCHEMAS[table].items():
        source, source_type = columns[col]
        ref = '"' + source.replace('"', '""') + '"'
        if kind == "int" and source_type == "VARCHAR":
            selects.append(f"TRY_CAST({ref} AS BIGINT)")  # only the plain decimal form: its text comes back
            checks.append(f"coalesce(CAST(TRY_CAST({ref} AS BIGINT) AS VARCHAR) = {ref}, false)")
        elif kind == "int" and source_type in _SQL_INTEGERS:
            selects.append(f"CAST({ref} AS BIGINT)")
            checks.append(f"{ref} IS NOT NULL")
        elif kind == "timestamp" and source_type == "VARCHAR":
            parsed = f"try_strptime({ref}, '{TIMESTAMP_FORMAT}')"
            selects.append(parsed)  # only the canonical form: formatting the value gives the text back
            checks.append(f"({ref} IS NULL OR coalesce(strftime({parsed}, '{TIMESTAMP_FORMAT}') = {ref}, false))")
        elif kind == "timestamp" and source_type in _SQL_TIMESTAMPS:
            selects.append(f"CAST({ref} AS TIMESTAMP)")
        elif kind == "timestamp" and source_type in _SQL_TIMESTAMPS_TZ:
            selects.append(f"timezone('UTC', {ref})")  # the UTC wall clock, naive: conform's utc=True
        elif kind == "string" and source_type == "VARCHAR":
            selects.append(ref)
        else:
            return None  # a type pandas converts (floats as ids, numbers as text...): conform's rules
    columns_sql = ", ".join(f'{expr} AS "{col}"' for expr, col in zip(selects, SCHEMAS[table], strict=True))
    ok = " AND ".join(checks) or "true"
    con.execute(f'CREATE TEMP TABLE "{name}" AS SELECT {columns_sql}, {ok} AS tagifai_ok FROM {sql}', params)
    rows, all_ok = con.execute(f'SELECT count(*), coalesce(bool_and(tagifai_ok), true) FROM temp."{name}"').fetchone()
    if not rows:
        raise SourceError(f"{label}: no rows; table {table!r} needs at least one")
    if not all_ok:
        return None
    con.execute(f'ALTER TABLE temp."{name}" DROP COLUMN tagifai_ok')
    _check_unique(con, name, label)
    return int(rows)


def _check_unique(con, name: str, label: str) -> None:
    """:func:`conform`'s error for duplicated ids, in SQL (data rows are ``rowid + 1``)."""
    key = f'"{PRIMARY_KEY}"'
    dups = con.execute(
        f'SELECT {key} FROM temp."{name}" GROUP BY {key} HAVING count(*) > 1 ORDER BY min(rowid) LIMIT {_MAX_SAMPLES}'
    ).fetchall()
    if not dups:
        return
    duplicated = f'{key} IN (SELECT {key} FROM temp."{name}" GROUP BY {key} HAVING count(*) > 1)'
    total = con.execute(f'SELECT count(*) FROM temp."{name}" WHERE {duplicated}').fetchone()[0]
    first = con.execute(
        f'SELECT rowid + 1 FROM temp."{name}" WHERE {duplicated} ORDER BY rowid LIMIT {_MAX_SAMPLES}'
    ).fetchall()
    rows = _rows_text([int(r[0]) for r in first], int(total))
    ids = ", ".join(str(r[0]) for r in dups)
    raise SourceError(f"{label}: primary key {PRIMARY_KEY!r} is duplicated in data row(s) {rows} (ids {ids})")


def load_labeled_projects(data_dir: str | Path) -> pd.DataFrame:
    """``projects.csv`` joined one-to-one with ``tags.csv`` on id from a local folder (the layout of
    data/madewithml), ``created_on`` parsed, ordered by id. For benchmarks and tests that
    start from the files rather than the warehouse; pipelines go through sync and the dbt model."""
    import pandas as pd

    data_dir = Path(data_dir)
    projects = pd.read_csv(data_dir / "projects.csv")
    tags = pd.read_csv(data_dir / "tags.csv")
    df = projects.merge(tags, on="id", how="inner", validate="one_to_one")
    df["created_on"] = pd.to_datetime(df["created_on"])
    return df.sort_values("id").reset_index(drop=True)
