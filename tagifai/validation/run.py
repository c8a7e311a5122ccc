"""Running a suite: on a dataframe, a Parquet file, or a warehouse table.

Validating never raises on failed expectations: it returns a :class:`ValidationReport`; callers decide
with :meth:`ValidationReport.raise_for_failures`.

A dataframe is validated as a pandas batch. A warehouse table is validated where its backend says
(:attr:`tagifai.warehouse.Warehouse.gx_pandas`): DuckDB reads it into pandas first (GX 1.24's SQL
datasource on DuckDB fails every expectation with ``MetricResolutionError``); BigQuery runs the
expectations as SQL on GX's BigQuery datasource, nothing is downloaded.

Where the suite's expectation types allow it (:func:`tagifai.validation.sql.supports`), DuckDB tables,
Parquet files and dataframes are validated as SQL in DuckDB (:mod:`.sql`: GX's semantics, no GX import,
no copy of the table in pandas); ``engine="gx"`` (or ``TAGIFAI_VALIDATION_ENGINE=gx``) runs GX instead.

Two normalisations are applied before validating a dataframe (on a shallow copy): timezone-aware
datetime columns are converted to naive UTC (GX cannot compare aware timestamps with the suites' naive
bounds), and the suite parameter ``max_created_on`` defaults to now (UTC) plus one day.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path
from typing import Any

import pandas as pd

from tagifai.validation.context import LOCK, gx_context
from tagifai.validation.html import render_html, render_sql_page
from tagifai.validation.report import ValidationReport, build_report
from tagifai.validation.suites import load_suite, suite_path
from tagifai.warehouse import Warehouse, WarehouseError, parse_warehouse

#: The engines: ``auto`` (SQL in DuckDB where the suite allows, GX otherwise), ``sql``, ``gx``.
ENGINES = ("auto", "sql", "gx")
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


def engine_of(engine: str | None = None) -> str:
    """The engine asked for: the argument, else ``TAGIFAI_VALIDATION_ENGINE``, else ``auto`` (case and
    spaces ignored; blank is ``auto``). The setting ``validation_engine`` of :class:`tagifai.config.Settings`
    declares the variable and accepts the same values (a test keeps them in step); it is read here, from the
    environment, so validating needs no settings object."""
    chosen = (engine or os.environ.get("TAGIFAI_VALIDATION_ENGINE") or "").strip().lower() or "auto"
    if chosen not in ENGINES:
        raise ValueError(f"validation engine {chosen!r} is not one of {', '.join(ENGINES)} (TAGIFAI_VALIDATION_ENGINE)")
    return chosen


def _sql_suite(suite_name: str, gx_project_dir: Path | None, engine: str | None) -> dict | None:
    """The suite's JSON when it runs as SQL, None when GX runs it."""
    chosen = engine_of(engine)
    if chosen == "gx":
        return None
    from tagifai.validation.sql import supports

    data = json.loads(suite_path(suite_name, gx_project_dir).read_text(encoding="utf-8"))
    if supports(data):
        return data
    if chosen == "sql":
        raise ValueError(f"suite {suite_name!r} holds an expectation the SQL engine does not run; use engine 'gx'")
    return None


def _run_sql(source, data: dict, data_name: str, params: dict) -> ValidationReport:
    """A suite's report from the SQL engine, with its HTML page."""
    from tagifai.validation.sql import run_suite, suite_of

    suite = suite_of(data)
    result = run_suite(source, suite, params)
    report = build_report(result, suite, data_name, source.columns)
    report.html = render_sql_page(result, report)
    return report


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
    engine: str | None = None,
) -> ValidationReport:
    """Validate ``df`` against the suite ``suite_name`` and return the report (never raises on failures).

    ``data_name`` names the data in messages and HTML (a table or file). The suite is read from
    ``<gx_project_dir>/gx/expectations/<suite_name>.json`` (default: the settings' ``gx_project_dir``);
    nothing is written into the GX project. Raises :class:`SuiteNotFoundError` for an unknown suite.
    ``engine``: see :func:`engine_of`.
    """
    # Fail fast on an unknown suite, before paying for the GX import.
    suite_path(suite_name, gx_project_dir)
    params = _parameters(expectation_parameters)
    data = _sql_suite(suite_name, gx_project_dir, engine)
    if data is not None:
        import duckdb

        from tagifai.validation.sql import frame_source

        with duckdb.connect() as con:
            con.execute("SET TimeZone = 'UTC'")
            return _run_sql(frame_source(con, _normalise(df)), data, data_name, params)
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
    engine: str | None = None,
) -> ValidationReport:
    """Read a Parquet file (local path or fsspec URL) with pandas and validate it like a dataframe."""
    df = pd.read_parquet(path)
    return validate_dataframe(
        df,
        suite_name,
        data_name or str(path),
        gx_project_dir=gx_project_dir,
        expectation_parameters=expectation_parameters,
        engine=engine,
    )


def validate_table(
    warehouse_uri: str,
    table: str,
    suite_name: str,
    data_name: str | None = None,
    gx_project_dir: Path | None = None,
    expectation_parameters: dict | None = None,
    engine: str | None = None,
) -> ValidationReport:
    """Validate a warehouse table (``schema.table``) against a suite; the report is as for dataframes.

    On DuckDB the SQL engine runs in the warehouse file itself (read-only), unless ``engine`` (see
    :func:`engine_of`) says GX. GX runs where the warehouse says (:attr:`Warehouse.gx_pandas`): on a
    pandas dataframe of the table, or as SQL on the warehouse's GX datasource (BigQuery). Credentials
    are the warehouse's own (never in a message).
    """
    wh = parse_warehouse(warehouse_uri)
    data = _sql_suite(suite_name, gx_project_dir, engine) if _is_duckdb(wh) else None
    if data is not None:
        return _validate_duckdb_table(wh, table, data, data_name or table, _parameters(expectation_parameters))
    if wh.gx_pandas:
        return validate_dataframe(
            wh.read_table(table),
            suite_name,
            data_name or table,
            gx_project_dir=gx_project_dir,
            expectation_parameters=expectation_parameters,
            engine="gx",
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


def _is_duckdb(wh: Warehouse) -> bool:
    """A DuckDB warehouse file (only the warehouse package names its backends' classes)."""
    return wh.uri.startswith("duckdb:") and getattr(wh, "path", None) is not None


def _validate_duckdb_table(wh: Warehouse, table: str, data: dict, data_name: str, params: dict) -> ValidationReport:
    """The SQL engine on a table of a DuckDB warehouse file, opened read-only."""
    import duckdb

    from tagifai.validation.sql import table_source
    from tagifai.warehouse import CURATED_SCHEMA

    if (problem := wh.missing()) is not None:
        raise WarehouseError(problem)
    schema, name = table.split(".", 1) if "." in table else (CURATED_SCHEMA, table)
    relation = f'"{schema}"."{name}"'
    with duckdb.connect(str(wh.path), read_only=True) as con:
        con.execute("SET TimeZone = 'UTC'")
        try:
            source = table_source(con, relation)
        except duckdb.CatalogException as exc:
            raise WarehouseError(f"table {schema}.{name} not found in {wh.path}: {exc}") from exc
        return _run_sql(source, data, data_name, params)
