"""Training: threshold selection and one training run of :class:`~tagifai.model.TagifaiModel`.

:func:`train` splits, fits, picks the threshold on validation, refits on train + validation and scores
on the held-out test split (never used for any choice). The model, its arguments (:class:`TrainArgs`) and
what it needs to predict live in :mod:`tagifai.model`; :class:`TagifaiModel` and :class:`TrainArgs` are
re-exported here because models registered before that split were pickled as ``tagifai.train.*``.

scikit-learn (and onnxruntime, for the embedding) is imported inside the functions that need it, so
importing this module is cheap.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import OTHER, Splits, prepare, require_columns, split
from tagifai.model import (  # TagifaiModel and TrainArgs: the import path of models pickled before tagifai.model
    TagifaiModel,
    TrainArgs,
    apply_threshold,
    make_embedder,
)
from tagifai.parallel import FoldPool

__all__ = [
    "THRESHOLD_GRID",
    "TagifaiModel",
    "TrainArgs",
    "TrainResult",
    "choose_threshold",
    "labeled_frame",
    "quantile_threshold",
    "train",
]


#: Thresholds tried by the "val_grid" strategy (the highest probability of k classes is >= 1/k, so
#: low values leave predictions unchanged).
THRESHOLD_GRID: tuple[float, ...] = tuple(round(float(x), 2) for x in np.arange(0.0, 0.96, 0.01))


def choose_threshold(
    proba: np.ndarray,
    y_true: Sequence[str],
    classes: Sequence[str],
    grid: Sequence[float] = THRESHOLD_GRID,
    other: str = OTHER,
) -> tuple[float, float]:
    """The threshold of ``grid`` with the highest weighted f1 of :func:`apply_threshold` on ``y_true``.

    Ties go to the lowest threshold (the least intervention). Returns ``(threshold, f1)``.
    """
    from sklearn.metrics import f1_score

    y_true = list(y_true)
    if not len(y_true):
        raise ValueError("choose_threshold needs at least one labelled example")
    best_t, best_f1 = 0.0, -1.0
    for t in sorted(grid):
        y_pred = apply_threshold(proba, classes, t, other)
        f1 = f1_score(y_true, list(y_pred), average="weighted", zero_division=0)
        if f1 > best_f1 + 1e-12:
            best_t, best_f1 = float(t), float(f1)
    return best_t, best_f1


def quantile_threshold(proba: np.ndarray, q: float = 0.25) -> float:
    """The course's threshold: the ``q`` quantile of the top probability of each example."""
    proba = np.asarray(proba, dtype=float)
    return float(np.quantile(proba.max(axis=1), q)) if len(proba) else 0.0


# --------------------------------------------------------------------------- one training run


@dataclass
class TrainResult:
    """What :func:`train` returns."""

    model: TagifaiModel
    args: TrainArgs
    splits: Splits
    threshold: float
    metrics: dict[str, dict[str, float] | None]  # {"val": {...}, "test": {...} or None}
    seconds: float

    @property
    def classes(self) -> list[str]:
        return list(self.model.classes_)


def labeled_frame(df: pd.DataFrame, args: TrainArgs) -> pd.DataFrame:
    """``df`` with ``text`` and ``label``: prepared from ``tag`` when present, else used as it is."""
    if "tag" in df.columns:
        return prepare(df, accepted_tags=args.accepted_tags, min_freq=args.min_freq)
    if {"text", "label"} <= set(df.columns):
        return df
    require_columns(df, ("title", "description", "tag"), "labeled projects")
    return df  # unreachable: require_columns raised


def _select_threshold(model: TagifaiModel, val: pd.DataFrame, args: TrainArgs) -> float:
    """Threshold of the "val_grid", "quantile", "fixed" and "none" strategies."""
    if args.threshold_strategy == "none":
        return 0.0
    if args.threshold_strategy == "fixed":
        return float(args.threshold)
    proba = model.predict_proba(val)
    if args.threshold_strategy == "quantile":
        return quantile_threshold(proba, args.threshold_quantile)
    threshold, _ = choose_threshold(proba, val["label"].tolist(), model.classes_, other=model.other)
    return threshold


#: What fitting a model adds to a process, per training row (the default model with the embedding: TF-IDF and
#: embedding matrices, the calibrated SVM's copies): about 42 KB measured at 10k rows (train with two fold workers:
#: 1.00 GiB PSS against 0.48 in one process), rounded up. Sizes the fold workers to the memory (FoldPool).
FIT_BYTES_PER_ROW = 48 * 1024


def fold_fit_bytes(folds: list[tuple[Any, Any]]) -> int:
    """What one fold's fit adds to a process (:data:`FIT_BYTES_PER_ROW` times the most training rows of a fold)."""
    return FIT_BYTES_PER_ROW * max(len(train_idx) for train_idx, _ in folds)


def oof_state(frame: pd.DataFrame, args: TrainArgs, folds: int) -> dict[str, Any]:
    """What :func:`oof_fold` reads: the rows, their stratified folds (``folds`` of them, fewer when a class has
    fewer rows, at least 2; shuffled with ``args.seed``) and the sorted classes."""
    from sklearn.model_selection import StratifiedKFold

    labels = frame["label"].astype(str)
    folds = max(2, min(int(folds), int(labels.value_counts().min())))
    splits = list(StratifiedKFold(folds, shuffle=True, random_state=args.seed).split(frame, labels))
    return {"frame": frame, "folds": splits, "classes": sorted(labels.unique())}


def oof_fold(state: dict[str, Any], item: tuple[TrainArgs, int, Any]) -> np.ndarray:
    """Probabilities of fold ``step``'s held-out rows (columns: ``state["classes"]``) from a model fitted with
    ``args`` and ``embedder`` on the other rows; ``item`` is ``(args, step, embedder)``."""
    args, step, embedder = item
    frame, classes = state["frame"], state["classes"]
    train_idx, held_idx = state["folds"][step]
    part = frame.iloc[train_idx]
    model = TagifaiModel(args, embedder=embedder).fit(part, part["label"])
    proba = np.zeros((len(held_idx), len(classes)))
    proba[:, [classes.index(c) for c in model.classes_]] = model.predict_proba(frame.iloc[held_idx])
    return proba


def assemble_oof(state: dict[str, Any], parts: Any) -> tuple[np.ndarray, list[str]]:
    """The out-of-fold probabilities of every row of ``state["frame"]`` from each fold's :func:`oof_fold`."""
    proba = np.zeros((len(state["frame"]), len(state["classes"])))
    for (_, held_idx), part in zip(state["folds"], parts, strict=True):
        proba[held_idx] = part
    return proba, state["classes"]


def train(df: pd.DataFrame, args: TrainArgs | None = None, cv_workers: int | None = None) -> TrainResult:
    """One training run on a labeled projects frame.

    1. prepare (``text``, ``label``) and split stratified by label into train/val/test;
    2. choose the threshold on validation data (``args.threshold_strategy``): with "cv_grid", on
       out-of-fold predictions over train + val (``metrics["val"]`` then scores those out-of-fold
       predictions, on ``num_samples`` = len(train + val) rows); otherwise fit on train and choose on
       val (``metrics["val"]`` scores val);
    3. fit the final model on train + val (train only when ``refit`` is False and the strategy is not
       "cv_grid") with that threshold;
    4. score the final model on test, which no step above looked at.

    Metrics are weighted precision/recall/f1 with ``num_samples``; ``metrics["test"]`` is None when
    ``test_size`` is 0. With an embedding, one embedder serves every model of the run (each text is
    encoded once); ``seconds`` includes loading and running the encoder. ``cv_workers``: processes fitting the
    "cv_grid" folds beside the final model (:class:`~tagifai.parallel.FoldPool`, same models; None:
    ``TAGIFAI_CV_WORKERS``, default the CPUs this process may use).
    """
    from tagifai.evaluate import weighted_scores

    args = args if args is not None else TrainArgs()
    start = time.perf_counter()
    data = labeled_frame(df, args)
    splits = split(data, val_size=args.val_size, test_size=args.test_size, seed=args.seed)
    train_val = pd.concat([splits.train, splits.val]) if len(splits.val) else splits.train
    metrics: dict[str, dict[str, float] | None] = {"val": None, "test": None}
    embedder = make_embedder(args)
    if args.threshold_strategy == "cv_grid":
        state = oof_state(train_val, args, args.threshold_cv_folds)
        # The out-of-fold models fit in worker processes forked here (before the encoder runs), while this
        # process fits the final model: the same models as one after the other (tagifai/parallel.py).
        with FoldPool(
            state,
            workers=cv_workers,
            max_items=len(state["folds"]),
            bytes_per_worker=fold_fit_bytes(state["folds"]),
            reserve_bytes=FIT_BYTES_PER_ROW * len(train_val),  # this process's final fit, meanwhile
        ) as pool:
            fold_embedder = embedder
            if embedder is not None:
                from tagifai.embeddings import for_folds
                from tagifai.model import to_inputs

                fold_embedder = for_folds(embedder, to_inputs(train_val)[1], pool.parallel)
            items = [(args, step, fold_embedder) for step in range(len(state["folds"]))]
            parts = pool.ordered(oof_fold, items)
            model = TagifaiModel(args, embedder=embedder).fit(train_val, train_val["label"])
            proba, classes = assemble_oof(state, parts)
        truth = train_val["label"].astype(str).tolist()
        threshold, _ = choose_threshold(proba, truth, classes)
        metrics["val"] = weighted_scores(truth, apply_threshold(proba, classes, threshold).tolist())
        model.threshold = float(threshold)
    else:
        model = TagifaiModel(args, embedder=embedder).fit(splits.train, splits.train["label"])
        threshold = _select_threshold(model, splits.val, args)
        model.threshold = threshold
        if len(splits.val):
            metrics["val"] = weighted_scores(splits.val["label"].tolist(), model.predict(splits.val).tolist())
        if args.refit and len(splits.val):
            model = TagifaiModel(args, threshold=threshold, embedder=embedder).fit(train_val, train_val["label"])
    if len(splits.test):
        metrics["test"] = weighted_scores(splits.test["label"].tolist(), model.predict(splits.test).tolist())
    if embedder is not None:
        embedder.clear()  # the model keeps the embedder, not the vectors of the training texts
    return TrainResult(
        model=model,
        args=args,
        splits=splits,
        threshold=threshold,
        metrics=metrics,
        seconds=round(time.perf_counter() - start, 3),
    )
