"""Prediction: tag projects with a trained model.

:func:`predict` takes a frame of projects (``title``, ``description``; ``id`` kept when present) and
returns the predicted tag with one probability column per class. The model is a
:class:`~tagifai.model.TagifaiModel` (or anything with ``classes_``, ``predict_proba`` and
``threshold``, e.g. one loaded back from MLflow with :func:`tagifai.tracking.load_model`).

Only :mod:`tagifai.model` is imported here, never the training code (:mod:`tagifai.train`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import OTHER, require_columns
from tagifai.model import apply_threshold

#: Columns :func:`predict` needs.
PREDICT_COLUMNS: tuple[str, ...] = ("title", "description")


def prob_column(cls: str) -> str:
    """The name of the probability column of class ``cls``: ``prob_<class>``."""
    return f"prob_{cls}"


def predict(model: Any, df: pd.DataFrame, threshold: float | None = None) -> pd.DataFrame:
    """Predicted tags and class probabilities for each row of ``df``.

    Columns: ``id`` (when ``df`` has it), ``predicted_tag``, then ``prob_<class>`` for each class of
    the model, in the model's class order. The index is ``df``'s. ``predicted_tag`` is "other" when
    the top probability is below the model's threshold (or ``threshold`` when given).
    A missing title or description column is a :class:`~tagifai.data.DataError` naming it.
    """
    require_columns(df, PREDICT_COLUMNS, "projects to predict")
    if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
        raise TypeError(f"expected a fitted TagifaiModel, got {type(model).__name__}")
    classes = [str(c) for c in model.classes_]
    frame = df[list(PREDICT_COLUMNS)]
    proba = np.asarray(model.predict_proba(frame), dtype=float).reshape(len(df), len(classes))
    t = float(getattr(model, "threshold", 0.0) if threshold is None else threshold)
    other = getattr(model, "other", OTHER)
    out = pd.DataFrame(index=df.index)
    if "id" in df.columns:
        out["id"] = df["id"].to_numpy()
    out["predicted_tag"] = apply_threshold(proba, classes, t, other) if len(df) else np.array([], dtype=object)
    for i, cls in enumerate(classes):
        out[prob_column(cls)] = proba[:, i]
    return out
