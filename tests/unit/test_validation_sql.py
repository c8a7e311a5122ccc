"""The SQL engine (tagifai.validation.sql) against Great Expectations itself, result by result.

Both engines run the repository's suites on the real Made With ML data and on every kind of bad data of
tests/unit/test_validation.py, as a dataframe and as a DuckDB warehouse table; every failed
expectation must agree in kind, column, counts, samples and observed value.
"""

from __future__ import annotations

import math
import sys

import pandas as pd
import pytest
from test_validation import BAD, DATA_DIR, SUITES  # tests/unit is on sys.path (rootdir import mode)

from tagifai.validation import validate_dataframe, validate_table
from tagifai.validation.sql import Config, Suite, frame_source, run_suite, supports

pytestmark = pytest.mark.skipif(not (DATA_DIR / "projects.csv").exists(), reason="shared Made With ML data not found")

#: One value of the suites' $PARAMETER for both engines, so their messages can be compared whole.
_PARAMS = {"max_created_on": pd.Timestamp("2030-01-01").to_pydatetime()}
_KEYS = (
    "expectation",
    "column",
    "columns",
    "unexpected_count",
    "element_count",
    "sample_unexpected",
    "missing_columns",
)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    projects = pd.read_csv(DATA_DIR / "projects.csv")
    projects["created_on"] = pd.to_datetime(projects["created_on"])
    tags = pd.read_csv(DATA_DIR / "tags.csv")
    return {"projects": projects, "tags": tags, "labeled_projects": projects.merge(tags, on="id")}


def _same(gx, sql) -> None:
    """The two reports agree on everything a person or a step reads from them."""
    assert (sql.success, sql.evaluated, sql.successful, sql.unsuccessful) == (
        gx.success,
        gx.evaluated,
        gx.successful,
        gx.unsuccessful,
    ), (gx.failure_message(), sql.failure_message())
    assert sql.success_percent == pytest.approx(gx.success_percent)
    assert len(sql.failures) == len(gx.failures)
    for g, s in zip(gx.failures, sql.failures, strict=True):
        assert {k: s[k] for k in _KEYS} == {k: g[k] for k in _KEYS}, (g, s)
        if g["unexpected_percent"] is None:
            assert s["unexpected_percent"] is None
        else:
            assert math.isclose(s["unexpected_percent"], g["unexpected_percent"], rel_tol=1e-9)
        if not g["missing_columns"] and g["observed_value"] is not None:
            assert s["observed_value"] == g["observed_value"], (g, s)
    assert sql.failure_message() == gx.failure_message()


@pytest.mark.parametrize("suite", SUITES)
def test_real_data_passes_on_both_engines(suite, frames):
    gx = validate_dataframe(frames[suite], suite, suite, engine="gx", expectation_parameters=_PARAMS)
    sql = validate_dataframe(frames[suite], suite, suite, engine="sql", expectation_parameters=_PARAMS)
    assert gx.success and sql.success
    _same(gx, sql)


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_data_fails_alike_on_both_engines(case, frames):
    suite, corrupt, *_ = BAD[case]
    df = corrupt(frames[suite])
    _same(
        validate_dataframe(df, suite, "t", engine="gx", expectation_parameters=_PARAMS),
        validate_dataframe(df, suite, "t", engine="sql", expectation_parameters=_PARAMS),
    )


def _unicode_edges(df: pd.DataFrame) -> pd.DataFrame:
    """Values where DuckDB's RE2 and Python's re disagree: Unicode whitespace, a newline before the end."""
    df = df.copy()
    df.loc[3, "title"] = "\u00a0\u2003"  # only Unicode spaces: no \\S for Python, two for RE2
    df.loc[8, "title"] = "caf\u00e9 \u2014 ok"
    df.loc[9, "tag"] = "mlops\n"  # Python's $ matches before a final newline; RE2's does not
    df.loc[10, "tag"] = "Computer Vision"
    return df


def test_regular_expressions_follow_python_on_every_value(frames):
    df = _unicode_edges(frames["labeled_projects"])
    gx = validate_dataframe(df, "labeled_projects", "t", engine="gx", expectation_parameters=_PARAMS)
    sql = validate_dataframe(df, "labeled_projects", "t", engine="sql", expectation_parameters=_PARAMS)
    _same(gx, sql)
    title = next(f for f in sql.failures if f["expectation"].endswith("match_regex") and f["column"] == "title")
    assert title["unexpected_count"] == 1 and title["sample_unexpected"] == ["\u00a0\u2003"]
    tags = frames["tags"].copy()
    tags.loc[0, "tag"], tags.loc[1, "tag"], tags.loc[5, "tag"] = "mlops\n", "Not-A-Slug", "mlops\n"  # a value twice
    _same(
        validate_dataframe(tags, "tags", "t", engine="gx", expectation_parameters=_PARAMS),
        validate_dataframe(tags, "tags", "t", engine="sql", expectation_parameters=_PARAMS),
    )


def test_a_pattern_re2_cannot_compile_runs_in_python():
    import duckdb

    df = pd.DataFrame({"w": ["foobar", "foobaz", None, "barfoo"]})
    suite = Suite("s", [Config("expect_column_values_to_match_regex", {"column": "w", "regex": "foo(?!baz)"}, "1")])
    with duckdb.connect() as con:
        outcome = run_suite(frame_source(con, df), suite, {}).results[0]
    assert not outcome.success
    assert outcome.result["unexpected_count"] == 1 and outcome.result["partial_unexpected_list"] == ["foobaz"]
    assert outcome.result["element_count"] == 4 and outcome.result["missing_count"] == 1


def test_an_unknown_expectation_type_is_left_to_great_expectations():
    assert supports({"expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}]})
    assert not supports({"expectations": [{"type": "expect_column_kl_divergence_to_be_less_than", "kwargs": {}}]})
    assert not supports(
        {
            "expectations": [
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id", "row_condition": "x"}}
            ]
        }
    )


def _warehouse(tmp_path, frames, corrupt=None) -> str:
    """A DuckDB warehouse with raw.projects as sync writes it (TIMESTAMP, BIGINT, VARCHAR, dlt columns)."""
    import duckdb

    df = frames["projects"] if corrupt is None else corrupt(frames["projects"])
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.register("df", df.assign(_dlt_load_id="1"))
        con.execute("CREATE TABLE raw.projects AS SELECT * FROM df")
    return f"duckdb:///{path}"


@pytest.mark.parametrize("case", [None, "duplicate id", "null title", "future created_on", "blank title"])
def test_a_duckdb_table_validates_in_place_alike(tmp_path, frames, case):
    corrupt = BAD[case][1] if case else None
    uri = _warehouse(tmp_path, frames, corrupt)
    gx = validate_table(uri, "raw.projects", "projects", engine="gx", expectation_parameters=_PARAMS)
    sql = validate_table(uri, "raw.projects", "projects", engine="sql", expectation_parameters=_PARAMS)
    _same(gx, sql)
    assert sql.success is (case is None)


def test_the_sql_engine_does_not_import_great_expectations(tmp_path, frames):
    import subprocess

    uri = _warehouse(tmp_path, frames, BAD["duplicate id"][1])
    code = (
        "import sys; from tagifai.validation import validate_table; "
        f"r = validate_table({uri!r}, 'raw.projects', 'projects'); "
        "print(r.unsuccessful, 'great_expectations' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "False"]


def test_a_missing_table_is_named(tmp_path, frames):
    from tagifai.warehouse import WarehouseError

    uri = _warehouse(tmp_path, frames)
    with pytest.raises(WarehouseError, match="raw.nothing"):
        validate_table(uri, "raw.nothing", "projects", engine="sql", expectation_parameters=_PARAMS)


def test_an_unknown_engine_is_refused(frames):
    with pytest.raises(ValueError, match="TAGIFAI_VALIDATION_ENGINE"):
        validate_dataframe(frames["tags"], "tags", "t", engine="spark")
