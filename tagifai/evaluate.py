"""Evaluation: metrics (overall, per class, slices), confusion matrix, behavioral tests, a report.

- :func:`get_metrics` gives ``{"overall", "per_class", "slices"}`` as in the course; slices are the
  registered slicing functions of :data:`SLICES` (``nlp_cnn``, ``short_text``; add your own with
  :func:`slicing_function`).
- :func:`confusion_matrix` gives the class order and the matrix as lists (what a KFP
  ``ClassificationMetrics.log_confusion_matrix(categories, matrix)`` takes).
- :data:`BEHAVIORAL_TESTS` are the course's invariance, directional and minimum-functionality tests;
  :func:`run_behavioral_tests` runs them against any ``predict_fn(texts) -> labels`` (or a model), and
  :func:`check_behavioral_tests` raises :class:`BehavioralTestError` naming each failed case.
- :func:`evaluate_model` scores a model on a labeled frame; :func:`report_markdown` renders a report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import build_text, require_columns

#: Registered slicing functions: name -> fn(frame with ``text`` and ``label``) -> boolean mask.
SLICES: dict[str, Callable[[pd.DataFrame], pd.Series]] = {}


def slicing_function(name: str | None = None):
    """Register a slicing function (``fn(df) -> boolean Series``) under ``name`` (default: its own)."""

    def register(fn):
        SLICES[name or fn.__name__] = fn
        return fn

    return register


@slicing_function()
def nlp_cnn(df: pd.DataFrame) -> pd.Series:
    """NLP projects that use convolution ("cnn" in the cleaned text)."""
    return (df["label"] == "natural-language-processing") & df["text"].str.contains("cnn", regex=False)


@slicing_function()
def short_text(df: pd.DataFrame) -> pd.Series:
    """Projects whose cleaned text has fewer than 8 words."""
    return df["text"].str.split().str.len() < 8


def weighted_scores(y_true: Sequence[str], y_pred: Sequence[str]) -> dict[str, float]:
    """Weighted precision, recall and f1 (zero_division=0) with ``num_samples``."""
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = list(y_true), list(y_pred)
    if not y_true:
        return {"precision": None, "recall": None, "f1": None, "num_samples": 0}
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, average="weighted", zero_division=0)
    return {"precision": float(p), "recall": float(r), "f1": float(f), "num_samples": len(y_true)}


def _slice_frame(y_true: Sequence[str], df: pd.DataFrame) -> pd.DataFrame:
    if len(df) != len(y_true):
        raise ValueError(f"slices: df has {len(df)} rows but there are {len(y_true)} labels")
    text = (
        df["text"] if "text" in df.columns else build_text(df) if {"title", "description"} <= set(df.columns) else None
    )
    if text is None:
        require_columns(df, ("text",), "slicing input (text, or title and description)")
    return pd.DataFrame({"text": text.fillna("").astype(str).to_numpy(), "label": list(y_true)})


def get_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    classes: Sequence[str],
    df: pd.DataFrame | None = None,
    slices: Mapping[str, Callable[[pd.DataFrame], pd.Series]] | None = None,
) -> dict[str, Any]:
    """Overall (weighted), per-class and slice metrics.

    ``{"overall": {precision, recall, f1, num_samples}, "per_class": {cls: {...}}, "slices": {name:
    {...}}}``. Slices need ``df`` (rows aligned with ``y_true``, with ``text`` or title and
    description); the true labels come from ``y_true``. Slice metrics are micro-averaged, as in the
    course (for one label per row: accuracy); an empty slice has ``num_samples`` 0 and None metrics.
    """
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = [str(v) for v in y_true], [str(v) for v in y_pred]
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} true labels but {len(y_pred)} predictions")
    classes = [str(c) for c in classes]
    metrics: dict[str, Any] = {"overall": weighted_scores(y_true, y_pred), "per_class": {}, "slices": {}}
    if y_true:
        p, r, f, n = precision_recall_fscore_support(y_true, y_pred, labels=classes, average=None, zero_division=0)
        for i, cls in enumerate(classes):
            metrics["per_class"][cls] = {
                "precision": float(p[i]),
                "recall": float(r[i]),
                "f1": float(f[i]),
                "num_samples": int(n[i]),
            }
    else:
        metrics["per_class"] = {c: {"precision": None, "recall": None, "f1": None, "num_samples": 0} for c in classes}
    if df is not None:
        frame = _slice_frame(y_true, df)
        truth, pred = np.asarray(y_true, dtype=object), np.asarray(y_pred, dtype=object)
        for name, fn in (slices if slices is not None else SLICES).items():
            mask = np.asarray(fn(frame), dtype=bool)
            if mask.sum() == 0:
                metrics["slices"][name] = {"precision": None, "recall": None, "f1": None, "num_samples": 0}
                continue
            p, r, f, _ = precision_recall_fscore_support(truth[mask], pred[mask], average="micro", zero_division=0)
            metrics["slices"][name] = {
                "precision": float(p),
                "recall": float(r),
                "f1": float(f),
                "num_samples": int(mask.sum()),
            }
    return metrics


def confusion_matrix(y_true: Sequence[str], y_pred: Sequence[str], classes: Sequence[str]) -> dict[str, list]:
    """``{"classes": [...], "matrix": [[int]]}``; rows are true classes, columns predictions, in ``classes`` order.

    Pairs involving a label outside ``classes`` are not counted.
    """
    classes = [str(c) for c in classes]
    index = {c: i for i, c in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for t, p in zip(y_true, y_pred, strict=True):
        if str(t) in index and str(p) in index:
            matrix[index[str(t)]][index[str(p)]] += 1
    return {"classes": classes, "matrix": matrix}


# --------------------------------------------------------------------------- behavioral tests

#: The course's behavioral tests: each case is (name, kind, input, expected).
BEHAVIORAL_TESTS: tuple[dict[str, str], ...] = (
    # invariance: changing a verb must not change the tag
    {
        "name": "invariance_revolutionized",
        "kind": "invariance",
        "input": "Transformers applied to NLP have revolutionized machine learning.",
        "expected": "natural-language-processing",
    },
    {
        "name": "invariance_disrupted",
        "kind": "invariance",
        "input": "Transformers applied to NLP have disrupted machine learning.",
        "expected": "natural-language-processing",
    },
    # directional: changing the object must change the tag as expected
    {
        "name": "directional_text",
        "kind": "directional",
        "input": "ML applied to text classification.",
        "expected": "natural-language-processing",
    },
    {
        "name": "directional_image",
        "kind": "directional",
        "input": "ML applied to image classification.",
        "expected": "computer-vision",
    },
    {
        "name": "directional_cnn_text",
        "kind": "directional",
        "input": "CNNs for text classification.",
        "expected": "natural-language-processing",
    },
    # minimum functionality: simple cases the model must get right
    {
        "name": "mft_nlp",
        "kind": "minimum_functionality",
        "input": "Natural language processing is the next big wave in machine learning.",
        "expected": "natural-language-processing",
    },
    {
        "name": "mft_mlops",
        "kind": "minimum_functionality",
        "input": "MLOps is the next big wave in machine learning.",
        "expected": "mlops",
    },
    {
        "name": "mft_other",
        "kind": "minimum_functionality",
        "input": "This is about graph neural networks.",
        "expected": "other",
    },
)


class BehavioralTestError(AssertionError):
    """One or more behavioral tests failed; :attr:`failures` holds their result dicts."""

    def __init__(self, failures: Sequence[Mapping[str, Any]]):
        self.failures = [dict(f) for f in failures]
        cases = "; ".join(
            f"{f['name']} ({f['kind']}): {f['input']!r} -> {f['predicted']!r}, expected {f['expected']!r}"
            for f in self.failures
        )
        super().__init__(f"{len(self.failures)} behavioral test(s) failed: {cases}")


def _as_predict_fn(predict_fn: Any) -> Callable[[list[str]], Sequence[str]]:
    if not _is_plain_fn(predict_fn) and hasattr(predict_fn, "predict"):
        return lambda texts: predict_fn.predict(list(texts))
    if callable(predict_fn):
        return predict_fn
    raise TypeError(f"expected a callable predict_fn(texts) or a model with .predict, got {type(predict_fn).__name__}")


def _is_plain_fn(obj: Any) -> bool:
    import types

    return isinstance(obj, (types.FunctionType, types.MethodType, types.BuiltinFunctionType))


def run_behavioral_tests(
    predict_fn: Callable[[list[str]], Sequence[str]] | Any,
    tests: Sequence[Mapping[str, str]] = BEHAVIORAL_TESTS,
) -> list[dict[str, Any]]:
    """Run behavioral tests; ``predict_fn`` maps a list of raw texts to labels (or pass a model).

    Returns one dict per case: name, kind, input, expected, predicted, passed.
    """
    fn = _as_predict_fn(predict_fn)
    inputs = [t["input"] for t in tests]
    predicted = [str(p) for p in list(fn(inputs))]
    if len(predicted) != len(inputs):
        raise ValueError(f"predict_fn returned {len(predicted)} labels for {len(inputs)} inputs")
    return [
        {
            "name": t["name"],
            "kind": t["kind"],
            "input": t["input"],
            "expected": t["expected"],
            "predicted": p,
            "passed": p == t["expected"],
        }
        for t, p in zip(tests, predicted, strict=False)
    ]


def check_behavioral_tests(results: Sequence[Mapping[str, Any]]) -> None:
    """Raise :class:`BehavioralTestError` naming every failed case (no-op when all passed)."""
    failures = [r for r in results if not r["passed"]]
    if failures:
        raise BehavioralTestError(failures)


def evaluate_model(model: Any, df_test: pd.DataFrame) -> dict[str, Any]:
    """Metrics of ``model`` (thresholded predictions) on a labeled frame.

    ``df_test`` needs ``label`` (or ``tag``, which is mapped with the model's own label settings) and
    title/description or text. Returns :func:`get_metrics` plus ``"confusion_matrix"``
    (:func:`confusion_matrix`) and ``"threshold"``.
    """
    if "label" not in df_test.columns:
        from tagifai.data import prepare

        require_columns(df_test, ("tag", "title", "description"), "evaluation input")
        args = getattr(model, "args", None)
        kwargs = {"accepted_tags": args.accepted_tags, "min_freq": args.min_freq} if args is not None else {}
        df_test = prepare(df_test, **kwargs)
    if "text" not in df_test.columns:
        require_columns(df_test, ("title", "description"), "evaluation input")
    classes = list(getattr(model, "classes_", [])) or sorted(df_test["label"].unique())
    y_true = df_test["label"].astype(str).tolist()
    y_pred = [str(p) for p in model.predict(df_test)]
    metrics = get_metrics(y_true, y_pred, classes, df=df_test)
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, classes)
    metrics["threshold"] = float(getattr(model, "threshold", 0.0))
    return metrics


def evaluate_csv_frame(model: Any, df: pd.DataFrame) -> dict[str, Any]:
    """Metrics of ``model`` on any frame with title, description and tag (e.g. a user's CSV).

    Tags outside the model's classes count as "other"; unlike :func:`~tagifai.data.prepare` there is
    no frequency threshold (a tag that is rare in a small file is still its class). Returns
    :func:`get_metrics` plus ``"confusion_matrix"``.
    """
    require_columns(df, ("title", "description", "tag"), "evaluation input")
    classes = [str(c) for c in model.classes_]
    other = getattr(model, "other", "other")
    frame = df.copy()
    frame["label"] = [t if t in classes else other for t in frame["tag"].fillna("").astype(str).str.strip()]
    frame["text"] = build_text(frame)
    y_true = frame["label"].tolist()
    y_pred = [str(p) for p in model.predict(frame)]
    metrics = get_metrics(y_true, y_pred, classes, df=frame)
    metrics["confusion_matrix"] = confusion_matrix(y_true, y_pred, classes)
    return metrics


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def report_markdown(
    metrics: Mapping[str, Any],
    behavioral: Sequence[Mapping[str, Any]] | None = None,
    title: str = "Evaluation report",
) -> str:
    """A Markdown evaluation report: overall, per class, slices, confusion matrix, behavioral tests."""
    lines = [f"# {title}", ""]
    overall = metrics.get("overall", {})
    lines += [
        "## Overall (weighted)",
        "",
        "| precision | recall | f1 | samples |",
        "|---|---|---|---|",
        f"| {_fmt(overall.get('precision'))} | {_fmt(overall.get('recall'))} | {_fmt(overall.get('f1'))} "
        f"| {_fmt(overall.get('num_samples'))} |",
        "",
    ]
    if "threshold" in metrics:
        lines += [f'Threshold for "other": {_fmt(float(metrics["threshold"]))}', ""]
    for section, heading in (("per_class", "Per class"), ("slices", "Slices (micro)")):
        rows = metrics.get(section) or {}
        if not rows:
            continue
        lines += [f"## {heading}", "", "| name | precision | recall | f1 | samples |", "|---|---|---|---|---|"]
        for name, m in rows.items():
            lines.append(
                f"| {name} | {_fmt(m.get('precision'))} | {_fmt(m.get('recall'))} | {_fmt(m.get('f1'))} "
                f"| {_fmt(m.get('num_samples'))} |"
            )
        lines.append("")
    cm = metrics.get("confusion_matrix")
    if cm:
        lines += [
            "## Confusion matrix (rows: true, columns: predicted)",
            "",
            "| | " + " | ".join(cm["classes"]) + " |",
            "|---" * (len(cm["classes"]) + 1) + "|",
        ]
        for cls, row in zip(cm["classes"], cm["matrix"], strict=False):
            lines.append(f"| **{cls}** | " + " | ".join(str(v) for v in row) + " |")
        lines.append("")
    if behavioral is not None:
        passed = sum(1 for r in behavioral if r["passed"])
        lines += [
            f"## Behavioral tests: {passed}/{len(behavioral)} passed",
            "",
            "| result | kind | input | expected | predicted |",
            "|---|---|---|---|---|",
        ]
        for r in behavioral:
            mark = "pass" if r["passed"] else "**FAIL**"
            text = str(r["input"]).replace("|", "\\|")
            lines.append(f"| {mark} | {r['kind']} | {text} | {r['expected']} | {r['predicted']} |")
        lines.append("")
    return "\n".join(lines)
