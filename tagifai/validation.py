"""Data validation with Great Expectations (GX 1.x) suites kept as JSON in the repository.

The suites (``projects``, ``tags``, ``labeled_projects``) live in the file-based GX project under
``great_expectations/gx/expectations/<suite>.json``; that folder is what ``gx.get_context(mode="file",
project_root_dir="great_expectations")`` loads. At run time nothing is written there: the suites are
read from their JSON files into one in-memory (ephemeral) GX context per process and validated against
a pandas batch of the dataframe. (GX 1.24's SQL datasource on DuckDB fails every expectation, see
DESIGN.md, so tables are read into pandas first.)

Validating never raises on failed expectations: it returns a :class:`ValidationReport`; callers decide
with :meth:`ValidationReport.raise_for_failures`. ``great_expectations`` is imported lazily (about 8 s),
only when a validation actually runs.

Two normalisations are applied to a shallow copy before validating: timezone-aware datetime columns
are converted to naive UTC (GX cannot compare aware timestamps with the suites' naive bounds), and the
suite parameter ``max_created_on`` defaults to now (UTC) plus one day.
"""

from __future__ import annotations

import datetime as _dt
import html as _html
import json
import math
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

#: How many sample unexpected values a failure keeps.
SAMPLE_SIZE = 5

_CONTEXT_LOCK = threading.RLock()
_CONTEXT: Any = None  # (EphemeralDataContext, BatchDefinition), built on first use


class DataValidationError(ValueError):
    """Data failed its expectation suite; the message names the data, the suite and each failure."""


class SuiteNotFoundError(LookupError):
    """No expectation suite of that name in the GX project."""


@dataclass
class ValidationReport:
    """The outcome of validating one dataframe against one suite."""

    suite: str
    data_name: str
    success: bool
    evaluated: int
    successful: int
    unsuccessful: int
    success_percent: float
    failures: list[dict] = field(default_factory=list)
    html: str = ""

    def to_metrics(self) -> dict:
        """The numbers for a KFP Metrics artifact."""
        return {
            "evaluated": self.evaluated,
            "successful": self.successful,
            "unsuccessful": self.unsuccessful,
            "success_percent": self.success_percent,
        }

    def summary(self) -> str:
        """One line: data, suite and counts."""
        status = "passed" if self.success else "FAILED"
        return (
            f"validation of {self.data_name!r} against suite {self.suite!r} {status}: "
            f"{self.successful}/{self.evaluated} expectations met ({self.success_percent:.1f}%)"
        )

    def failure_message(self) -> str:
        """A multi-line message: the data, the suite and every failed expectation with samples."""
        lines = [
            f"Data validation failed for {self.data_name!r} against suite {self.suite!r}: "
            f"{self.unsuccessful} of {self.evaluated} expectations failed "
            f"({self.success_percent:.1f}% passed)."
        ]
        lines += [f"  - {describe_failure(f)}" for f in self.failures]
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        """Raise :class:`DataValidationError` when any expectation failed."""
        if not self.success:
            raise DataValidationError(self.failure_message())


# --------------------------------------------------------------------------------------------------
# suites


def _expectations_dir(gx_project_dir: Path | None) -> Path:
    if gx_project_dir is None:
        from tagifai.config import get_settings

        gx_project_dir = get_settings().gx_project_dir
    root = Path(gx_project_dir)
    # Accept the project root (holding gx/) or the gx/ folder itself.
    if (root / "great_expectations.yml").exists():
        return root / "expectations"
    return root / "gx" / "expectations"


def available_suites(gx_project_dir: Path | None = None) -> list[str]:
    """Names of the expectation suites in the GX project (its ``gx/expectations/*.json``)."""
    folder = _expectations_dir(gx_project_dir)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def suite_path(suite_name: str, gx_project_dir: Path | None = None) -> Path:
    """The JSON file of a suite; :class:`SuiteNotFoundError` (listing the suites) if there is none."""
    folder = _expectations_dir(gx_project_dir)
    path = folder / f"{suite_name}.json"
    if not path.is_file():
        names = available_suites(gx_project_dir)
        raise SuiteNotFoundError(
            f"no expectation suite {suite_name!r} in {folder}; available suites: "
            f"{', '.join(names) if names else '(none)'}"
        )
    return path


def _load_suite(context: Any, suite_name: str, gx_project_dir: Path | None):
    """Read a suite from its JSON file, through GX's own (de)serialisation, without storing it."""
    path = suite_path(suite_name, gx_project_dir)
    store = context.expectations_store
    suite = store.deserialize_suite_dict(store.deserialize(path.read_text(encoding="utf-8")))
    if suite.name != suite_name:
        raise SuiteNotFoundError(f"{path} holds suite {suite.name!r}, expected {suite_name!r}")
    return suite


# --------------------------------------------------------------------------------------------------
# the GX context (one per process)


def _context():
    """The process-wide ephemeral GX context and its pandas dataframe batch definition."""
    global _CONTEXT
    with _CONTEXT_LOCK:
        if _CONTEXT is None:
            import great_expectations as gx
            from great_expectations.data_context.types.base import (
                DataContextConfig,
                InMemoryStoreBackendDefaults,
                ProgressBarsConfig,
            )

            config = DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                analytics_enabled=False,
                progress_bars=ProgressBarsConfig(globally=False),
            )
            context = gx.get_context(mode="ephemeral", project_config=config)
            asset = context.data_sources.add_pandas("tagifai_pandas").add_dataframe_asset("dataframe")
            batch_definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")
            _CONTEXT = (context, batch_definition)
        return _CONTEXT


# --------------------------------------------------------------------------------------------------
# validation


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    """A shallow copy with timezone-aware datetime columns as naive UTC (GX compares naive bounds)."""
    aware = [c for c in df.columns if isinstance(df[c].dtype, pd.DatetimeTZDtype)]
    if not aware:
        return df
    out = df.copy(deep=False)
    for c in aware:
        out[c] = out[c].dt.tz_convert("UTC").dt.tz_localize(None)
    return out


def default_expectation_parameters() -> dict:
    """Runtime values of the suites' ``$PARAMETER`` kwargs."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    return {"max_created_on": now + _dt.timedelta(days=1)}


def validate_dataframe(
    df: pd.DataFrame,
    suite_name: str,
    data_name: str,
    gx_project_dir: Path | None = None,
    docs_dir: Path | None = None,
    expectation_parameters: dict | None = None,
) -> ValidationReport:
    """Validate ``df`` against the suite ``suite_name`` and return the report (never raises on failures).

    ``data_name`` names the data in messages and HTML (a table or file). The suite is read from
    ``<gx_project_dir>/gx/expectations/<suite_name>.json`` (default: the settings' ``gx_project_dir``);
    nothing is written into the GX project. With ``docs_dir``, a GX Data Docs site for this validation
    (``index.html`` and its pages) is built there. Raises :class:`SuiteNotFoundError` for an unknown
    suite.
    """
    # Fail fast on an unknown suite, before paying for the GX import.
    suite_path(suite_name, gx_project_dir)
    params = {**default_expectation_parameters(), **(expectation_parameters or {})}
    with _CONTEXT_LOCK:
        context, batch_definition = _context()
        suite = _load_suite(context, suite_name, gx_project_dir)
        batch = batch_definition.get_batch(batch_parameters={"dataframe": _normalise(df)})
        result = batch.validate(
            suite,
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
            expectation_parameters=params,
        )
    _annotate(result, data_name)
    report = _report(result, suite, data_name, list(df.columns))
    report.html = render_html(result, report)
    if docs_dir is not None:
        build_data_docs(result, suite, Path(docs_dir), data_name)
    return report


def validate_parquet(
    path: str | Path,
    suite_name: str,
    data_name: str | None = None,
    gx_project_dir: Path | None = None,
    docs_dir: Path | None = None,
    expectation_parameters: dict | None = None,
) -> ValidationReport:
    """Read a Parquet file (local path or fsspec URL) with pandas and validate it like a dataframe."""
    df = pd.read_parquet(path)
    return validate_dataframe(
        df,
        suite_name,
        data_name or str(path),
        gx_project_dir=gx_project_dir,
        docs_dir=docs_dir,
        expectation_parameters=expectation_parameters,
    )


def validate_table(
    warehouse_uri: str,
    table: str,
    suite_name: str,
    data_name: str | None = None,
    gx_project_dir: Path | None = None,
    docs_dir: Path | None = None,
    expectation_parameters: dict | None = None,
) -> ValidationReport:
    """Validate a warehouse table (``schema.table``) against a suite; the report is as for dataframes.

    DuckDB: the table is read into pandas and validated as a dataframe (GX 1.24's SQL datasource on
    DuckDB fails every expectation, see DESIGN.md). BigQuery: GX's BigQuery SQL datasource
    (sqlalchemy-bigquery) runs the expectations as queries in BigQuery, nothing is downloaded; the
    suites' pandas type names are checked as BigQuery column types (:data:`BIGQUERY_TYPE_NAMES`).
    Credentials: those of :mod:`tagifai.bigquery` (key file path or ADC; never in a message).
    """
    from tagifai.warehouse import WarehouseError, parse_warehouse, read_table

    wh = parse_warehouse(warehouse_uri)
    if wh.kind != "bigquery":
        return validate_dataframe(
            read_table(warehouse_uri, table),
            suite_name,
            data_name or table,
            gx_project_dir=gx_project_dir,
            docs_dir=docs_dir,
            expectation_parameters=expectation_parameters,
        )
    suite_path(suite_name, gx_project_dir)
    from tagifai import bigquery

    data_name = data_name or table
    columns = bigquery.table_columns(wh, table)  # also a clear "not found" before GX's own errors
    params = {**default_expectation_parameters(), **(expectation_parameters or {})}
    with _CONTEXT_LOCK:
        context, _ = _context()
        batch_definition = _bigquery_batch_definition(context, wh, table)
        suite = _load_suite(context, suite_name, gx_project_dir)
        for expectation in suite.expectations:
            _bigquery_types(expectation)
        try:
            batch = batch_definition.get_batch()
            result = batch.validate(
                suite,
                result_format={"result_format": "SUMMARY", "partial_unexpected_count": 20},
                expectation_parameters=params,
            )
        except Exception as exc:  # noqa: BLE001 - GX and SQLAlchemy raise many kinds; name the table once
            raise WarehouseError(f"validating {table} in {wh.uri} failed: {type(exc).__name__}: {exc}") from exc
    _annotate(result, data_name)
    report = _report(result, suite, data_name, columns)
    report.html = render_html(result, report)
    if docs_dir is not None:
        build_data_docs(result, suite, Path(docs_dir), data_name)
    return report


#: How the suites' pandas dtype names read as BigQuery column types (sqlalchemy-bigquery type names)
#: when a suite runs on GX's BigQuery SQL datasource. Names not listed are kept as they are, so a
#: suite may also name SQL types directly.
BIGQUERY_TYPE_NAMES: dict[str, list[str]] = {
    **{n: ["INTEGER"] for n in ("int64", "int32", "int16", "int8", "uint64", "uint32", "uint16", "uint8",
                                "Int64Dtype", "Int32Dtype", "Int16Dtype", "Int8Dtype")},
    **{n: ["FLOAT"] for n in ("float64", "float32", "Float64Dtype", "Float32Dtype")},
    **{n: ["BOOLEAN"] for n in ("bool", "boolean", "BooleanDtype")},
    **{n: ["STRING"] for n in ("str", "string", "object", "StringDtype")},
    **{f"datetime64[{u}]": ["TIMESTAMP", "DATETIME"] for u in ("ns", "us", "ms", "s")},
}


def _bigquery_types(expectation: Any) -> None:
    """Rewrite the type names of a type expectation (in place) for the BigQuery dialect."""
    if hasattr(expectation, "type_list") and expectation.type_list:
        names: list[str] = []
        for name in expectation.type_list:
            for mapped in BIGQUERY_TYPE_NAMES.get(name, [name]):
                if mapped not in names:
                    names.append(mapped)
        expectation.type_list = names
    elif getattr(expectation, "type_", None) in BIGQUERY_TYPE_NAMES:
        expectation.type_ = BIGQUERY_TYPE_NAMES[expectation.type_][0]


def _bigquery_batch_definition(context: Any, wh: Any, table: str):
    """The whole-table batch definition of ``table`` on the BigQuery datasource of ``wh`` (made once)."""
    import hashlib

    from tagifai import bigquery

    connection_string = bigquery.gx_connection_string(wh)
    asset_args = bigquery.gx_table_asset(wh, table)
    name = "tagifai_bigquery_" + hashlib.sha256(connection_string.encode()).hexdigest()[:12]
    try:
        datasource = context.data_sources.get(name)
    except (KeyError, ValueError, LookupError):
        datasource = None
    if datasource is None:
        datasource = context.data_sources.add_bigquery(name, connection_string=connection_string)
    asset = next((a for a in datasource.assets if a.name == asset_args["name"]), None)
    if asset is None:
        try:
            asset = datasource.add_table_asset(**asset_args)
        except Exception as exc:  # noqa: BLE001 - GX's TestConnectionError and friends
            from tagifai.warehouse import WarehouseError

            raise WarehouseError(
                f"Great Expectations cannot read {bigquery.table_ref(wh, table).id}: {type(exc).__name__}: {exc}"
            ) from exc
    existing = [d for d in asset.batch_definitions if d.name == "whole_table"]
    return existing[0] if existing else asset.add_batch_definition_whole_table("whole_table")


# --------------------------------------------------------------------------------------------------
# results -> report


def _jsonable(value: Any) -> Any:
    """Plain JSON-friendly values (timestamps as ISO strings, NaN/NaT as None)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "to_json_dict"):
        return _jsonable(value.to_json_dict())
    return str(value)


def _exception_message(info: Any) -> str | None:
    """The first exception message of a result (GX nests them per metric)."""
    if not info:
        return None
    if isinstance(info, dict):
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "raised an exception")
        for sub in info.values():
            msg = _exception_message(sub) if isinstance(sub, dict) else None
            if msg:
                return msg
    return None


def _samples(result: dict) -> list:
    """A few distinct unexpected values, in row order (a dict of the columns for multi-column ones)."""
    values = list(result.get("partial_unexpected_list") or [])
    if not values:
        counts = result.get("partial_unexpected_counts") or []
        values = [c.get("value") for c in counts if isinstance(c, dict)]
    out: list = []
    for v in values:
        v = _jsonable(v)
        if v not in out:
            out.append(v)
        if len(out) >= SAMPLE_SIZE:
            break
    return out


def _failure(evr: Any, data_columns: list) -> dict:
    config = evr.expectation_config
    kwargs = {k: _jsonable(v) for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    columns = kwargs.get("column_list") or ([kwargs["column"]] if "column" in kwargs else None)
    if columns is None and "column_set" in kwargs:
        columns = list(kwargs["column_set"])
    result = evr.result or {}
    details = result.get("details") or {}
    missing = None
    if isinstance(details, dict) and isinstance(details.get("mismatched"), dict):
        missing = details["mismatched"].get("missing")
    if missing is None and columns and config.type != "expect_table_columns_to_match_set":
        absent = [c for c in columns if c not in data_columns]
        missing = absent or None
    return {
        "expectation": config.type,
        "column": kwargs.get("column"),
        "columns": columns,
        "kwargs": kwargs,
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_percent": _jsonable(result.get("unexpected_percent")),
        "element_count": result.get("element_count"),
        "sample_unexpected": _samples(result),
        "observed_value": _jsonable(result.get("observed_value")),
        "missing_columns": missing,
        "exception": _exception_message(evr.exception_info),
        "notes": _jsonable(getattr(config, "notes", None)),
    }


def describe_failure(f: dict) -> str:
    """One line for one failed expectation."""
    if f.get("column"):
        where = f"column {f['column']!r}"
    elif f.get("columns"):
        where = "columns " + ", ".join(repr(c) for c in f["columns"])
    else:
        where = "table"
    shown = {k: v for k, v in f["kwargs"].items() if k not in ("column", "column_list", "column_set")}
    text = f"{f['expectation']} on {where}"
    if shown:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
    text += ": "
    if f.get("missing_columns"):
        text += f"missing column(s) {', '.join(map(repr, f['missing_columns']))}"
        if f.get("observed_value") is not None:
            text += f"; observed columns {_short(f['observed_value'])}"
        return text
    if f.get("exception"):
        text += f"could not be evaluated: {f['exception']}"
    elif f.get("unexpected_count") is not None:
        pct = f.get("unexpected_percent")
        text += f"{f['unexpected_count']} unexpected value(s)"
        if pct is not None:
            text += f" ({pct:.2f}% of {f.get('element_count')} rows)"
        if f.get("sample_unexpected"):
            text += f"; sample: {', '.join(_short(v) for v in f['sample_unexpected'])}"
    elif f.get("observed_value") is not None:
        text += f"observed {_short(f['observed_value'])}"
    else:
        text = text.rstrip(": ") + ": failed"
    return text


def _short(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _report(result: Any, suite: Any, data_name: str, data_columns: list) -> ValidationReport:
    stats = result.statistics or {}
    # GX returns results grouped by metric; report failures in the suite's (JSON file's) order.
    order = {e.id: i for i, e in enumerate(suite.expectations)}
    failed = sorted(
        (evr for evr in result.results if not evr.success),
        key=lambda evr: order.get(evr.expectation_config.id, len(order)),
    )
    failures = [_failure(evr, data_columns) for evr in failed]
    return ValidationReport(
        suite=suite.name,
        data_name=data_name,
        success=bool(result.success),
        evaluated=int(stats.get("evaluated_expectations", len(result.results))),
        successful=int(stats.get("successful_expectations", 0)),
        unsuccessful=int(stats.get("unsuccessful_expectations", len(failures))),
        success_percent=float(stats.get("success_percent") or 0.0),
        failures=failures,
    )


def _annotate(result: Any, data_name: str) -> None:
    """Name the run and the data asset after ``data_name`` (shown by GX's renderers and Data Docs)."""
    from great_expectations.core.run_identifier import RunIdentifier

    result.meta["run_id"] = RunIdentifier(
        run_name=data_name, run_time=_dt.datetime.now(_dt.timezone.utc)
    )
    spec = dict(result.meta.get("batch_spec") or {})
    spec["data_asset_name"] = data_name
    result.meta["batch_spec"] = spec


# --------------------------------------------------------------------------------------------------
# HTML


_FALLBACK_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5rem}table{border-collapse:collapse;margin:.5rem 0}
td,th{border:1px solid #ccc;padding:.25rem .5rem;vertical-align:top;text-align:left}
.tagifai-summary{padding:.5rem 1rem;margin-bottom:1rem;border-left:4px solid #888}
.tagifai-ok{border-color:#2a2}.tagifai-fail{border-color:#c22}
"""


def render_html(result: Any, report: ValidationReport) -> str:
    """One HTML page of the validation result, rendered by GX (own table if GX's renderer fails).

    GX's page carries its own styles inline; Bootstrap and icons come from CDNs when online, and a
    small inline stylesheet keeps it readable offline.
    """
    try:
        from great_expectations.render.renderer import ValidationResultsPageRenderer
        from great_expectations.render.view import DefaultJinjaPageView

        document = ValidationResultsPageRenderer().render(result)
        page = DefaultJinjaPageView().render(document, template="page_minimal.j2")
    except Exception as exc:  # noqa: BLE001 - any renderer failure falls back to a plain page
        return _fallback_html(report, note=f"GX renderer failed: {exc}")
    title = _html.escape(report.summary())
    extra = f"<style>{_FALLBACK_CSS}</style>"
    banner = (
        f'<div class="tagifai-summary {"tagifai-ok" if report.success else "tagifai-fail"}">'
        f"<strong>{title}</strong></div>"
    )
    # One title; no links into a Data Docs site that an artifact does not have.
    page = re.sub(r"<title>[^<]*</title>", "", page)
    page = page.replace("<head>", f"<head>\n    <title>{title}</title>", 1)
    page = re.sub(r'<link rel="shortcut icon"[^>]*>', "", page)
    page = re.sub(r'href="\.\./[^"]*"', 'href="#"', page)
    page = page.replace("</head>", extra + "</head>", 1)
    page = page.replace('<div class="container-fluid', banner + '<div class="container-fluid', 1)
    return page


def _fallback_html(report: ValidationReport, note: str = "") -> str:
    esc = _html.escape
    rows = "".join(
        "<tr>"
        f"<td>{esc(f['expectation'])}</td><td>{esc(', '.join(map(str, f.get('columns') or [])))}</td>"
        f"<td>{esc(json.dumps(f['kwargs'], default=str))}</td>"
        f"<td>{esc(str(f.get('unexpected_count')))}</td>"
        f"<td>{esc(', '.join(_short(v) for v in f.get('sample_unexpected') or []))}</td>"
        f"<td>{esc(f.get('exception') or '')}</td>"
        "</tr>"
        for f in report.failures
    )
    table = (
        "<table><tr><th>expectation</th><th>column(s)</th><th>kwargs</th><th>unexpected</th>"
        f"<th>sample</th><th>error</th></tr>{rows}</table>"
        if rows
        else "<p>All expectations met.</p>"
    )
    metrics = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in report.to_metrics().items())
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(report.summary())}</title>"
        f"<style>{_FALLBACK_CSS}</style></head><body>"
        f"<div class='tagifai-summary {'tagifai-ok' if report.success else 'tagifai-fail'}'>"
        f"<strong>{esc(report.summary())}</strong></div><table>{metrics}</table>{table}"
        f"{f'<p><small>{esc(note)}</small></p>' if note else ''}</body></html>"
    )


def build_data_docs(result: Any, suite: Any, docs_dir: Path, data_name: str) -> Path:
    """Build a GX Data Docs site for one validation result into ``docs_dir``; return its index.html.

    Uses a throw-away in-memory context so the site holds only this suite and this result.
    """
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    docs_dir = Path(docs_dir).resolve()
    docs_dir.mkdir(parents=True, exist_ok=True)
    site = {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
    }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={"tagifai": site},
    )
    context = gx.get_context(mode="ephemeral", project_config=config)
    store = context.expectations_store
    context.suites.add(store.deserialize_suite_dict(store.deserialize(json.dumps(suite.to_json_dict()))))
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=result.meta["run_id"],
        batch_identifier=_slug(data_name),
    )
    context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=["tagifai"])
    return docs_dir / "index.html"


def _slug(text: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
    return keep.strip("_")[:100] or "data"
