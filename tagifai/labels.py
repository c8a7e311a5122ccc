"""The labels of a prediction: the "other" threshold rule and the names of the probability columns.

One definition for every path that labels probabilities: training and evaluation (:mod:`tagifai.model`,
:mod:`tagifai.train`), :func:`tagifai.predict.predict` and the compiled serving form (:mod:`tagifai.serving`),
which must not import pandas. So this module imports nothing of the project and numpy only when it labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The label of a project whose best probability is below the threshold, and of every tag outside the classes
#: (:data:`tagifai.data.OTHER` is this one).
OTHER = "other"


def prob_column(cls: str) -> str:
    """The name of the probability column of class ``cls``: ``prob_<class>``."""
    return f"prob_{cls}"


def apply_threshold(proba: Any, classes: Sequence[str], threshold: float, other: str = OTHER) -> Any:
    """Labels from probabilities: the arg-max class, or ``other`` where its probability is below ``threshold``."""
    import numpy as np

    proba = np.asarray(proba, dtype=float)
    classes = np.asarray(list(classes), dtype=object)
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"proba shape {proba.shape} does not match {len(classes)} classes")
    labels = classes[proba.argmax(axis=1)] if len(proba) else np.array([], dtype=object)
    if threshold > 0 and len(proba):
        labels = np.where(proba.max(axis=1) < threshold, other, labels)
    return labels.astype(object)
