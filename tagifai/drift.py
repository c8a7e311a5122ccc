"""Drift of the new rows of ``labeled_projects`` against the champion's training data (Evidently).

The continual-learning loop asks one question before retraining: do the rows that arrived after the
champion was trained look like the rows it was trained on? :func:`drift_against_champion` answers it:

1. reads the curated table and the champion (``<model>@champion``) with its training watermark, the
   run tag ``data_created_on_max`` (the newest ``created_on`` it was trained on);
2. :func:`split_at` the watermark: the *reference* is every row at or before it, the *new* rows the ones
   after it;
3. :func:`detect` runs the checks below and :func:`write_report` writes Evidently's HTML report (self-
   contained: it renders offline) with a summary on top, and the JSON.

The checks (``docs/drift.md`` says where each default comes from):

- ``label``: the raw ``tag`` column, Evidently's categorical drift with its default method (chi-square
  p-value when the reference has <= 1000 rows, Jensen-Shannon distance above);
- ``prediction``: the champion's predicted labels on the new rows against its reference predictions
  (the ``reference_predictions.json`` artifact of its run: its predictions on its own held-out test
  split), same method;
- ``confidence``: the champion's mean confidence (highest class probability) on the new rows against
  the reference's; drifted when it dropped by more than ``confidence_drop``;
- ``text_length``: characters of title + description, Evidently's numerical drift (K-S p-value for a
  reference of <= 1000 rows);
- ``oov``: share of the new rows' tokens that the reference vocabulary lacks, against the same share
  measured on a held-out half of the reference (hand-rolled: Evidently's OOV descriptor needs an NLTK
  corpus download);
- ``domain``: Evidently's text content drift, a domain classifier telling reference from new text;
  drifted when its ROC AUC is above ``domain_auc``.

Only the standard library, numpy and pandas are imported at module level; evidently, mlflow and
scikit-learn inside the functions. Evidently's telemetry is switched off before it is imported
(:data:`TELEMETRY_OPT_OUT`).
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import clean_text, raw_text

__all__ = [
    "CHECKS",
    "REFERENCE_PREDICTIONS",
    "TELEMETRY_OPT_OUT",
    "WATERMARK_TAG",
    "DriftResult",
    "DriftThresholds",
    "detect",
    "drift_against_champion",
    "external_references",
    "split_at",
    "write_report",
]

#: The checks, in report order.
CHECKS: tuple[str, ...] = ("label", "prediction", "confidence", "text_length", "oov", "domain")
#: Run tag (or param) of the champion's training watermark: the ISO ``created_on`` of its newest training row.
WATERMARK_TAG = "data_created_on_max"
#: Artifact of the champion's run: ``{"predicted": [label, ...], "confidence": [float, ...]}`` on its test split.
REFERENCE_PREDICTIONS = "reference_predictions.json"
#: Reference rows the champion predicts when its run has no :data:`REFERENCE_PREDICTIONS` (a seeded sample).
REFERENCE_SAMPLE = 500
#: Fewest rows on each side for the text checks (domain classifier: Evidently trains it on half the rows and
#: scores the other half; OOV: a rate over a handful of rows is noise).
MIN_TEXT_ROWS = 10
#: Environment variables that switch off Evidently's (iterative-telemetry) usage events; set before importing it.
TELEMETRY_OPT_OUT: dict[str, str] = {
    "EVIDENTLY_DISABLE_TELEMETRY": "1",  # evidently.legacy._config
    "DO_NOT_TRACK": "1",  # evidently.telemetry: any value disables its event logger
    "ITERATIVE_DO_NOT_TRACK": "1",  # iterative_telemetry itself
}

#: Evidently's stat tests: how to name them in a reason, and which side of the threshold is drift.
_METHODS: dict[str, tuple[str, str, str]] = {
    # name: (shown as, metrics key, direction: "below" = drift when value < threshold)
    "chisquare": ("chi-square p", "pvalue", "below"),
    "z": ("Z-test p", "pvalue", "below"),
    "ks": ("K-S p", "pvalue", "below"),
    "jensenshannon": ("Jensen-Shannon distance", "jensenshannon", "above"),
    "wasserstein": ("normed Wasserstein distance", "wasserstein", "above"),
    "abs_text_content_drift": ("domain classifier ROC AUC", "auc", "above"),
}


# --------------------------------------------------------------------------- thresholds and result


@dataclass(frozen=True)
class DriftThresholds:
    """Thresholds of the checks. The defaults are Evidently's (and the usual p < 0.05); ``docs/drift.md``."""

    pvalue: float = 0.05  # chi-square, Z and K-S p-values below it are drift
    jensenshannon: float = 0.1  # Jensen-Shannon distances at or above it are drift
    domain_auc: float = 0.55  # domain classifier ROC AUC above it is drift
    oov_increase: float = 0.05  # rise of the out-of-vocabulary token rate (absolute) that is drift
    confidence_drop: float = 0.1  # drop of the champion's mean confidence (absolute) that is drift

    @classmethod
    def from_settings(cls, settings: Any = None) -> DriftThresholds:
        """The ``drift_*`` fields of :class:`tagifai.config.Settings` (``TAGIFAI_DRIFT_*``).

        ``settings`` None: :func:`tagifai.config.get_settings` (the environment)."""
        if settings is None:
            from tagifai.config import get_settings

            settings = get_settings()
        return cls(**{f.name: float(getattr(settings, f"drift_{f.name}")) for f in fields(cls)})

    def to_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}


@dataclass
class DriftResult:
    """What the drift step found. ``checks[name]`` has ``method``, ``value``, ``threshold``, ``drifted`` and
    ``reason`` (None unless drifted), or ``skipped`` (why the check did not run)."""

    drifted: bool
    reasons: list[str] = field(default_factory=list)
    checks: dict[str, dict] = field(default_factory=dict)
    reference_rows: int = 0
    new_rows: int = 0
    reference_until: str | None = None
    champion_version: int | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    class_mix: dict[str, dict[str, float]] = field(default_factory=dict)  # {"reference": {tag: share}, "new": ...}
    thresholds: dict[str, float] = field(default_factory=dict)
    # Evidently's runs of detect(): (title, snapshot), for write_report (not serialised).
    _runs: list = field(default_factory=list, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field (NaN becomes None)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        return _jsonable(out)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for a KFP Metrics artifact: ``drifted``/``skipped`` (0/1), the row counts, and per check
        its value under the method's name (``label_pvalue``, ``domain_auc``, ``text_length_pvalue``, ...),
        ``<check>_drifted``, and the rates and means behind ``oov`` and ``confidence``."""
        out: dict[str, float] = {
            "drifted": float(bool(self.drifted)),
            "skipped": float(self.skipped is not None),
            "new_rows": float(self.new_rows),
            "reference_rows": float(self.reference_rows),
        }
        for name, check in self.checks.items():
            if check.get("skipped"):
                continue
            out[f"{name}_drifted"] = float(bool(check.get("drifted")))
            key = check.get("metric") or "value"
            _put(out, f"{name}_{key}", check.get("value"))
            for extra in check.get("metrics", ()):
                _put(out, extra, check.get(extra))
        return out


def _put(out: dict[str, float], key: str, value: Any) -> None:
    if value is None or isinstance(value, bool):
        return
    try:
        number = float(value)
    except (TypeError, ValueError):
        return
    if math.isfinite(number):
        out[key] = number


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


# --------------------------------------------------------------------------- splitting


def _utc_naive(values: pd.Series) -> pd.Series:
    """``created_on`` as naive UTC timestamps (aware values converted; unparseable ones NaT), as the sensor does."""
    return pd.to_datetime(values, errors="coerce", utc=True).dt.tz_localize(None)


def _moment(until: str) -> pd.Timestamp:
    moment = pd.Timestamp(until)
    if moment.tzinfo is not None:
        moment = moment.tz_convert("UTC").tz_localize(None)
    return moment


def split_at(df: pd.DataFrame, until: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(reference, new)``: rows with ``created_on`` at or before ``until`` (ISO), and rows after it.

    Times are compared in UTC (naive values count as UTC). Rows whose ``created_on`` is missing or
    unparseable are in neither part.
    """
    if "created_on" not in df.columns:
        raise ValueError(
            f"cannot split at the watermark: no created_on column (has: {', '.join(map(str, df.columns))})"
        )
    created = _utc_naive(df["created_on"])
    moment = _moment(until)
    return df[created <= moment], df[created > moment]


# --------------------------------------------------------------------------- evidently


def _infer_dtype_from_object(dtype: Any) -> type:
    """pandas 2's ``pandas.core.dtypes.common.infer_dtype_from_object`` (removed in pandas 3)."""
    from pandas.api.extensions import ExtensionDtype
    from pandas.api.types import pandas_dtype

    if isinstance(dtype, type) and issubclass(dtype, np.generic):
        return dtype
    if isinstance(dtype, (np.dtype, ExtensionDtype)):
        return getattr(dtype, "numpy_dtype", dtype).type
    if isinstance(dtype, str) and dtype in ("datetime", "timedelta"):
        dtype += "64"
    try:
        resolved = pandas_dtype(dtype)
    except TypeError:
        resolved = np.dtype(dtype)
    return getattr(resolved, "numpy_dtype", resolved).type


def _evidently():
    """Import evidently with its telemetry switched off (and pandas 3 able to import it)."""
    for name, value in TELEMETRY_OPT_OUT.items():
        os.environ[name] = value
    # Evidently 0.7.23 imports ``infer_dtype_from_object`` from pandas at import time (for its legacy
    # column-type test, which this module never runs); pandas 3 removed it. Give pandas the 2.x function
    # back when it lacks it, so ``import evidently`` works; nothing else of pandas changes.
    import pandas.core.dtypes.common as common

    if not hasattr(common, "infer_dtype_from_object"):
        common.infer_dtype_from_object = _infer_dtype_from_object
    import evidently

    return evidently


def _default_method(reference: pd.Series, new: pd.Series, kind: str, thresholds: DriftThresholds) -> tuple[str, float]:
    """Evidently's default stat test of a column (its own choice, by type and reference size) and our threshold."""
    _evidently()
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    test = get_stattest(reference, new, ColumnType.Categorical if kind == "cat" else ColumnType.Numerical, None)
    name = test.name
    if _METHODS.get(name, ("", "", ""))[2] == "below":
        return name, thresholds.pvalue
    if name == "jensenshannon":
        return name, thresholds.jensenshannon
    return name, float(test.default_threshold)  # e.g. wasserstein (numeric, > 1000 rows): Evidently's default


def _run_metrics(metrics: Mapping[str, Any], reference: pd.DataFrame, new: pd.DataFrame, definition: dict):
    """One Evidently Report of ``metrics`` (check -> metric): ``([snapshot], {check: result or the error})``.

    When the report fails as a whole, each metric runs in a report of its own (one snapshot each), so one
    failing check does not take the others down.
    """
    from evidently import DataDefinition, Dataset, Report

    def run(items: Mapping[str, Any]):
        dd = DataDefinition(**definition)
        current, ref = Dataset.from_pandas(new, data_definition=dd), Dataset.from_pandas(reference, data_definition=dd)
        snapshot = Report(list(items.values()), include_tests=True).run(current, ref)
        by_id = {}
        for result in snapshot.metric_results.values():
            location = getattr(result, "metric_value_location", None)
            if location is not None:
                by_id[location.metric.metric_id] = result
        missing = RuntimeError("Evidently returned no result")
        return snapshot, {check: by_id.get(metric.metric_id, missing) for check, metric in items.items()}

    if not metrics:
        return [], {}
    try:
        snapshot, results = run(metrics)
        return [snapshot], results
    except Exception:  # noqa: BLE001 - isolate the failing metric below
        snapshots, results = [], {}
        for check, metric in metrics.items():
            try:
                snapshot, found = run({check: metric})
            except Exception as exc:  # noqa: BLE001 - recorded as the check's error
                results[check] = exc
            else:
                snapshots.append(snapshot)
                results.update(found)
        return snapshots, results


def _status(result: Any) -> bool | None:
    """Evidently's verdict: True when a test of ``result`` failed (drift), None when it has no test."""
    tests = list(getattr(result, "tests", None) or [])
    if not tests:
        return None
    return any(str(getattr(t.status, "value", t.status)).upper() == "FAIL" for t in tests)


def _compare(value: float, threshold: float, method: str) -> bool:
    """Our own reading of a value (when Evidently's result carries no test)."""
    op = _operator(method)
    if value is None or not math.isfinite(value):
        return op == "<"  # a NaN p-value counts as drift
    return value < threshold if op == "<" else value > threshold if op == ">" else value >= threshold


def _operator(method: str) -> str:
    """The side of the threshold that is drift, as Evidently tests it: p-values ``<``, distances ``>=``, AUC ``>``."""
    direction = _METHODS.get(method, ("", "", "above"))[2]
    return "<" if direction == "below" else ">" if method.startswith("abs_") else ">="


def _fmt(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "nan"
    return f"{value:.3g}" if abs(value) < 0.001 else f"{value:.4g}"


def _pct(share: float) -> str:
    return f"{100 * share:.0f}%"


def _mix(values: pd.Series) -> dict[str, float]:
    counts = values.astype(str).value_counts()
    total = int(counts.sum())
    return {str(k): round(int(v) / total, 4) for k, v in counts.items()} if total else {}


def _mix_phrase(reference: dict[str, float], new: dict[str, float], what: str) -> str:
    """``new rows are 100% computer-vision (reference 37%)``: the class whose share rose most."""
    if not new:
        return ""
    gains = {k: v - reference.get(k, 0.0) for k, v in new.items()}
    top = max(gains, key=lambda k: (gains[k], new[k]))
    return f"{what} {_pct(new[top])} {top} (reference {_pct(reference.get(top, 0.0))})"


def _check_from(result: Any, method: str, threshold: float) -> dict[str, Any]:
    """A check dict from an Evidently metric result (or the exception it raised)."""
    shown, key, _ = _METHODS.get(method, (method, "value", "above"))
    check: dict[str, Any] = {"method": method, "threshold": float(threshold), "metric": key}
    if isinstance(result, BaseException):
        check.update(skipped=f"Evidently failed: {type(result).__name__}: {result}", value=None, drifted=False)
        return check
    value = float(getattr(result, "value", float("nan")))
    verdict = _status(result)
    check["value"] = value if math.isfinite(value) else None
    check["drifted"] = bool(verdict) if verdict is not None else _compare(value, threshold, method)
    check["test"] = f"{shown} {_operator(method)} {_fmt(threshold)}"
    check["reason"] = None
    return check


def _reason(name: str, check: dict[str, Any], detail: str = "") -> str:
    shown = _METHODS.get(check["method"], (check["method"],))[0]
    op = _operator(check["method"])
    separator = "=" if shown.endswith(" p") else " "
    text = f"{name}: {shown}{separator}{_fmt(check['value'])} {op} {_fmt(check['threshold'])}"
    return f"{text}; {detail}" if detail else text


# --------------------------------------------------------------------------- hand-rolled checks


def _tokens(df: pd.DataFrame) -> list[list[str]]:
    return [clean_text(t).split() for t in raw_text(df)]


def _oov_rate(rows: Sequence[list[str]], vocabulary: set[str]) -> tuple[float, int]:
    total = sum(len(r) for r in rows)
    if not total:
        return float("nan"), 0
    return sum(1 for r in rows for t in r if t not in vocabulary) / total, total


def _oov_check(reference: pd.DataFrame, new: pd.DataFrame, thresholds: DriftThresholds, seed: int) -> dict[str, Any]:
    """Out-of-vocabulary token rate of the new rows against a held-out half of the reference.

    Hand-rolled: Evidently's OOV descriptor (``OOVWordsPercentage``) needs NLTK's ``words`` corpus, a
    download at run time. Tokens are :func:`tagifai.data.clean_text` split on spaces (the model's text).
    The reference rows are shuffled (``seed``) into halves A and B; both rates count tokens missing from
    A's vocabulary: B's tokens (the baseline: how much unseen vocabulary fresh rows of the *same*
    distribution bring) and the new rows' tokens. Measuring both against one vocabulary of the same size
    keeps the baseline fair; the rate against the whole reference's vocabulary is reported too.
    """
    check: dict[str, Any] = {
        "method": "oov token rate, new rows vs a held-out half of the reference (seeded), same vocabulary",
        "threshold": thresholds.oov_increase,
        "metric": "increase",
        "metrics": ("oov_rate_new", "oov_rate_reference"),
    }
    if min(len(reference), len(new)) < MIN_TEXT_ROWS:
        skipped = f"fewer than {MIN_TEXT_ROWS} rows on one side (reference {len(reference)}, new {len(new)})"
        return {**check, "skipped": skipped, "value": None, "drifted": False}
    ref_tokens = _tokens(reference)
    order = np.random.default_rng(seed).permutation(len(ref_tokens))
    half = (len(order) + 1) // 2
    vocab_a = {t for i in order[:half] for t in ref_tokens[i]}
    rate_ref, n_ref = _oov_rate([ref_tokens[i] for i in order[half:]], vocab_a)
    new_tokens = _tokens(new)
    rate_new, n_new = _oov_rate(new_tokens, vocab_a)
    rate_full, _ = _oov_rate(new_tokens, {t for r in ref_tokens for t in r})
    if not n_new or not n_ref:
        return {
            **check,
            "skipped": "no tokens in the new rows or the held-out reference",
            "value": None,
            "drifted": False,
        }
    increase = rate_new - rate_ref
    check.update(
        value=round(increase, 6),
        oov_rate_new=round(rate_new, 6),
        oov_rate_reference=round(rate_ref, 6),
        oov_rate_new_full_vocabulary=round(rate_full, 6),
        vocabulary_size=len(vocab_a),
        tokens_new=n_new,
        tokens_reference=n_ref,
        drifted=bool(increase > thresholds.oov_increase),
        test=f"oov rate rise > {_fmt(thresholds.oov_increase)}",
        reason=None,
    )
    if check["drifted"]:
        check["reason"] = (
            f"oov: {_pct(rate_new)} of new tokens are out of the reference vocabulary vs {_pct(rate_ref)} of "
            f"held-out reference tokens (rise {_fmt(increase)} > {_fmt(thresholds.oov_increase)})"
        )
    return check


def _predictions(predicted: Sequence[Any], confidence: Sequence[Any]) -> pd.DataFrame:
    frame = pd.DataFrame(
        {"predicted": [str(p) for p in predicted], "confidence": np.asarray(confidence, dtype=float).reshape(-1)}
    )
    return frame


def _reference_predictions(
    reference_predictions: Mapping[str, Sequence[Any]] | None,
    reference: pd.DataFrame,
    predict: Callable,
    seed: int,
    notes: list[str],
) -> tuple[pd.DataFrame, str]:
    """The reference predictions frame and where it came from."""
    if reference_predictions is not None:
        predicted = list(reference_predictions.get("predicted") or [])
        confidence = list(reference_predictions.get("confidence") or [])
        if predicted and len(predicted) == len(confidence):
            return _predictions(predicted, confidence), "the champion's held-out test split"
        notes.append(
            f"{REFERENCE_PREDICTIONS} is malformed (predicted: {len(predicted)}, confidence: {len(confidence)} "
            "values); predicting on reference rows instead"
        )
    sample = reference.sample(n=min(REFERENCE_SAMPLE, len(reference)), random_state=seed)
    labels, confidences = predict(sample)
    notes.append(
        f"the reference predictions and confidence come from {len(sample)} reference rows, not from the champion's "
        f"held-out test split ({REFERENCE_PREDICTIONS}): it was trained on those rows, so its reference confidence "
        "is optimistic"
    )
    return _predictions(labels, confidences), f"{len(sample)} training rows (optimistic)"


# --------------------------------------------------------------------------- detect


def _frame(df: pd.DataFrame) -> pd.DataFrame:
    text = raw_text(df)
    out = pd.DataFrame({"text": text.to_numpy(), "text_length": text.str.len().astype(float).to_numpy()})
    if "tag" in df.columns:
        out.insert(0, "tag", df["tag"].astype(str).to_numpy())
    return out


def detect(
    reference: pd.DataFrame,
    new: pd.DataFrame,
    thresholds: DriftThresholds | None = None,
    predict: Callable[[pd.DataFrame], tuple[Sequence[str], np.ndarray]] | None = None,
    reference_predictions: Mapping[str, Sequence[Any]] | None = None,
    seed: int = 42,
) -> DriftResult:
    """Compare ``new`` rows with ``reference`` rows (both with ``title``, ``description``; ``tag`` for the label check).

    ``predict(df) -> (labels, confidences)`` is the champion (confidence: its highest class probability);
    without it the ``prediction`` and ``confidence`` checks are skipped. ``reference_predictions`` are its
    predictions on its own held-out test split (``{"predicted": [...], "confidence": [...]}``); without them
    it predicts a sample of the reference rows (noted: those are training rows, so optimistic).
    """
    thresholds = thresholds or DriftThresholds()
    result = DriftResult(
        drifted=False, reference_rows=len(reference), new_rows=len(new), thresholds=thresholds.to_dict()
    )
    if "tag" in reference.columns and "tag" in new.columns:
        result.class_mix = {"reference": _mix(reference["tag"]), "new": _mix(new["tag"])}
    if not len(new):
        result.skipped = "no new rows to compare"
        return result
    if not len(reference):
        result.skipped = "no reference rows to compare against"
        return result
    _evidently()
    from evidently.metrics import MeanValue, ValueDrift

    ref, cur = _frame(reference), _frame(new)
    if "tag" not in ref.columns or "tag" not in cur.columns:
        ref, cur = ref.drop(columns="tag", errors="ignore"), cur.drop(columns="tag", errors="ignore")
    checks: dict[str, dict[str, Any]] = {}

    # --- the rows: label, text length, domain (one Evidently report)
    data_metrics: dict[str, Any] = {}
    planned: dict[str, tuple[str, float]] = {}
    if "tag" in ref.columns and "tag" in cur.columns:
        planned["label"] = _default_method(ref["tag"], cur["tag"], "cat", thresholds)
        data_metrics["label"] = ValueDrift(column="tag", method=planned["label"][0], threshold=planned["label"][1])
    else:
        checks["label"] = {"skipped": "no tag column", "value": None, "drifted": False}
    planned["text_length"] = _default_method(ref["text_length"], cur["text_length"], "num", thresholds)
    data_metrics["text_length"] = ValueDrift(
        column="text_length", method=planned["text_length"][0], threshold=planned["text_length"][1]
    )
    if min(len(ref), len(cur)) >= MIN_TEXT_ROWS:
        planned["domain"] = ("abs_text_content_drift", thresholds.domain_auc)
        data_metrics["domain"] = ValueDrift(
            column="text", method="abs_text_content_drift", threshold=thresholds.domain_auc
        )
    else:
        checks["domain"] = {
            "method": "abs_text_content_drift",
            "threshold": thresholds.domain_auc,
            "skipped": f"fewer than {MIN_TEXT_ROWS} rows on one side (reference {len(ref)}, new {len(cur)})",
            "value": None,
            "drifted": False,
        }
    definition = {"text_columns": ["text"], "numerical_columns": ["text_length"]}
    if "tag" in ref.columns:
        definition["categorical_columns"] = ["tag"]
    snapshots, found = _run_metrics(data_metrics, ref, cur, definition)
    result._runs += [("Data: new rows vs the reference", snapshot) for snapshot in snapshots]
    for name, metric_result in found.items():
        checks[name] = _check_from(metric_result, *planned[name])
    if "label" in found and checks["label"].get("drifted"):
        mix = result.class_mix
        detail = _mix_phrase(mix["reference"], mix["new"], "new rows are")
        checks["label"].update(
            reference_mix=mix["reference"], new_mix=mix["new"], reason=_reason("label", checks["label"], detail)
        )
    elif "label" in found:
        checks["label"].update(reference_mix=result.class_mix["reference"], new_mix=result.class_mix["new"])
    if "text_length" in found and not checks["text_length"].get("skipped"):
        med_ref, med_new = float(ref["text_length"].median()), float(cur["text_length"].median())
        checks["text_length"].update(
            median_reference=med_ref, median_new=med_new, unit="characters of title + description"
        )
        if checks["text_length"]["drifted"]:
            detail = f"median {med_new:.0f} characters on new rows vs {med_ref:.0f} in the reference"
            checks["text_length"]["reason"] = _reason("text_length", checks["text_length"], detail)
    if "domain" in found and checks["domain"].get("drifted"):
        checks["domain"]["reason"] = _reason(
            "domain", checks["domain"], "a text classifier tells new rows from reference rows"
        )

    # --- out-of-vocabulary tokens (hand-rolled)
    checks["oov"] = _oov_check(reference, new, thresholds, seed)

    # --- the champion's predictions
    if predict is None:
        for name in ("prediction", "confidence"):
            checks[name] = {"skipped": "no model to predict with", "value": None, "drifted": False}
    else:
        try:
            ref_pred, source = _reference_predictions(reference_predictions, reference, predict, seed, result.notes)
            new_pred = _predictions(*predict(new))
        except Exception as exc:  # noqa: BLE001 - the data checks still stand; the skip says why
            predict = None
            for name in ("prediction", "confidence"):
                checks[name] = {
                    "skipped": f"the model failed to predict: {type(exc).__name__}: {exc}",
                    "value": None,
                    "drifted": False,
                }
    if predict is not None:
        method, threshold = _default_method(ref_pred["predicted"], new_pred["predicted"], "cat", thresholds)
        mean_ref, mean_new = float(ref_pred["confidence"].mean()), float(new_pred["confidence"].mean())
        from evidently.tests import gte

        floor = round(mean_ref - thresholds.confidence_drop, 6)
        pred_metrics = {
            "prediction": ValueDrift(column="predicted", method=method, threshold=threshold),
            "confidence": MeanValue(column="confidence", tests=[gte(floor)]),
        }
        definition = {"categorical_columns": ["predicted"], "numerical_columns": ["confidence"]}
        snapshots, found = _run_metrics(pred_metrics, ref_pred, new_pred, definition)
        result._runs += [("Champion predictions: new rows vs its reference", snapshot) for snapshot in snapshots]
        pred_mix = {"reference": _mix(ref_pred["predicted"]), "new": _mix(new_pred["predicted"])}
        check = _check_from(found["prediction"], method, threshold)
        check.update(reference=source, reference_mix=pred_mix["reference"], new_mix=pred_mix["new"])
        if check.get("drifted"):
            detail = _mix_phrase(pred_mix["reference"], pred_mix["new"], "the champion predicts")
            check["reason"] = _reason("prediction", check, detail + " on new rows" if detail else "")
        checks["prediction"] = check
        drop = mean_ref - mean_new
        checks["confidence"] = {
            "method": "drop of the mean highest class probability",
            "threshold": thresholds.confidence_drop,
            "metric": "drop",
            "metrics": ("mean_confidence_new", "mean_confidence_reference"),
            "value": round(drop, 6),
            "mean_confidence_new": round(mean_new, 6),
            "mean_confidence_reference": round(mean_ref, 6),
            "reference": source,
            "test": f"mean confidence drop > {_fmt(thresholds.confidence_drop)}",
            "drifted": bool(drop > thresholds.confidence_drop),
            "reason": None,
        }
        if checks["confidence"]["drifted"]:
            checks["confidence"]["reason"] = (
                f"confidence: mean {mean_new:.3f} on new rows vs {mean_ref:.3f} on {source} "
                f"(drop {_fmt(drop)} > {_fmt(thresholds.confidence_drop)})"
            )

    result.notes += [
        f"{name} check skipped: {checks[name]['skipped']}" for name in CHECKS if checks.get(name, {}).get("skipped")
    ]
    result.checks = {name: checks[name] for name in CHECKS if name in checks}
    result.reasons = [c["reason"] for c in result.checks.values() if c.get("drifted") and c.get("reason")]
    result.drifted = bool(result.reasons)
    return result


# --------------------------------------------------------------------------- the report

_STYLE_URL = re.compile(
    r"""(@import\s+(?:url\()?\s*["']?(?:https?:)?//[^;]*;?)|(url\(\s*["']?(?:https?:)?//[^)]*\))""", re.I
)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.I | re.S)
_STYLE = re.compile(r"(<style\b[^>]*>)(.*?)(</style\s*>)", re.I | re.S)
_TAG_URL = re.compile(
    r"""<(?:link|img|iframe|source|embed|object)\b[^>]*\b(?:src|href|data)\s*=\s*["']?(?:https?:)?//[^>]*>""", re.I
)
_EXTERNAL_ATTR = re.compile(r"""\bsrc\s*=\s*["']?(?:https?:)?//""", re.I)


def external_references(page: str) -> list[str]:
    """What in ``page`` a browser would fetch from the network: ``<script src>``, ``<link href>``, ``<img src>``
    (and iframe/source/embed/object) with an http(s) or protocol-relative URL, and CSS ``@import``/``url()`` of
    one. Strings inside inline scripts (a bundle's error-message links) are not references."""
    found = [m.group(0)[:200] for m in _SCRIPT.finditer(page) if _EXTERNAL_ATTR.search(m.group(1))]
    outside = _SCRIPT.sub("", page)
    found += [m.group(0)[:200] for m in _TAG_URL.finditer(outside)]
    for style in _STYLE.finditer(outside):
        found += [m.group(0)[:200] for m in _STYLE_URL.finditer(style.group(2))]
    return found


def _self_contained(page: str) -> tuple[str, list[str]]:
    """``page`` without external references (:func:`external_references`), and what was removed."""
    removed = external_references(page)
    if not removed:
        return page, []
    page = _SCRIPT.sub(lambda m: "" if _EXTERNAL_ATTR.search(m.group(1)) else m.group(0), page)
    parts = []
    last = 0
    for m in _SCRIPT.finditer(page):  # leave inline scripts alone
        chunk = page[last : m.start()]
        chunk = _TAG_URL.sub("", chunk)
        chunk = _STYLE.sub(lambda s: s.group(1) + _STYLE_URL.sub("", s.group(2)) + s.group(3), chunk)
        parts += [chunk, m.group(0)]
        last = m.end()
    tail = _STYLE.sub(lambda s: s.group(1) + _STYLE_URL.sub("", s.group(2)) + s.group(3), _TAG_URL.sub("", page[last:]))
    return "".join(parts) + tail, removed


def _summary_html(result: DriftResult, extra_notes: Sequence[str] = ()) -> str:
    e = html.escape
    if result.skipped:
        status, color = f"Drift not checked: {result.skipped}", "#6b6b6b"
    elif result.drifted:
        status, color = "Drift detected", "#b00020"
    else:
        status, color = "No drift detected", "#1b7f3b"
    lines = [
        '<div id="tagifai-drift-summary" style="font-family: sans-serif; margin: 16px; padding: 16px; '
        f'border: 2px solid {color}; border-radius: 6px;">',
        f'<h1 style="color: {color}; margin-top: 0;">{e(status)}</h1>',
    ]
    facts = [f"reference rows: {result.reference_rows}", f"new rows: {result.new_rows}"]
    if result.reference_until:
        facts.append(f"reference until (training watermark): {result.reference_until}")
    if result.champion_version is not None:
        facts.append(f"champion: version {result.champion_version}")
    lines.append(f"<p>{e(' · '.join(facts))}</p>")
    if result.reasons:
        lines.append("<h2>Why</h2><ul>" + "".join(f"<li>{e(r)}</li>" for r in result.reasons) + "</ul>")
    if result.checks:
        rows = []
        for name, c in result.checks.items():
            if c.get("skipped"):
                verdict, value = f"skipped: {c['skipped']}", ""
            else:
                verdict, value = ("DRIFT" if c.get("drifted") else "ok"), _fmt(c.get("value"))
            rows.append(
                f"<tr><td>{e(name)}</td><td>{e(str(c.get('method', '')))}</td><td>{e(value)}</td>"
                f"<td>{e(str(c.get('test') or ''))}</td><td>{e(verdict)}</td></tr>"
            )
        lines.append(
            '<h2>Checks</h2><table style="border-collapse: collapse;" border="1" cellpadding="4">'
            "<tr><th>check</th><th>method</th><th>value</th><th>drift when</th><th>verdict</th></tr>"
            + "".join(rows)
            + "</table>"
        )
    if result.class_mix:
        classes = sorted(set(result.class_mix.get("reference", {})) | set(result.class_mix.get("new", {})))
        rows = "".join(
            f"<tr><td>{e(c)}</td><td>{_pct(result.class_mix.get('reference', {}).get(c, 0.0))}</td>"
            f"<td>{_pct(result.class_mix.get('new', {}).get(c, 0.0))}</td></tr>"
            for c in classes
        )
        lines.append(
            '<h2>Class mix (tag)</h2><table style="border-collapse: collapse;" border="1" cellpadding="4">'
            f"<tr><th>tag</th><th>reference</th><th>new</th></tr>{rows}</table>"
        )
    notes = list(result.notes) + list(extra_notes)
    if notes:
        lines.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    lines.append("</div>")
    return "\n".join(lines)


def _plain_page(body: str) -> str:
    head = '<head><meta charset="UTF-8"><title>Drift</title></head>'
    return f'<!DOCTYPE html>\n<html lang="en">\n{head}\n<body>\n{body}\n</body>\n</html>\n'


def write_report(
    result: DriftResult,
    reference: pd.DataFrame,
    new: pd.DataFrame,
    html_path: str | Path,
    json_path: str | Path | None = None,
) -> None:
    """Write Evidently's HTML report of the checks (one page, offline: no CDN) with a summary on top, and the JSON.

    The Evidently runs of :func:`detect` are reused; a result without them (e.g. rebuilt from a dict) runs the
    data checks again on ``reference`` and ``new``. A skipped result writes a small page saying why. The JSON is
    ``{"drift": result.to_dict(), "evidently": {section: Evidently's JSON}}``.
    """
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    sections: dict[str, Any] = {}
    extra_notes: list[str] = []
    if result.skipped:
        page = _plain_page(_summary_html(result))
    else:
        runs = list(result._runs)
        if not runs:
            rerun = detect(reference, new, DriftThresholds(**result.thresholds) if result.thresholds else None)
            runs = list(rerun._runs)
            extra_notes.append("the report's charts were recomputed from the rows; the prediction section is not in it")
        page = _evidently_page(runs)
        for title, snapshot in runs:
            key = title if title not in sections else f"{title} ({len(sections) + 1})"
            sections[key] = json.loads(snapshot.json())
        page, removed = _self_contained(page)
        if removed:
            extra_notes.append(f"removed {len(removed)} external reference(s) so the report renders offline")
        summary = _summary_html(result, extra_notes)
        page, count = re.subn(r"(<body\b[^>]*>)", lambda m: m.group(1) + "\n" + summary, page, count=1, flags=re.I)
        if not count:
            page = summary + page
    html_path.write_text(page, encoding="utf-8")
    if json_path is not None:
        json_path = Path(json_path)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"drift": result.to_dict(), "evidently": sections}
        if extra_notes:
            payload["report_notes"] = extra_notes
        json_path.write_text(json.dumps(_jsonable(payload), indent=2), encoding="utf-8")


def _evidently_page(runs: Sequence[tuple[str, Any]]) -> str:
    """One Evidently page of several runs: a titled group of widgets per run, then all their tests.

    Evidently's single-file mode (the default of ``save_html``) already inlines its JS bundle and its icon
    font (base64); :func:`_self_contained` removes anything that would still reach the network.
    """
    _evidently()
    from evidently.core.metric_types import metric_tests_widget, render_widgets
    from evidently.core.report import metric_tests_stats
    from evidently.legacy.renderers.html_widgets import group_widget

    widgets, tests = [], []
    for title, snapshot in runs:
        model = snapshot.to_snapshot_model()
        widgets.append(group_widget(title=title, widgets=list(model.widgets)))
        tests += list(snapshot.tests_results)
    if tests:
        widgets += [metric_tests_stats(tests), metric_tests_widget(tests)]
    return render_widgets(widgets, as_iframe=False)


# --------------------------------------------------------------------------- against the champion


def _predictor(model: Any) -> Callable[[pd.DataFrame], tuple[list[str], np.ndarray]]:
    """``predict(df) -> (labels, confidences)`` of a TagifaiModel: labels after its threshold, top probabilities."""
    from tagifai.predict import predict, prob_column

    def run(df: pd.DataFrame) -> tuple[list[str], np.ndarray]:
        if not len(df):
            return [], np.zeros(0)
        out = predict(model, df)
        proba = out[[prob_column(str(c)) for c in model.classes_]].to_numpy(dtype=float)
        return [str(p) for p in out["predicted_tag"]], proba.max(axis=1)

    return run


def _load_reference_predictions(run_id: str, tracking_uri: str, notes: list[str]) -> dict | None:
    import mlflow.artifacts

    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path=REFERENCE_PREDICTIONS, dst_path=tmp, tracking_uri=tracking_uri
            )
            value = json.loads(Path(path).read_text())
        except Exception as exc:  # noqa: BLE001 - missing artifact: predict on reference rows instead
            notes.append(f"the champion's run has no readable {REFERENCE_PREDICTIONS} ({type(exc).__name__})")
            return None
    return value if isinstance(value, dict) else None


def _no_local_champion(tracking_uri: str, model_name: str, alias: str) -> bool:
    """True when the tracking store is a local SQLite file that holds no ``alias`` of ``model_name`` (or does not
    exist yet: MLflow creates it on first use), read with the standard library; False when it has one or only
    MLflow can tell (another store, an unknown schema)."""
    from tagifai.predict import registry_alias, sqlite_path

    path = sqlite_path(tracking_uri)
    if path is None:
        return False
    if not path.exists():
        return True
    try:
        return registry_alias(tracking_uri, model_name, alias) is None
    except Exception:  # noqa: BLE001 - the store cannot answer without MLflow: MLflow decides
        return False


def drift_against_champion(
    warehouse_uri: str,
    model_name: str,
    tracking_uri: str,
    thresholds: DriftThresholds | None = None,
    table: str = "labeled_projects",
    html_path: str | Path | None = None,
    json_path: str | Path | None = None,
) -> DriftResult:
    """Drift of the rows of ``table`` newer than the champion's training watermark against the rows up to it.

    Skipped (``result.skipped`` says why, the report too) when ``model_name`` has no champion, its run has no
    ``data_created_on_max`` tag (or param), or no row is newer than it.
    """
    from tagifai.tracking import CHAMPION, champion_uri, load_model, model_version_by_alias
    from tagifai.warehouse import read_table

    thresholds = thresholds or DriftThresholds()
    client = mv = None
    if not _no_local_champion(tracking_uri, model_name, CHAMPION):  # (else no MLflow import: 2-5 s a first run)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        mv = model_version_by_alias(client, model_name, CHAMPION)
    result: DriftResult | None = None
    reference = new = pd.DataFrame()
    if mv is None:
        result = DriftResult(
            drifted=False,
            skipped=f"no champion: {model_name}@{CHAMPION} is not set (nothing to compare against)",
            thresholds=thresholds.to_dict(),
        )
    else:
        version = int(mv.version)
        run = client.get_run(mv.run_id) if mv.run_id else None
        until = None
        policy = None
        if run is not None:
            until = run.data.tags.get(WATERMARK_TAG) or run.data.params.get(WATERMARK_TAG)
            policy = run.data.tags.get("data_policy")
        if not until:
            result = DriftResult(
                drifted=False,
                champion_version=version,
                skipped=f"the champion ({model_name} v{version}) has no training watermark: its run has no "
                f"{WATERMARK_TAG} tag, so its training rows are unknown (retrain to record it)",
                thresholds=thresholds.to_dict(),
            )
        else:
            df = read_table(warehouse_uri, table)
            reference, new = split_at(df, until)
            unparsed = len(df) - len(reference) - len(new)
            notes: list[str] = []
            if unparsed:
                notes.append(f"{unparsed} row(s) without a valid created_on were left out")
            if policy == "window":
                notes.append(
                    "the champion was trained on a window plus a replay sample (data_policy=window): the reference "
                    "is every row up to its watermark, a superset of its training rows"
                )
            if not len(new):
                result = DriftResult(
                    drifted=False,
                    reference_rows=len(reference),
                    skipped=f"no new rows: nothing in {table} is newer than the champion's watermark {until}",
                    thresholds=thresholds.to_dict(),
                    notes=notes,
                )
            else:
                model = load_model(champion_uri(model_name), tracking_uri)
                ref_predictions = _load_reference_predictions(mv.run_id, tracking_uri, notes)
                result = detect(
                    reference, new, thresholds, predict=_predictor(model), reference_predictions=ref_predictions
                )
                result.notes[:0] = notes
        result.champion_version = version
        result.reference_until = str(until) if until else None
    if html_path is not None:
        write_report(result, reference, new, html_path, json_path)
    elif json_path is not None:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps({"drift": result.to_dict(), "evidently": {}}, indent=2), encoding="utf-8")
    return result
