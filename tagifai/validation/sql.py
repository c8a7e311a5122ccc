"""The suites' expectations evaluated as SQL in DuckDB, without importing Great Expectations.

Why: a validate task spends nearly all its time starting Python and importing Great Expectations (8 s
here), and on DuckDB GX needs the whole table read into pandas first (GX 1.24's SQL datasource fails
on DuckDB). The expectation types our suites use are simple aggregates, so they run here as SQL in
one or two scans of the table where it lives (a DuckDB table, a Parquet file, a dataframe), with GX's
semantics for a pandas batch: the same successes, unexpected counts, sample values in row order and
observed values. ``tests/unit/test_validation_sql.py`` runs both engines on the real data and on every
kind of bad data and compares them; ``TAGIFAI_VALIDATION_ENGINE=gx`` switches back to GX.

The suites stay GX's JSON files (:mod:`.suites`); a suite holding an expectation type this module does
not know is run by GX (:func:`supports`). ``kwargs`` this module does not know make it refuse, never
guess.

Regular expressions follow Python's ``re.search`` (what GX's pandas batch uses): DuckDB's RE2 decides
printable-ASCII values, where the two agree; any other value (non-ASCII, control characters, newlines)
is checked with Python's ``re``.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: How many unexpected values a result lists (GX's ``partial_unexpected_count`` of our runs).
PARTIAL = 20

_COLUMN_MAP = {
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_unique",
    "expect_column_values_to_be_between",
    "expect_column_values_to_match_regex",
    "expect_column_values_to_be_in_set",
}
_COLUMN_TYPE = {"expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"}
_TABLE = {"expect_table_columns_to_match_set", "expect_table_row_count_to_be_between"}
_MULTI = {"expect_compound_columns_to_be_unique"}
#: The kwargs each type may carry (anything else: the suite is left to GX).
_KWARGS = {
    "expect_table_columns_to_match_set": {"column_set", "exact_match"},
    "expect_table_row_count_to_be_between": {"min_value", "max_value"},
    "expect_column_values_to_not_be_null": {"column"},
    "expect_column_values_to_be_unique": {"column", "mostly"},
    "expect_column_values_to_be_between": {"column", "min_value", "max_value", "mostly"},
    "expect_column_values_to_match_regex": {"column", "regex", "mostly"},
    "expect_column_values_to_be_in_set": {"column", "value_set", "mostly"},
    "expect_column_values_to_be_in_type_list": {"column", "type_list"},
    "expect_column_values_to_be_of_type": {"column", "type_"},
    "expect_compound_columns_to_be_unique": {"column_list", "mostly"},
}
#: GX's order of the kwargs fields (how its results print them).
_KWARG_ORDER = sorted(
    {k for names in _KWARGS.values() for k in names},
    key=lambda k: [
        "column",
        "column_list",
        "column_set",
        "min_value",
        "max_value",
        "value_set",
        "regex",
        "type_",
        "type_list",
        "exact_match",
        "mostly",
    ].index(k),
)
_PRINTABLE_ASCII = "^[\\x20-\\x7e]*$"


def supports(suite: dict) -> bool:
    """Whether every expectation of a suite (its JSON as a dict) can run here."""
    return all(
        e.get("type") in _KWARGS and set(e.get("kwargs") or {}) <= _KWARGS[e["type"]]
        for e in suite.get("expectations", [])
    )


# --- GX-shaped results (what tagifai.validation.report and .failures read) ---------------------------


@dataclass
class Config:
    """An expectation as the suite's JSON holds it (the attributes of GX's ExpectationConfiguration)."""

    type: str
    kwargs: dict
    id: str = ""
    notes: Any = None
    meta: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """One expectation's result (the attributes of GX's ExpectationValidationResult)."""

    expectation_config: Config
    success: bool
    result: dict = field(default_factory=dict)
    exception_info: dict = field(default_factory=dict)


@dataclass
class SuiteResult:
    """A suite's results (the attributes of GX's ExpectationSuiteValidationResult)."""

    success: bool
    results: list[Outcome]
    statistics: dict


@dataclass
class Suite:
    name: str
    expectations: list[Config]


def suite_of(data: dict) -> Suite:
    """A suite's JSON (as a dict) as plain objects."""
    return Suite(
        name=data.get("name", ""),
        expectations=[
            Config(e["type"], dict(e.get("kwargs") or {}), e.get("id") or str(i), e.get("notes"), e.get("meta") or {})
            for i, e in enumerate(data.get("expectations", []))
        ],
    )


# --- the source ---------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Source:
    """Where the rows are: a DuckDB connection, the SQL that names them, their columns and pandas dtypes.

    ``dtypes`` are those the same rows have as a pandas frame (what GX's pandas batch checks types on).
    """

    con: Any
    relation: str
    columns: list[str]
    dtypes: dict[str, Any]


def frame_source(con: Any, df: pd.DataFrame, name: str = "tagifai_validated") -> Source:
    """A dataframe registered in ``con`` (DuckDB scans it in place)."""
    con.register(name, df)
    return Source(con, _q(name), [str(c) for c in df.columns], dict(df.dtypes.items()))


def table_source(con: Any, relation: str) -> Source:
    """A DuckDB table or view; its pandas dtypes from a sample holding, for every column, a NULL and a
    non-NULL value where the table has one (DuckDB's conversion to pandas depends on no more)."""
    described = con.sql(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    columns = [row[0] for row in described]
    parts = [f"(SELECT * FROM {relation} LIMIT 1)"]
    for c in columns:
        parts.append(f"(SELECT * FROM {relation} WHERE {_q(c)} IS NULL LIMIT 1)")
        parts.append(f"(SELECT * FROM {relation} WHERE {_q(c)} IS NOT NULL LIMIT 1)")
    sample = con.sql(" UNION ALL ".join(parts)).df()
    return Source(con, relation, columns, dict(sample.dtypes.items()))


# --- evaluation ----------------------------------------------------------------------------------------


def _resolve(value: Any, params: dict) -> Any:
    if isinstance(value, dict) and "$PARAMETER" in value:
        name = value["$PARAMETER"]
        if name not in params:
            raise KeyError(f"suite parameter {name!r} has no value")
        return params[name]
    return value


def _bound(value: Any, dtype: Any) -> Any:
    """A bound as the column compares: ISO strings become timestamps on datetime columns."""
    if value is None:
        return None
    if pd.api.types.is_datetime64_any_dtype(dtype):
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC").tz_localize(None)
        return ts.to_pydatetime()
    return value


def _plain(value: Any) -> Any:
    """A value fetched from DuckDB as pandas would hold it (timestamps as pandas Timestamps)."""
    if isinstance(value, _dt.datetime):
        return pd.Timestamp(value)
    return value


def _mostly_ok(unexpected: int, nonnull: int, mostly: float | None) -> bool:
    if mostly is None:
        return unexpected == 0
    return nonnull == 0 or (1 - unexpected / nonnull) >= mostly


def _map_result(total: int, nulls: int, unexpected: int, partial: list) -> dict:
    """GX's SUMMARY result of a column map expectation (percentages of the non-null values)."""
    nonnull = total - nulls
    pct = (100.0 * unexpected / nonnull) if nonnull else None
    return {
        "element_count": total,
        "unexpected_count": unexpected,
        "unexpected_percent": pct,
        "partial_unexpected_list": partial,
        "missing_count": nulls,
        "missing_percent": (100.0 * nulls / total) if total else None,
        "unexpected_percent_total": (100.0 * unexpected / total) if total else None,
        "unexpected_percent_nonmissing": pct,
    }


def _type_name(dtype: Any) -> set[str]:
    return {str(dtype), type(dtype).__name__, getattr(dtype, "name", str(dtype))}


def _type_ok(dtype: Any, wanted: list[str]) -> bool:
    names = _type_name(dtype)
    for w in wanted:
        if w in names:
            return True
        if w == "str" and (isinstance(dtype, pd.StringDtype) or str(dtype) == "str"):
            return True
    return False


class _Run:
    def __init__(self, source: Source, params: dict):
        self.s = source
        self.params = params
        self.rel = source.relation
        self.con = source.con
        self.total = int(self.sql(f"SELECT count(*) FROM {self.rel}")[0][0])
        self._nulls: dict[str, int] = {}

    def sql(self, query: str, args: list | None = None) -> list:
        return self.con.execute(query, args or []).fetchall()

    def nulls(self, column: str) -> int:
        if column not in self._nulls:
            counts = self.sql(
                "SELECT " + ", ".join(f"count(*) - count({_q(c)})" for c in self.s.columns) + f" FROM {self.rel}"
            )[0]
            self._nulls.update(dict(zip(self.s.columns, map(int, counts), strict=True)))
        return self._nulls[column]

    def partial(self, where: str, select: str, args: list | None = None) -> list:
        rows = self.sql(f"SELECT {select} FROM {self.rel} WHERE {where} LIMIT {PARTIAL}", args)
        return [_plain(r[0]) if len(r) == 1 else r for r in rows]

    # -- one expectation ---------------------------------------------------------------------------
    def run(self, config: Config) -> Outcome:
        kw = {k: _resolve(config.kwargs[k], self.params) for k in sorted(config.kwargs, key=_KWARG_ORDER.index)}
        # The result names the expectation with its parameters' values, in GX's order of fields.
        config = Config(config.type, kw, config.id, config.notes, config.meta)
        columns = kw.get("column_list") or ([kw["column"]] if "column" in kw else [])
        missing = [c for c in columns if c not in self.s.columns]
        if missing:
            message = f'The column "{missing[0]}" in BatchData does not exist.'
            return Outcome(config, False, {}, {"raised_exception": True, "exception_message": message})
        return getattr(self, config.type)(config, kw)

    def expect_table_columns_to_match_set(self, config: Config, kw: dict) -> Outcome:
        expected, actual = list(kw["column_set"]), self.s.columns
        missing = [c for c in expected if c not in actual]
        unexpected = [c for c in actual if c not in expected]
        exact = kw.get("exact_match", True)
        ok = not missing and (not exact or not unexpected)
        result: dict = {"observed_value": sorted(actual)}  # GX lists them sorted
        if not ok:
            result["details"] = {"mismatched": {"unexpected": unexpected, "missing": missing}}
        return Outcome(config, ok, result)

    def expect_table_row_count_to_be_between(self, config: Config, kw: dict) -> Outcome:
        low, high = kw.get("min_value"), kw.get("max_value")
        ok = (low is None or self.total >= low) and (high is None or self.total <= high)
        return Outcome(config, ok, {"observed_value": self.total})

    def expect_column_values_to_not_be_null(self, config: Config, kw: dict) -> Outcome:
        nulls = self.nulls(kw["column"])
        partial = [None] * min(nulls, PARTIAL)
        result = _map_result(self.total, 0, nulls, partial)
        result["unexpected_percent"] = result["unexpected_percent_total"]
        result["unexpected_percent_nonmissing"] = result["unexpected_percent_total"]
        return Outcome(config, nulls == 0, result)

    def _map(self, config: Config, kw: dict, bad: str, args: list) -> Outcome:
        """A column map expectation whose unexpected rows are ``bad`` (a SQL condition on non-NULL values)."""
        column = kw["column"]
        c = _q(column)
        where = f"{c} IS NOT NULL AND ({bad})"
        unexpected = int(self.sql(f"SELECT count(*) FROM {self.rel} WHERE {where}", args)[0][0])
        partial = self.partial(where, c, args) if unexpected else []
        nulls = self.nulls(column)
        ok = _mostly_ok(unexpected, self.total - nulls, kw.get("mostly"))
        return Outcome(config, ok, _map_result(self.total, nulls, unexpected, partial))

    def expect_column_values_to_be_between(self, config: Config, kw: dict) -> Outcome:
        dtype = self.s.dtypes[kw["column"]]
        c = _q(kw["column"])
        low, high = _bound(kw.get("min_value"), dtype), _bound(kw.get("max_value"), dtype)
        parts, args = [], []
        if low is not None:
            parts.append(f"{c} < ?")
            args.append(low)
        if high is not None:
            parts.append(f"{c} > ?")
            args.append(high)
        return self._map(config, kw, " OR ".join(parts) or "false", args)

    def expect_column_values_to_be_in_set(self, config: Config, kw: dict) -> Outcome:
        values = list(kw["value_set"])
        return self._map(config, kw, f"NOT list_contains(?, {_q(kw['column'])})", [values])

    def expect_column_values_to_match_regex(self, config: Config, kw: dict) -> Outcome:
        column, pattern = kw["column"], kw["regex"]
        c = _q(column)
        compiled = re.compile(pattern)
        text = f"CAST({c} AS VARCHAR)"
        try:  # RE2 decides printable ASCII; Python's re the rest (see the module's docstring)
            self.sql("SELECT regexp_matches('', ?)", [pattern])
            ascii_, ascii_args = f"regexp_matches({text}, ?)", [_PRINTABLE_ASCII]
            re2_bad, re2_args = (
                f"(regexp_matches({text}, ?) AND NOT regexp_matches({text}, ?))",
                [
                    _PRINTABLE_ASCII,
                    pattern,
                ],
            )
            re2_misses, misses_args = f"NOT regexp_matches({text}, ?)", [pattern]
        except Exception:  # noqa: BLE001 - a pattern RE2 cannot compile: Python's re decides every value
            ascii_, ascii_args, re2_bad, re2_args, re2_misses, misses_args = "false", [], "false", [], "false", []
        # One scan: the printable-ASCII values RE2 finds unexpected (counted under NULL) and every other
        # distinct value with its count, which Python's re then decides.
        counts = self.sql(
            f"SELECT CASE WHEN NOT a THEN {c} END AS v, count(*) FROM "
            f"(SELECT {c}, {ascii_} AS a FROM {self.rel} WHERE {c} IS NOT NULL) "
            f"WHERE NOT a OR {re2_misses} GROUP BY v",
            [*ascii_args, *misses_args],
        )
        py_bad = [v for v, _ in counts if v is not None and compiled.search(str(v)) is None]
        bad = set(py_bad)
        unexpected = sum(int(n) for v, n in counts if v is None or v in bad)
        partial: list = []
        if unexpected:
            where, args = f"{c} IS NOT NULL AND ({re2_bad})", re2_args
            if py_bad:
                where, args = f"{c} IS NOT NULL AND ({re2_bad} OR list_contains(?, {c}))", [*re2_args, py_bad]
            partial = self.partial(where, c, args)
        nulls = self.nulls(column)
        ok = _mostly_ok(unexpected, self.total - nulls, kw.get("mostly"))
        return Outcome(config, ok, _map_result(self.total, nulls, unexpected, partial))

    def expect_column_values_to_be_unique(self, config: Config, kw: dict) -> Outcome:
        c = _q(kw["column"])
        dup = f"SELECT {c} FROM {self.rel} WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1"
        unexpected = int(
            self.sql(
                f"SELECT coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {self.rel} "
                f"WHERE {c} IS NOT NULL GROUP BY {c} HAVING count(*) > 1)"
            )[0][0]
        )
        partial = self.partial(f"{c} IN ({dup})", c) if unexpected else []
        nulls = self.nulls(kw["column"])
        ok = _mostly_ok(unexpected, self.total - nulls, kw.get("mostly"))
        return Outcome(config, ok, _map_result(self.total, nulls, unexpected, partial))

    def expect_compound_columns_to_be_unique(self, config: Config, kw: dict) -> Outcome:
        names = list(kw["column_list"])
        cols = ", ".join(_q(n) for n in names)
        # GX's default ignore_row_if for this type: rows whose values are all missing are skipped.
        some = " OR ".join(f"{_q(n)} IS NOT NULL" for n in names)
        groups = f"SELECT {cols}, count(*) AS n FROM {self.rel} WHERE {some} GROUP BY ALL HAVING count(*) > 1"
        unexpected = int(self.sql(f"SELECT coalesce(sum(n), 0) FROM ({groups})")[0][0])
        partial: list = []
        if unexpected:
            match = " AND ".join(f"t.{_q(n)} IS NOT DISTINCT FROM d.{_q(n)}" for n in names)
            rows = self.sql(
                f"SELECT {', '.join('t.' + _q(n) for n in names)} FROM {self.rel} AS t "
                f"WHERE EXISTS (SELECT 1 FROM ({groups}) AS d WHERE {match}) LIMIT {PARTIAL}"
            )
            partial = [dict(zip(names, map(_plain, r), strict=True)) for r in rows]
        all_missing = int(self.sql(f"SELECT count(*) FROM {self.rel} WHERE NOT ({some})")[0][0])
        ok = _mostly_ok(unexpected, self.total - all_missing, kw.get("mostly"))
        result = _map_result(self.total, all_missing, unexpected, partial)
        return Outcome(config, ok, result)

    def _column_type(self, config: Config, kw: dict, wanted: list[str]) -> Outcome:
        dtype = self.s.dtypes[kw["column"]]
        return Outcome(config, _type_ok(dtype, wanted), {"observed_value": str(dtype)})

    def expect_column_values_to_be_in_type_list(self, config: Config, kw: dict) -> Outcome:
        return self._column_type(config, kw, list(kw["type_list"]))

    def expect_column_values_to_be_of_type(self, config: Config, kw: dict) -> Outcome:
        return self._column_type(config, kw, [kw["type_"]])


def run_suite(source: Source, suite: Suite, params: dict) -> SuiteResult:
    """Every expectation of ``suite`` on ``source``; never raises on a failed expectation."""
    run = _Run(source, params)
    results = [run.run(config) for config in suite.expectations]
    good = sum(r.success for r in results)
    n = len(results)
    return SuiteResult(
        success=good == n,
        results=results,
        statistics={
            "evaluated_expectations": n,
            "successful_expectations": good,
            "unsuccessful_expectations": n - good,
            "success_percent": (100.0 * good / n) if n else None,
        },
    )
