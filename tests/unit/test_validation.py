"""Validation with the real Great Expectations suites on the real Made With ML data (no mocks).

GX is imported once per process (the first validation pays ~5-8 s); each later validation takes a
fraction of a second, so the whole file stays fast.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tagifai.config import PACKAGE_ROOT
from tagifai.validation import (
    DataValidationError,
    SuiteNotFoundError,
    ValidationReport,
    available_suites,
    validate_dataframe,
    validate_parquet,
)

GX_PROJECT = PACKAGE_ROOT / "great_expectations"
DATA_DIR = PACKAGE_ROOT / "data" / "madewithml"
SUITES = ("projects", "tags", "labeled_projects")
TAGS = {
    "natural-language-processing",
    "computer-vision",
    "mlops",
    "reinforcement-learning",
    "graph-learning",
    "time-series",
}

pytestmark = pytest.mark.skipif(not (DATA_DIR / "projects.csv").exists(), reason="shared Made With ML data not found")


@pytest.fixture(params=["gx", "sql"], autouse=True)
def engine(request, monkeypatch) -> str:
    """Every test here runs on both engines: Great Expectations itself, and the suites as SQL in DuckDB
    (tagifai.validation.sql; tests/unit/test_validation_sql.py compares their results one by one)."""
    monkeypatch.setenv("TAGIFAI_VALIDATION_ENGINE", request.param)
    return request.param


@pytest.fixture(scope="module")
def projects() -> pd.DataFrame:
    df = pd.read_csv(DATA_DIR / "projects.csv")
    df["created_on"] = pd.to_datetime(df["created_on"])
    return df


@pytest.fixture(scope="module")
def tags() -> pd.DataFrame:
    return pd.read_csv(DATA_DIR / "tags.csv")


@pytest.fixture(scope="module")
def labeled_projects(projects, tags) -> pd.DataFrame:
    return projects.merge(tags, on="id")


@pytest.fixture(scope="module")
def frames(projects, tags, labeled_projects) -> dict[str, pd.DataFrame]:
    return {"projects": projects, "tags": tags, "labeled_projects": labeled_projects}


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file below ``folder`` with a hash of its content."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _fails(report: ValidationReport, expectation: str, column: str | None = None) -> dict:
    matches = [
        f
        for f in report.failures
        if f["expectation"] == expectation and (column is None or column in (f["columns"] or []))
    ]
    assert matches, f"{expectation} on {column} did not fail; failures: {report.failures}"
    return matches[0]


# --- the suites -----------------------------------------------------------------------------------


def test_suites_are_json_files_of_a_file_based_gx_project():
    assert available_suites(GX_PROJECT) == sorted(SUITES)
    assert (GX_PROJECT / "gx" / "great_expectations.yml").is_file()
    for name in SUITES:
        suite = json.loads((GX_PROJECT / "gx" / "expectations" / f"{name}.json").read_text())
        assert suite["name"] == name
        types = {e["type"] for e in suite["expectations"]}
        assert {"expect_table_columns_to_match_set", "expect_table_row_count_to_be_between"} <= types
        assert {"expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"} <= types
    labeled = json.loads((GX_PROJECT / "gx" / "expectations" / "labeled_projects.json").read_text())
    in_set = [e for e in labeled["expectations"] if e["type"] == "expect_column_values_to_be_in_set"]
    assert set(in_set[0]["kwargs"]["value_set"]) == TAGS
    compound = [e for e in labeled["expectations"] if e["type"] == "expect_compound_columns_to_be_unique"]
    assert compound[0]["kwargs"]["column_list"] == ["title", "description"]


def test_file_mode_context_loads_the_suites(tmp_path):
    """``gx.get_context(mode="file")`` loads the project (on a copy: loading creates uncommitted/)."""
    import great_expectations as gx

    copy = tmp_path / "great_expectations"
    shutil.copytree(GX_PROJECT, copy)
    context = gx.get_context(mode="file", project_root_dir=str(copy))
    names = sorted(s.name for s in context.suites.all())
    assert names == sorted(SUITES)
    assert len(context.suites.get("labeled_projects").expectations) >= 15


def test_unknown_suite_lists_the_available_ones(projects):
    with pytest.raises(SuiteNotFoundError) as info:
        validate_dataframe(projects, "no_such_suite", "projects.csv")
    message = str(info.value)
    assert "no_such_suite" in message
    for name in SUITES:
        assert name in message


# --- good data passes -----------------------------------------------------------------------------


@pytest.mark.parametrize("suite", SUITES)
def test_real_data_passes(suite, frames):
    report = validate_dataframe(frames[suite], suite, f"{suite}.csv")
    assert report.success, report.failure_message()
    assert report.suite == suite and report.data_name == f"{suite}.csv"
    assert report.evaluated >= 9 and report.successful == report.evaluated and report.unsuccessful == 0
    assert report.success_percent == 100.0
    assert report.failures == []
    assert report.to_metrics() == {
        "evaluated": report.evaluated,
        "successful": report.evaluated,
        "unsuccessful": 0,
        "success_percent": 100.0,
    }
    report.raise_for_failures()  # no error
    assert report.html.lstrip().lower().startswith("<!doctype html>")
    assert "Great Expectations" in report.html and f"{suite}.csv" in report.html


def test_timezone_aware_timestamps_and_nullable_dtypes_pass(projects):
    """What a warehouse read may return: TIMESTAMPTZ columns, nullable Int64 and string dtypes."""
    df = projects.astype({"id": "Int64", "title": "string", "description": "string"})
    df["created_on"] = df["created_on"].dt.tz_localize("UTC").dt.tz_convert("Europe/Berlin")
    df["_dlt_load_id"] = "1"  # loader bookkeeping columns are allowed
    report = validate_dataframe(df, "projects", "raw.projects")
    assert report.success, report.failure_message()
    assert str(df["created_on"].dt.tz) == "Europe/Berlin"  # the caller's frame is not modified


def test_validate_parquet(tmp_path, labeled_projects):
    path = tmp_path / "labeled_projects.parquet"
    labeled_projects.to_parquet(path)
    report = validate_parquet(path, "labeled_projects")
    assert report.success, report.failure_message()
    assert report.data_name == str(path)

    labeled_projects.assign(tag="other").to_parquet(path)
    report = validate_parquet(path, "labeled_projects", data_name="dataset artifact")
    assert not report.success
    with pytest.raises(DataValidationError, match="dataset artifact"):
        report.raise_for_failures()


# --- bad data fails, with a message that says what and where --------------------------------------


def _duplicate_id(df):
    df = df.copy()
    df.loc[1, "id"] = df.loc[0, "id"]
    return df


def _null_title(df):
    df = df.copy()
    df.loc[2, "title"] = None
    return df


def _duplicate_title_description(df):
    row = df[df["title"] == "Awesome Graph Classification"].assign(id=df["id"].max() + 1)
    return pd.concat([df, row], ignore_index=True)


def _null_tag(df):
    df = df.copy()
    df.loc[4, "tag"] = None
    return df


def _unknown_tag(df):
    df = df.copy()
    df.loc[5, "tag"] = "quantum-computing"
    return df


def _missing_description(df):
    return df.drop(columns=["description"])


def _future_created_on(df):
    df = df.copy()
    df.loc[6, "created_on"] = pd.Timestamp("2999-01-01")
    return df


def _blank_title(df):
    df = df.copy()
    df.loc[7, "title"] = "   "
    return df


def _float_id(df):
    return df.assign(id=df["id"].astype("float64"))


def _empty(df):
    return df.iloc[0:0]


BAD = {
    # case: (suite, corrupt, expectation, column, expected sample or detail in the message)
    "duplicate id": ("projects", _duplicate_id, "expect_column_values_to_be_unique", "id", "sample: 6"),
    "null title": ("projects", _null_title, "expect_column_values_to_not_be_null", "title", "sample: null"),
    "duplicated title+description": (
        "projects",
        _duplicate_title_description,
        "expect_compound_columns_to_be_unique",
        "description",
        "Awesome Graph Classification",
    ),
    "null tag": ("tags", _null_tag, "expect_column_values_to_not_be_null", "tag", "sample: null"),
    "unknown tag": (
        "labeled_projects",
        _unknown_tag,
        "expect_column_values_to_be_in_set",
        "tag",
        "'quantum-computing'",
    ),
    "missing column": (
        "projects",
        _missing_description,
        "expect_table_columns_to_match_set",
        "description",
        "missing column(s) 'description'",
    ),
    "future created_on": (
        "labeled_projects",
        _future_created_on,
        "expect_column_values_to_be_between",
        "created_on",
        "2999-01-01",
    ),
    "blank title": ("projects", _blank_title, "expect_column_values_to_match_regex", "title", "'   '"),
    "float id": ("tags", _float_id, "expect_column_values_to_be_in_type_list", "id", "float64"),
    "no rows": ("tags", _empty, "expect_table_row_count_to_be_between", None, "observed 0"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_bad_data_fails_with_a_precise_message(case, frames):
    suite, corrupt, expectation, column, detail = BAD[case]
    data_name = f"warehouse table raw.{suite}"
    report = validate_dataframe(corrupt(frames[suite]), suite, data_name)

    assert not report.success
    assert report.unsuccessful >= 1 and report.successful + report.unsuccessful == report.evaluated
    assert report.success_percent < 100.0
    failure = _fails(report, expectation, column)
    if expectation.startswith("expect_column_values") and failure["unexpected_count"] is not None:
        assert failure["unexpected_count"] >= 1 and failure["sample_unexpected"]
    json.dumps(report.failures)  # plain, serialisable values

    with pytest.raises(DataValidationError) as info:
        report.raise_for_failures()
    message = str(info.value)
    assert data_name in message and f"suite {suite!r}" in message
    line = next(ln for ln in message.splitlines() if expectation in ln and (column is None or column in ln))
    assert detail in line, line
    if column:
        assert f"'{column}'" in line
    assert data_name in report.html and "Failed" in report.html  # GX's page of this result
    if column:
        assert column in report.html


def test_the_page_stands_alone_offline_and_marks_each_expectation(labeled_projects):
    """Issue 14: GX's page linked Bootstrap, jQuery, Vega and Font Awesome from CDNs; offline it was unstyled
    and the Status column blank (icon-font glyphs). Now nothing is fetched and each status is a text mark."""
    import re

    df = _unknown_tag(_null_title(_duplicate_id(labeled_projects)))
    report = validate_dataframe(df, "labeled_projects", "main.labeled_projects")
    page = report.html
    assert not re.search(r'\b(?:src|href)="(?:https?:)?//', page), re.findall(r'(?:src|href)="[^"]*//[^"]*"', page)
    assert '<i class="fa' not in page and "font-awesome" not in page
    # one mark a row of the Status column (and the page's own header marks besides)
    assert page.count('class="tagifai-mark tagifai-pass"') >= report.successful == report.evaluated - 3
    assert page.count('class="tagifai-mark tagifai-failed"') >= report.unsuccessful == 3
    clean = validate_dataframe(labeled_projects, "labeled_projects", "main.labeled_projects").html
    assert clean.count("tagifai-mark tagifai-pass") >= 9 and "tagifai-mark tagifai-failed" not in clean


def test_every_failure_is_named_in_one_message(labeled_projects):
    df = _unknown_tag(_null_title(_duplicate_id(labeled_projects)))
    report = validate_dataframe(df, "labeled_projects", "main.labeled_projects")
    message = report.failure_message()
    lines = message.splitlines()
    assert lines[0].startswith("Data validation failed for 'main.labeled_projects' against suite 'labeled_projects'")
    assert len(lines) == 1 + report.unsuccessful == 4
    assert "column 'id'" in message and "column 'title'" in message and "column 'tag'" in message
    assert isinstance(DataValidationError(message), ValueError)


# --- nothing is written into the repository -------------------------------------------------------


def test_validation_leaves_the_gx_project_unchanged(projects, tags):
    before = _snapshot(GX_PROJECT)
    validate_dataframe(projects, "projects", "projects.csv")
    validate_dataframe(_null_tag(tags), "tags", "tags.csv")
    report = validate_dataframe(_duplicate_id(projects), "projects", "projects.csv")
    assert _snapshot(GX_PROJECT) == before
    assert not (GX_PROJECT / "gx" / "uncommitted").exists()
    # The result's one page is the report's HTML, not a Data Docs site.
    assert "Failed" in report.html
