"""Running a suite: on a dataframe, a Parquet file, or a warehouse table.

Validating never raises on failed expectations: it returns a :class:`ValidationReport`; callers decide
with :meth:`ValidationReport.raise_for_failures`.

A dataframe is validated as a pandas batch. A warehouse table is validated where its backend says
(:attr:`tagifai.warehouse.Warehouse.gx_pandas`): DuckDB reads it into pandas first (GX 1.24's SQL
datasource on DuckDB fails every expectation with ``MetricResolutionError``); BigQuery runs the
expectations as SQL on GX's BigQuery datasource, nothing is downloaded.

Two normalisations are applied before validating a dataframe (on a shallow copy): timezone-aware
datetime columns are converted to naive UTC (GX cannot compare aware timestamps with the suites' naive
bounds), and the suite parameter ``max_created_on`` defaults to now (UTC) plus one day.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

import pandas as pd

from tagifai.validation.context import LOCK, gx_context
from tagifai.validation.html import render_html
from tagifai.validation.report import ValidationReport, build_report
from tagifai.validation.suites import load_suite, suite_path
from tagifai.warehouse import Warehouse, WarehouseError, parse_warehouse

_RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": 20}


def default_expectation_parameters() -> dict:
    """Runtime values of the suites' ``$PARAMETER`` kwargs."""
    now = _dt.datetime.now(_dt.UTC).replace(tzinfo=None)
    return {"max_created_on": now + _dt.timedelta(days=1)}


def _parameters(overrides: dict | None) -> dict:
    return {**default_expectation_parameters(), **(overrides or {})}


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy with timezone-aware datetime columns as naive UTC (GX compares naive bounds)."""
    aware = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return df
    out = df.copy(deep=False)
    for c in aware:
        out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def _annotate(result: Any, data_name: str) -> None:
    """Name the run and the data asset after ``data_name`` (shown by GX's renderer)."""
    from great_expectations.core.run_identifier import RunIdentifier

    result.meta["run_id"] = RunIdentifier(run_name=data_name, run_time=_dt.datetime.now(_dt.UTC))
    spec = dict(result.meta.get("batch_spec") or {})
    spec["data_asset_name"] = data_name
    result.meta["batch_spec"] = spec


def _finish(result: Any, suite: Any, data_name: str, columns: list) -> ValidationReport:
    """The report of a GX result, with its HTML page."""
    _annotate(result, data_name)
    report = build_report(result, suite, data_name, columns)
    report.html = render_html(result, report)
    return report


def validate_dataframe(
    df: pd.DataFrame,
    suite_name: str,
    data_name: str,
    gx_project_dir: Path | None = None,
    expectation_parameters: dict | None = None,
) -> ValidationReport:
    """Validate ``df`` against the suite ``suite_name`` and return the report (never raises on failures).

    ``data_name`` names the data in messages and HTML (a table or file). The suite is read from
    ``<gx_project_dir>/gx/expectations/<suite_name>.json`` (default: the settings' ``gx_project_dir``);
    nothing is written into the GX project. Raises :class:`SuiteNotFoundError` for an unknown suite.
    """
    # Fail fast on an unknown suite, before paying for the GX import.
    suite_path(suite_name, gx_project_dir)
    params = _parameters(expectation_parameters)
    with LOCK:
        context, batch_definition = gx_context()
        suite = load_suite(context, suite_name, gx_project_dir)
        batch = batch_definition.get_batch(batch_parameters={"dataframe": _normalise(df)})
        result = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters=params)
    return _finish(result, suite, data_name, list(df.columns))


def validate_parquet(
    path: str | Path,
    suite_name: str,
    data_name: str | None = None,
    gx_project_dir: Path | None = None,
    expectation_parameters: dict | None = None,
) -> ValidationReport:
    """Read a Parquet file (local path or fsspec URL) with pandas and validate it like a dataframe."""
    df = pd.read_parquet(path)
    return validate_dataframe(
        df,
        suite_name,
        data_name or str(path),
        gx_project_dir=gx_project_dir,
        expectation_parameters=expectation_parameters,
    )


def validate_table(
    warehouse_uri: str,
    table: str,
    suite_name: str,
    data_name: str | None = None,
    gx_project_dir: Path | None = None,
    expectation_parameters: dict | None = None,
) -> ValidationReport:
    """Validate a warehouse table (``schema.table``) against a suite; the report is as for dataframes.

    Where the expectations run is the warehouse's choice (:attr:`Warehouse.gx_pandas`): on a pandas
    dataframe of the table, or as SQL on the warehouse's GX datasource. Credentials are the warehouse's
    own (never in a message).
    """
    wh = parse_warehouse(warehouse_uri)
    if wh.gx_pandas:
        return validate_dataframe(
            wh.read_table(table),
            suite_name,
            data_name or table,
            gx_project_dir=gx_project_dir,
            expectation_parameters=expectation_parameters,
        )
    return _validate_sql(wh, table, suite_name, data_name or table, gx_project_dir, expectation_parameters)


def _validate_sql(
    wh: Warehouse,
    table: str,
    suite_name: str,
    data_name: str,
    gx_project_dir: Path | None,
    expectation_parameters: dict | None,
) -> ValidationReport:
    """Run a suite as SQL on the warehouse's GX datasource (its batch definition and dialect)."""
    suite_path(suite_name, gx_project_dir)
    columns = wh.table_columns(table)  # also a clear "not found" before GX's own errors
    params = _parameters(expectation_parameters)
    with LOCK:
        context, _ = gx_context()
        batch_definition = wh.gx_batch_definition(context, table)
        suite = load_suite(context, suite_name, gx_project_dir)
        for expectation in suite.expectations:
            wh.gx_adapt_expectation(expectation)
        try:
            batch = batch_definition.get_batch()
            result = batch.validate(suite, result_format=_RESULT_FORMAT, expectation_parameters=params)
        except Exception as exc:  # noqa: BLE001 - GX and SQLAlchemy raise many kinds; name the table once
            raise WarehouseError(f"validating {table} in {wh.uri} failed: {type(exc).__name__}: {exc}") from exc
    return _finish(result, suite, data_name, columns)
