"""The report's pictures: the library's (:mod:`tagifai.figures`), which the steps also write as KFP HTML artifacts.

Optuna's own matplotlib visualisations for the study (history, parameter importances), the evaluation's
confusion matrix and per-class scores, and the training data's tags and text lengths, as PNG ``data:``
URIs (the page needs no other file). Each function returns a :class:`Figure` with either the picture or
the reason there is none.
"""

from __future__ import annotations

from tagifai.figures import (
    Figure,
    class_scores,
    confusion_matrix,
    data_profile,
    optuna_figures,
    page_figures,
    profile_of,
)

__all__ = ["Figure", "class_scores", "confusion_matrix", "data_profile", "optuna_figures", "page_figures", "profile_of"]
