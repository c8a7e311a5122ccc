"""tagifai.sources.stage_source: a source read into DuckDB is exactly what conform makes of it.

Every case reads one file both ways, DuckDB's (``stage_source``, what sync loads on DuckDB) and pandas'
(``conform(read_raw(...))``, what sync loaded before and still loads on BigQuery), and asks for the same rows
with the same values, or the same SourceError word for word.
"""

from __future__ import annotations

import gzip
import importlib.util
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tagifai import sources
from tagifai.sources import SourceError, conform, read_raw, stage_source

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "madewithml"
_spec = importlib.util.spec_from_file_location("tagifai_synth", ROOT / "benchmarks" / "synth.py")
synth = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = synth
_spec.loader.exec_module(synth)

PROJECTS = "id,created_on,title,description\n"


def _values(df: pd.DataFrame) -> list[tuple]:
    """Rows as plain values (timestamps as pandas Timestamps, missing as None), whatever the dtypes."""
    return [
        tuple(None if pd.isna(v) else (pd.Timestamp(v) if hasattr(v, "year") else v) for v in row)
        for row in df.itertuples(index=False)
    ]


def _staged(path: Path, table: str, fmt: str) -> tuple[list[tuple], list[tuple]]:
    """(rows in rowid order, DESCRIBE) of the staged table."""
    with duckdb.connect(":memory:") as con:
        n = stage_source(con, str(path), table, fmt)
        rows = con.execute("SELECT * FROM temp.batch ORDER BY rowid").df()
        described = [(r[0], r[1]) for r in con.execute("DESCRIBE temp.batch").fetchall()]
    assert n == len(rows)
    return _values(rows), described


def _both(path: Path, table: str, fmt: str = "csv"):
    """The outcome both ways: ('ok', rows) or ('error', message)."""
    outcomes = []
    for way in ("duckdb", "pandas"):
        try:
            if way == "duckdb":
                rows, described = _staged(path, table, fmt)
                assert [t for _, t in described] == [sources.SQL_TYPES[k] for k in sources.SCHEMAS[table].values()]
            else:
                rows = _values(conform(read_raw(str(path), fmt), table, str(path)))
            outcomes.append(("ok", rows))
        except SourceError as exc:
            outcomes.append(("error", str(exc)))
    return outcomes


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


CSV_CASES = {
    # the fast path
    "plain": ("tags", "id,tag\n1,mlops\n2,computer-vision\n"),
    "bom_crlf_blank_line_quoted_empty": ("tags", '\ufeffid,tag\r\n1,a\r\n\r\n2,""\r\n3,\r\n4," spaced "\r\n'),
    "quoted_newlines_and_quotes": ("tags", 'id,tag\n1,"multi\nline"\n2,"quote "" inside"\n3,"a,b"\n'),
    "semicolons": ("tags", "id;tag\n1;a,b\n2;c\n"),
    "tabs": ("tags", "id\ttag\n1\ta;b\n"),
    "header_spaces_extra_columns": ("tags", " id , tag ,note\n1,a,x\n2,b,y\n"),
    "canonical_timestamps_and_a_null": (
        "projects",
        PROJECTS + "1,2020-02-20 06:43:18,t,d\n2,,t2,d2\n3,2021-2-3 04:05:06,a,b\n",
    ),
    "negative_and_big_ids": ("tags", "id,tag\n-3,a\n9007199254740993,b\n"),
    "carriage_returns_only": ("tags", "id,tag\r1,a\r2,b\r"),
    "crlf_inside_quotes_unquoted_spaces": ("tags", 'id,tag\r\n1,"a\r\nb"\r\n2,  c  \r\n'),
    "hash_is_not_a_comment": ("tags", "id,tag\n1,#a\n2,b # c\n"),
    "no_final_newline": ("tags", "id,tag\n1,a"),
    "null_text": ("projects", PROJECTS + "1,2020-02-20 06:43:18,,\n"),
    # pandas decides (a value DuckDB does not convert exactly as conform does)
    "ids_in_other_forms": ("tags", "id,tag\n+5,a\n007,b\n 12 ,c\n13.0,d\n1e3,e\n"),
    "iso_timestamps_with_offsets": (
        "projects",
        PROJECTS + "1,2020-02-20T06:43:18+02:00,t,d\n2,2020-02-20T06:43:18Z,t,d\n3,2020-02-21T00:00:00+00:00,t,d\n",
    ),
    "fractional_seconds": ("projects", PROJECTS + "1,2020-02-20 06:43:18.250000,t,d\n2,2020-02-20 06:43:19.5,t,d\n"),
    "short_rows_are_padded_by_pandas": ("tags", "id,tag\n1,a\n2\n"),
    "duplicated_header": ("tags", "id,tag,tag\n1,a,b\n"),
    # errors, word for word
    "id_not_an_integer": ("tags", "id,tag\n1,a\nnot-an-id,b\n12.5,c\n0x10,d\n"),
    "id_empty": ("tags", "id,tag\n,a\n2,b\n"),
    "id_duplicated": ("tags", "id,tag\n7,a\n8,b\n7,c\n"),
    "ids_duplicated_many": ("tags", "id,tag\n" + "".join(f"{i % 3},x\n" for i in range(20))),
    "timestamp_bad": ("projects", PROJECTS + "1,2020-01-01 00:00:00,a,b\n2,yesterday,c,d\n"),
    "timestamp_impossible_date": ("projects", PROJECTS + "1,2020-02-30 00:00:00,a,b\n"),
    "timestamp_year_zero": ("projects", PROJECTS + "1,0000-01-01 00:00:00,a,b\n"),
    "timestamps_in_mixed_forms": ("projects", PROJECTS + "1,2020-01-01 00:00:00,a,b\n2,2020-01-02,c,d\n"),
    "missing_column": ("tags", "id\n1\n"),
    "header_only": ("tags", "id,tag\n"),
    "long_row": ("tags", "id,tag\n1,a\n2,b,c\n"),
    "comment_line": ("tags", "id,tag\n# note\n1,a\n"),
    "unterminated_quote": ("tags", 'id,tag\n1,"a\n'),
    "empty_file": ("tags", ""),
}


@pytest.mark.parametrize("case", list(CSV_CASES))
def test_csv_read_by_duckdb_is_what_conform_makes_of_it(tmp_path, case):
    table, text = CSV_CASES[case]
    path = _write(tmp_path, f"{table}.csv", text)
    duck, pandas_ = _both(path, table)
    assert duck == pandas_


def test_a_separator_ending_every_row_is_read_as_nothing(tmp_path):
    """The one known difference: DuckDB reads a separator that ends a row (a spreadsheet's export) as nothing,
    where pandas took the first field of such a file for its index and shifted every value left (here, ids that
    are tags: an error; with numbers in the second column, wrong rows loaded)."""
    path = _write(tmp_path, "tags.csv", "id,tag\n1,a,\n2,b,\n")
    duck, pandas_ = _both(path, "tags")
    assert duck == ("ok", [(1, "a"), (2, "b")])
    assert pandas_[0] == "error" and "column 'id' is not an integer in data row(s) 1, 2: 'a', 'b'" in pandas_[1]


def test_bytes_that_are_not_utf8_are_named_as_before(tmp_path):
    path = _write(tmp_path, "tags.csv", b"id,tag\n1,caf\xe9\n")
    duck, pandas_ = _both(path, "tags")
    assert duck == pandas_ and duck[0] == "error" and "could not read as csv" in duck[1]


def test_gzipped_csv(tmp_path):
    path = tmp_path / "projects.csv.gz"
    path.write_bytes(gzip.compress((DATA / "projects.csv").read_bytes()))
    duck, pandas_ = _both(path, "projects")
    assert duck == pandas_ and len(duck[1]) == 764


@pytest.mark.parametrize("table", ["projects", "tags"])
def test_the_real_files_take_duckdbs_path_alone(table, monkeypatch):
    """No pandas for the Made With ML files (nor for the synthetic ones, which share their forms)."""
    expected = _values(conform(read_raw(str(DATA / f"{table}.csv")), table))

    def no_pandas(*args, **kwargs):
        raise AssertionError("pandas read the source")

    monkeypatch.setattr(sources, "read_raw", no_pandas)
    rows, _ = _staged(DATA / f"{table}.csv", table, "csv")
    assert rows == expected


def test_other_forms_go_to_pandas(tmp_path, monkeypatch):
    path = _write(tmp_path, "tags.csv", "id,tag\n+5,a\n")
    calls = []
    original = sources.read_raw
    monkeypatch.setattr(sources, "read_raw", lambda *a, **k: calls.append(a) or original(*a, **k))
    assert _staged(path, "tags", "csv")[0] == [(5, "a")] and calls


def test_rows_are_numbered_in_file_order_across_read_buffers(tmp_path):
    """Row numbers of errors found in SQL (duplicated ids) are the file's, also past DuckDB's first buffers."""
    written = synth.write(150_000, tmp_path / "data")
    df = pd.read_csv(written.projects, dtype=str, keep_default_na=False)
    df.loc[120_000, "id"] = df.loc[99_999, "id"]
    df.loc[149_998, "id"] = df.loc[3, "id"]
    path = tmp_path / "projects.csv"
    df.to_csv(path, index=False)
    duck, pandas_ = _both(path, "projects")
    assert duck == pandas_
    assert duck[1].endswith("duplicated in data row(s) 4, 100000, 120001, 149999 (ids 100003, 199999)")


def test_synthetic_rows_match_exactly(tmp_path):
    written = synth.write(20_000, tmp_path / "data", seed=3)
    for table in ("projects", "tags"):
        duck, pandas_ = _both(Path(getattr(written, table)), table)
        assert duck == pandas_ and duck[0] == "ok" and len(duck[1]) == 20_000


PARQUET_CASES = {
    "typed": (
        "projects",
        pd.DataFrame(
            {
                "id": [3, 1, 2],
                "created_on": pd.to_datetime(["2020-01-01 10:00", "2020-01-02 00:00", None]),
                "title": ["a", None, "c"],
                "description": ["d", "e", "f"],
            }
        ),
    ),
    "timezone_aware": (
        "projects",
        pd.DataFrame(
            {
                "id": [1, 2],
                "created_on": pd.to_datetime(["2020-01-01 10:00+02:00", "2020-06-01 00:00+00:00"], utc=True),
                "title": ["a", "b"],
                "description": ["c", "d"],
            }
        ),
    ),
    "timestamps_as_text": (
        "projects",
        pd.DataFrame({"id": [1], "created_on": ["2020-02-20 06:43:18"], "title": ["a"], "description": ["b"]}),
    ),
    "int32_ids": ("tags", pd.DataFrame({"id": pd.array([1, 2], dtype="int32"), "tag": ["a", "b"]})),
    "float_ids": ("tags", pd.DataFrame({"id": [1.0, 2.0], "tag": ["a", "b"]})),
    "float_ids_with_a_gap": ("tags", pd.DataFrame({"id": [1.0, None], "tag": ["a", "b"]})),
    "numbers_as_text_columns": ("tags", pd.DataFrame({"id": [1, 2], "tag": [5, 6]})),
    "duplicated_ids": ("tags", pd.DataFrame({"id": [4, 4], "tag": ["a", "b"]})),
    "no_rows": ("tags", pd.DataFrame({"id": pd.Series([], dtype="int64"), "tag": pd.Series([], dtype="str")})),
}


@pytest.mark.parametrize("case", list(PARQUET_CASES))
def test_parquet_read_by_duckdb_is_what_conform_makes_of_it(tmp_path, case):
    table, frame = PARQUET_CASES[case]
    path = tmp_path / f"{table}.parquet"
    frame.to_parquet(path, index=False)
    duck, pandas_ = _both(path, table, "parquet")
    assert duck == pandas_


def test_json_is_read_by_pandas(tmp_path):
    path = tmp_path / "tags.jsonl"
    pd.read_csv(DATA / "tags.csv").to_json(path, orient="records", lines=True)
    duck, pandas_ = _both(path, "tags", "json")
    assert duck == pandas_ and len(duck[1]) == 764


def test_a_missing_file_and_an_unreadable_parquet(tmp_path):
    with duckdb.connect(":memory:") as con:
        with pytest.raises(SourceError, match="nope.csv: no such file"):
            stage_source(con, str(tmp_path / "nope.csv"), "tags", "csv")
        bad = _write(tmp_path, "tags.parquet", "not parquet")
        with pytest.raises(SourceError, match=r"tags\.parquet: could not read as parquet"):
            stage_source(con, str(bad), "tags", "parquet")


def test_errors_name_the_label_not_the_local_copy(tmp_path):
    path = _write(tmp_path, "copy.csv", "id,tag\nx,a\n")
    with (
        duckdb.connect(":memory:") as con,
        pytest.raises(SourceError, match=r"^https://example\.org/tags\.csv: column"),
    ):
        stage_source(con, str(path), "tags", "csv", label="https://example.org/tags.csv")
