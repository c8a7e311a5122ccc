"""Failed expectations as plain data: one dict a failure, and one line of text for it.

Works on GX's ``ExpectationValidationResult`` objects only through their attributes, so this module
never imports great_expectations.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from typing import Any

import pandas as pd

#: How many sample unexpected values a failure keeps.
SAMPLE_SIZE = 5


def jsonable(value: Any) -> Any:
    """Plain JSON-friendly values (timestamps as ISO strings, NaN/NaT as None)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [jsonable(v) for v in value]
    if value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, (pd.Timestamp, _dt.datetime, _dt.date)):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "to_json_dict"):
        return jsonable(value.to_json_dict())
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
        v = jsonable(v)
        if v not in out:
            out.append(v)
        if len(out) >= SAMPLE_SIZE:
            break
    return out


def _missing_columns(config: Any, result: dict, columns: list | None, data_columns: list) -> list | None:
    """The columns an expectation names that the data does not have (None when all are there)."""
    details = result.get("details") or {}
    if isinstance(details, dict) and isinstance(details.get("mismatched"), dict):
        missing = details["mismatched"].get("missing")
        if missing is not None:
            return missing
    if columns and config.type != "expect_table_columns_to_match_set":
        return [c for c in columns if c not in data_columns] or None
    return None


def failure(evr: Any, data_columns: list) -> dict:
    """One failed expectation (an ``ExpectationValidationResult``) as a JSON-friendly dict."""
    config = evr.expectation_config
    kwargs = {k: jsonable(v) for k, v in config.kwargs.items() if k not in ("batch_id", "result_format")}
    columns = kwargs.get("column_list") or ([kwargs["column"]] if "column" in kwargs else None)
    if columns is None and "column_set" in kwargs:
        columns = list(kwargs["column_set"])
    result = evr.result or {}
    return {
        "expectation": config.type,
        "column": kwargs.get("column"),
        "columns": columns,
        "kwargs": kwargs,
        "unexpected_count": result.get("unexpected_count"),
        "unexpected_percent": jsonable(result.get("unexpected_percent")),
        "element_count": result.get("element_count"),
        "sample_unexpected": _samples(result),
        "observed_value": jsonable(result.get("observed_value")),
        "missing_columns": _missing_columns(config, result, columns, data_columns),
        "exception": _exception_message(evr.exception_info),
        "notes": jsonable(getattr(config, "notes", None)),
    }


def short(value: Any, limit: int = 120) -> str:
    """A value as short text (JSON, or the repr of a string), cut at ``limit`` characters."""
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _where(f: dict) -> str:
    if f.get("column"):
        return f"column {f['column']!r}"
    if f.get("columns"):
        return "columns " + ", ".join(repr(c) for c in f["columns"])
    return "table"


def _outcome(f: dict) -> str:
    """What went wrong, after the expectation's name (empty when nothing more is known)."""
    if f.get("exception"):
        return f"could not be evaluated: {f['exception']}"
    if f.get("unexpected_count") is not None:
        text = f"{f['unexpected_count']} unexpected value(s)"
        if f.get("unexpected_percent") is not None:
            text += f" ({f['unexpected_percent']:.2f}% of {f.get('element_count')} rows)"
        if f.get("sample_unexpected"):
            text += f"; sample: {', '.join(short(v) for v in f['sample_unexpected'])}"
        return text
    if f.get("observed_value") is not None:
        return f"observed {short(f['observed_value'])}"
    return ""


def describe_failure(f: dict) -> str:
    """One line for one failed expectation."""
    shown = {k: v for k, v in f["kwargs"].items() if k not in ("column", "column_list", "column_set")}
    text = f"{f['expectation']} on {_where(f)}"
    if shown:
        text += " (" + ", ".join(f"{k}={v!r}" for k, v in shown.items()) + ")"
    if f.get("missing_columns"):
        text += f": missing column(s) {', '.join(map(repr, f['missing_columns']))}"
        if f.get("observed_value") is not None:
            text += f"; observed columns {short(f['observed_value'])}"
        return text
    outcome = _outcome(f)
    return f"{text}: {outcome}" if outcome else f"{text}: failed"
