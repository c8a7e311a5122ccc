"""The served model: :class:`TagifaiModel`, the arguments that define it and what it needs to predict.

:class:`TrainArgs` holds every choice of a run (JSON round-trip with ``asdict``/:meth:`TrainArgs.from_dict`);
a fitted model keeps them, so they are part of the model too. :class:`TagifaiModel` is a plain picklable
classifier: TF-IDF features of the cleaned text (character n-grams and word n-grams together), by default
beside a pretrained sentence embedding of the raw text (:mod:`tagifai.embeddings`), and a linear model; its
:meth:`~TagifaiModel.predict` returns "other" when the highest class probability is below its threshold.
How a model is trained (thresholds, cross-validation, the splits) is :mod:`tagifai.train`'s business.

Models registered before this module existed were pickled as ``tagifai.train.TagifaiModel`` and
``tagifai.train.TrainArgs``; :mod:`tagifai.train` re-exports both, so they still load (new ones are pickled
under ``tagifai.model``). Prediction (:mod:`tagifai.predict`) imports this module, never the training code.

scikit-learn (and onnxruntime, for the embedding) is imported inside the functions that need it, so
importing this module is cheap.

Prediction speed (issue 13), each giving the same numbers as the plain path: the text is cleaned chunk by chunk
with a memo (:func:`tagifai.data.clean_texts`), the TF-IDF vectorizers count n-grams per distinct word
(:class:`tagifai.textfeatures.FastTfidfVectorizer`; models pickled with scikit-learn's own vectorizers are switched
to it when they load) and the calibrated linear SVM's probabilities skip scikit-learn's repeated input checks
(:func:`calibrated_linear_proba`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from tagifai.data import (
    ACCEPTED_TAGS,
    DEFAULT_MIN_FREQ,
    OTHER,
    DataError,
    TextBatch,
    clean_texts,
    raw_text,
    require_columns,
)
from tagifai.embeddings import EMBEDDING_MODELS  # numpy only at import: cheap
from tagifai.labels import apply_threshold  # re-exported: the one threshold rule (tagifai/labels.py)

MODELS = ("sgd", "logreg", "linear_svc", "complement_nb")
#: Sentence embeddings that may be added beside the TF-IDF features ("none": TF-IDF only).
EMBEDDINGS = ("none", *EMBEDDING_MODELS)
ANALYZERS = ("word", "char", "char_wb")
LOSSES = ("log_loss", "modified_huber", "hinge")
LR_SCHEDULES = ("optimal", "invscaling", "constant", "adaptive")
CLASS_WEIGHTS = (None, "balanced")
THRESHOLD_STRATEGIES = ("cv_grid", "val_grid", "quantile", "fixed", "none")


@dataclass
class TrainArgs:
    """Everything that decides a training run. Defaults are the chosen ones (benchmarks/model.py):
    TF-IDF (word 1-grams + char_wb 2-4, sublinear) beside the MiniLM sentence embedding, a calibrated
    linear SVM (C=0.5, balanced class weights), the threshold on out-of-fold predictions. They were
    chosen by cross-validated f1 on train + validation, never by test scores.

    Features: ``analyzer`` n-grams of lengths ``ngram_min..ngram_max`` (the course's analyzer and
    ngram_max); when ``analyzer`` is "char"/"char_wb" and ``word_ngram_max`` > 0, word n-grams of
    lengths ``1..word_ngram_max`` are added beside them (a FeatureUnion). For ``analyzer="word"`` the
    range is ``1..ngram_max``. ``sublinear_tf``, ``min_df`` and ``max_features`` go to both vectorizers.
    ``embedding``: "minilm" (default) adds the 384 dimensions of a pretrained sentence embedding of the
    raw title and description (all-MiniLM-L6-v2, see :mod:`tagifai.embeddings`), scaled by
    ``embedding_weight``, beside the TF-IDF columns; "none" uses TF-IDF only. The embedding carries
    what the 600 training rows cannot teach (that "OCR", "captioning" or "tracking" are vision tasks):
    it lifts the weighted f1 by about 0.03 (benchmarks/model.py).

    Model: ``model`` picks the family. "sgd" (the course's): ``loss`` (log_loss, modified_huber, or
    hinge wrapped in sigmoid calibration), ``alpha`` (L2), ``lr_schedule`` with ``learning_rate``
    (eta0) and ``power_t``, ``num_epochs`` passes. "logreg" and "linear_svc" (default; sigmoid-
    calibrated on 3 inner folds) use ``C``; "complement_nb" uses ``nb_alpha`` (TF-IDF only: it needs
    non-negative features).
    ``class_weight`` is None or "balanced".

    Data: ``min_freq``/``accepted_tags`` for the label mapping, ``val_size``/``test_size`` fractions of
    the whole frame, ``seed`` for the splits and the model.

    Threshold (below it, :meth:`TagifaiModel.predict` says "other"), always chosen on validation data:
    "cv_grid" (default) picks from :data:`tagifai.train.THRESHOLD_GRID` the threshold with the best weighted f1 on
    out-of-fold probabilities of ``threshold_cv_folds`` stratified folds of train + validation (every
    prediction is on data its model did not see; about 5x more validation examples than the
    validation split alone, so the choice is less noisy); "val_grid" does the same on the validation
    split (predicted by the model fitted on train); ties go to the lowest threshold. "quantile" uses
    the ``threshold_quantile`` quantile of the top probabilities on validation (the course's Q1);
    "fixed" uses ``threshold``; "none" means 0. ``refit``: the final model is fitted on train +
    validation (always so for "cv_grid"); otherwise on train only.
    """

    model: str = "linear_svc"
    embedding: str = "minilm"
    embedding_weight: float = 1.0
    analyzer: str = "char_wb"
    ngram_min: int = 2
    ngram_max: int = 4
    word_ngram_max: int = 1
    sublinear_tf: bool = True
    min_df: int = 1
    max_features: int | None = None
    loss: str = "modified_huber"
    alpha: float = 1e-4
    learning_rate: float = 0.1
    power_t: float = 0.1
    lr_schedule: str = "invscaling"
    C: float = 0.5
    nb_alpha: float = 0.3
    class_weight: str | None = "balanced"
    num_epochs: int = 50
    min_freq: float = DEFAULT_MIN_FREQ
    accepted_tags: list[str] = field(default_factory=lambda: list(ACCEPTED_TAGS))
    val_size: float = 0.15
    test_size: float = 0.2
    seed: int = 42
    threshold_strategy: str = "cv_grid"
    threshold_cv_folds: int = 5
    threshold_quantile: float = 0.25
    threshold: float = 0.0
    refit: bool = True

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first invalid field."""
        checks = [
            ("model", self.model in MODELS, f"one of {MODELS}"),
            ("embedding", self.embedding in EMBEDDINGS, f"one of {EMBEDDINGS}"),
            (
                "embedding",
                self.embedding == "none" or self.model != "complement_nb",
                '"none" with model="complement_nb" (it needs non-negative features)',
            ),
            ("embedding_weight", float(self.embedding_weight) > 0, "> 0"),
            ("analyzer", self.analyzer in ANALYZERS, f"one of {ANALYZERS}"),
            ("loss", self.loss in LOSSES, f"one of {LOSSES}"),
            ("lr_schedule", self.lr_schedule in LR_SCHEDULES, f"one of {LR_SCHEDULES}"),
            ("class_weight", self.class_weight in CLASS_WEIGHTS, f"one of {CLASS_WEIGHTS}"),
            ("threshold_strategy", self.threshold_strategy in THRESHOLD_STRATEGIES, f"one of {THRESHOLD_STRATEGIES}"),
            ("ngram_min", int(self.ngram_min) >= 1, ">= 1"),
            ("ngram_max", int(self.ngram_max) >= int(self.ngram_min) or self.analyzer == "word", ">= ngram_min"),
            ("ngram_max", int(self.ngram_max) >= 1, ">= 1"),
            ("word_ngram_max", int(self.word_ngram_max) >= 0, ">= 0"),
            ("num_epochs", int(self.num_epochs) >= 1, ">= 1"),
            ("alpha", float(self.alpha) > 0, "> 0"),
            ("C", float(self.C) > 0, "> 0"),
            ("nb_alpha", float(self.nb_alpha) >= 0, ">= 0"),
            ("learning_rate", float(self.learning_rate) > 0, "> 0"),
            ("val_size", 0 <= float(self.val_size) < 1, "in [0, 1)"),
            ("test_size", 0 <= float(self.test_size) < 1, "in [0, 1)"),
            ("threshold_cv_folds", int(self.threshold_cv_folds) >= 2, ">= 2"),
            ("threshold_quantile", 0 <= float(self.threshold_quantile) <= 1, "in [0, 1]"),
            ("threshold", 0 <= float(self.threshold) <= 1, "in [0, 1]"),
        ]
        for name, ok, expected in checks:
            if not ok:
                raise ValueError(f"TrainArgs.{name}={getattr(self, name)!r}: expected {expected}")
        if self.threshold_strategy in ("cv_grid", "val_grid", "quantile") and not self.val_size:
            raise ValueError(f"TrainArgs.threshold_strategy={self.threshold_strategy!r} needs val_size > 0")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (same as ``dataclasses.asdict``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainArgs:
        """Build from a dict (e.g. parsed JSON); unknown keys are an error naming them."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown TrainArgs field(s): {', '.join(unknown)}")
        kwargs = dict(d)
        if "accepted_tags" in kwargs and kwargs["accepted_tags"] is not None:
            kwargs["accepted_tags"] = list(kwargs["accepted_tags"])
        return cls(**kwargs)

    def replace(self, **changes: Any) -> TrainArgs:
        """A copy with some fields changed (validated)."""
        return TrainArgs.from_dict({**asdict(self), **changes})


# --------------------------------------------------------------------------- features and model


def build_features(args: TrainArgs):
    """The TF-IDF feature extractor for ``args`` (a TfidfVectorizer or a FeatureUnion of two). The vectorizers are
    :class:`tagifai.textfeatures.FastTfidfVectorizer`: scikit-learn's, whose fit and ``transform`` count n-grams once
    per distinct word (the same vocabulary and features; transform about 10x, fit_transform about 5x faster for
    char_wb n-grams)."""
    from sklearn.pipeline import FeatureUnion

    from tagifai.textfeatures import FastTfidfVectorizer as TfidfVectorizer

    common = dict(sublinear_tf=args.sublinear_tf, min_df=args.min_df, max_features=args.max_features)
    if args.analyzer == "word":
        return TfidfVectorizer(analyzer="word", ngram_range=(1, int(args.ngram_max)), **common)
    chars = TfidfVectorizer(analyzer=args.analyzer, ngram_range=(int(args.ngram_min), int(args.ngram_max)), **common)
    if int(args.word_ngram_max) <= 0:
        return chars
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, int(args.word_ngram_max)), **common)
    return FeatureUnion([("word", words), ("char", chars)])


def build_classifier(args: TrainArgs):
    """The (unfitted) classifier for ``args``; always has ``predict_proba``."""
    from sklearn.calibration import CalibratedClassifierCV

    if args.model == "sgd":
        from sklearn.linear_model import SGDClassifier

        sgd = SGDClassifier(
            loss=args.loss,
            penalty="l2",
            alpha=args.alpha,
            learning_rate=args.lr_schedule,
            eta0=args.learning_rate,
            power_t=args.power_t,
            max_iter=int(args.num_epochs),
            tol=None,  # exactly num_epochs passes: deterministic, no convergence warnings
            class_weight=args.class_weight,
            random_state=args.seed,
        )
        if args.loss == "hinge":
            return CalibratedClassifierCV(sgd, method="sigmoid", cv=3)
        return sgd
    if args.model == "logreg":
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=args.C, class_weight=args.class_weight, max_iter=2000, random_state=args.seed)
    if args.model == "linear_svc":
        from sklearn.svm import LinearSVC

        svc = LinearSVC(C=args.C, class_weight=args.class_weight, random_state=args.seed)
        return CalibratedClassifierCV(svc, method="sigmoid", cv=3)
    if args.model == "complement_nb":
        from sklearn.naive_bayes import ComplementNB

        return ComplementNB(alpha=args.nb_alpha)
    raise ValueError(f"unknown model {args.model!r}")


#: Frames up to this many rows are read with plain Python (a single prediction: ~0.6 ms less than pandas).
_SMALL_FRAME = 64


def _raw_texts_of_strings(titles: list, descriptions: list) -> list[str] | None:
    """:func:`tagifai.data.raw_text` of rows whose cells are strings or missing (None, NaN), else None (the
    caller then uses raw_text itself, so both give the same text for every input)."""
    out = []
    for title, description in zip(titles, descriptions, strict=True):
        parts = []
        for value in (title, description):
            if isinstance(value, str):
                parts.append(value)
            elif value is None or (isinstance(value, float) and value != value):
                parts.append("")
            else:
                return None
        out.append(f"{parts[0]} {parts[1]}".strip())
    return out


def to_inputs(X: Any) -> tuple[list[str], list[str]]:
    """``(cleaned texts, raw texts)`` of the model's input: the TF-IDF features read the first, the
    sentence embedding the second.

    The raw text of a row is ``title + " " + description`` as written (the embedding model has its
    own tokenizer and knows case, stop words and punctuation); a raw string is its own raw text; a
    frame with ``text`` but no title/description (already prepared) gives that text for both.
    """
    if isinstance(X, pd.DataFrame):
        if {"title", "description"} <= set(X.columns):
            if "text" not in X.columns and len(X) <= _SMALL_FRAME:
                raw_list = _raw_texts_of_strings(X["title"].tolist(), X["description"].tolist())
                if raw_list is not None:
                    return clean_texts(raw_list), raw_list
            raw = raw_text(X).tolist()
            cleaned = X["text"].fillna("").astype(str).tolist() if "text" in X.columns else clean_texts(raw)
            return cleaned, raw
        if "text" in X.columns:
            texts = X["text"].fillna("").astype(str).tolist()
            return texts, texts
        require_columns(X, ("title", "description"), "model input")
    if isinstance(X, str):
        X = [X]
    elif isinstance(X, Iterable):  # a list, tuple, Series, array or any other iterable of strings
        X = list(X)
    else:
        raise DataError(f"model input: expected a DataFrame or strings, got {type(X).__name__}")
    raw = ["" if x is None or (isinstance(x, float) and x != x) else str(x) for x in X]
    return clean_texts(raw), raw


def calibrated_linear_proba(classifier: Any, X: Any) -> np.ndarray | None:
    """``classifier.predict_proba(X)`` for a sigmoid-calibrated linear classifier of more than two classes (the
    default model's ``CalibratedClassifierCV(LinearSVC, method="sigmoid", cv=3)``), or None for anything else (the
    caller then asks scikit-learn).

    Why this is not scikit-learn's own call (issue 13): its ``predict_proba`` checks the input again for each of
    the 3 fold models and each of their 4 calibrators (about 30 ``check_array`` calls, ~4 ms of a ~10 ms TF-IDF-only
    single prediction), around a few numpy operations. Those operations are done here once each, the same ones in
    the same order as scikit-learn 1.9's ``CalibratedClassifierCV.predict_proba`` and ``_CalibratedClassifier.
    predict_proba`` (the decision function ``X @ coef_.T + intercept_``, ``expit(-(a * T + b))`` per class, the
    normalisation, the mean over the folds), so the probabilities are the same floats (tests/unit/test_model.py and
    tests/unit/test_predict.py compare them). Only a finite CSR input of exactly that configuration takes this path.
    """
    try:
        import scipy.sparse as sp
        from scipy.special import expit
        from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
        from sklearn.svm import LinearSVC
    except ImportError:  # pragma: no cover - another scikit-learn: its own path
        return None
    linear_decision = LinearSVC.decision_function  # LinearClassifierMixin's: X @ coef_.T + intercept_
    if type(classifier) is not CalibratedClassifierCV or not (sp.issparse(X) and X.format == "csr"):
        return None
    classes = classifier.classes_
    n_classes = classes.shape[0]
    folds = getattr(classifier, "calibrated_classifiers_", None) or []
    for fold in folds:
        estimator = fold.estimator
        if not (
            type(fold) is _CalibratedClassifier
            and fold.method == "sigmoid"
            and getattr(type(estimator), "decision_function", None) is linear_decision
            and estimator.coef_.ndim == 2
            and estimator.coef_.shape[0] == n_classes == len(fold.calibrators)
            and all(type(c) is _SigmoidCalibration for c in fold.calibrators)
            and np.array_equal(fold.classes, classes)
            and np.array_equal(estimator.classes_, classes)
        ):
            return None
    if n_classes <= 2 or not folds or not np.isfinite(X.data).all():
        return None  # (scikit-learn raises its own error for NaN or infinity)
    n = X.shape[0]
    mean_proba = np.zeros((n, n_classes))
    for fold in folds:
        estimator = fold.estimator
        scores = X @ estimator.coef_.T + estimator.intercept_
        proba = np.zeros((n, n_classes))
        for class_idx, (this_pred, calibrator) in enumerate(zip(scores.T, fold.calibrators, strict=True)):
            proba[:, class_idx] = expit(-(calibrator.a_ * np.ravel(this_pred) + calibrator.b_))
        denominator = np.sum(proba, axis=1)[:, np.newaxis]
        uniform_proba = np.full_like(proba, 1 / n_classes)
        proba = np.divide(proba, denominator, out=uniform_proba, where=denominator != 0)
        proba[(proba > 1.0) & (proba <= 1.0 + 1e-5)] = 1.0
        mean_proba += proba
    mean_proba /= len(folds)
    return mean_proba


def make_embedder(args: TrainArgs):
    """A fresh :class:`~tagifai.embeddings.SentenceEmbedder` for ``args`` (None without an embedding)."""
    if args.embedding == "none":
        return None
    from tagifai.embeddings import SentenceEmbedder

    return SentenceEmbedder(args.embedding)


class TagifaiModel:
    """Tags projects: TF-IDF features (and a sentence embedding) and a linear classifier, with an
    "other" threshold.

    Plain and picklable (MLflow logs it with the sklearn flavor; its pyfunc calls :meth:`predict`).
    Input (``X``): a DataFrame with ``title`` and ``description`` (raw) or ``text`` (cleaned), or raw
    strings. :meth:`predict` returns the arg-max class, or "other" when the top probability is below
    :attr:`threshold`. ``embedder``: the :class:`~tagifai.embeddings.SentenceEmbedder` to use when
    ``args.embedding`` is not "none" (one is made when not given; :func:`tagifai.train.train` shares one
    between its fold models so that each text is encoded once).
    """

    def __init__(self, args: TrainArgs | None = None, threshold: float = 0.0, other: str = OTHER, embedder: Any = None):
        self.args = args if args is not None else TrainArgs()
        self.threshold = float(threshold)
        self.other = other
        self.embedder = embedder
        self.features_ = None
        self.classifier_ = None
        self.classes_: list[str] = []

    def _embedder(self):
        if self.args.embedding == "none":
            return None
        if self.embedder is None:
            self.embedder = make_embedder(self.args)
        return self.embedder

    def _matrix(self, texts: list[str], raw: list[str], fit: bool = False):
        """The feature matrix: TF-IDF columns of the cleaned texts, then the weighted embedding of the raw."""
        import scipy.sparse as sp

        if not isinstance(texts, TextBatch):  # (a TextBatch lets the word and char vectorizers split the texts once)
            texts = TextBatch(texts)
        if fit:
            tfidf = self.features_.fit_transform(texts)
        else:
            from sklearn import config_context

            # Strings in, TF-IDF out: nothing to validate that fit did not (~0.5 ms of a single prediction).
            with config_context(assume_finite=True, skip_parameter_validation=True):
                tfidf = self.features_.transform(texts)
        embedder = self._embedder()
        if embedder is None:
            return tfidf
        dense = embedder.encode(raw) * float(self.args.embedding_weight)
        return sp.hstack([tfidf, sp.csr_matrix(dense)], format="csr")

    def fit(self, X: Any, y: Sequence[str]) -> TagifaiModel:
        texts, raw = to_inputs(X)
        y = [str(v) for v in (y.tolist() if hasattr(y, "tolist") else list(y))]
        if len(texts) != len(y):
            raise ValueError(f"{len(texts)} inputs but {len(y)} labels")
        if len(set(y)) < 2:
            raise DataError(f"need at least two classes to train, got {sorted(set(y))}")
        self.features_ = build_features(self.args)
        self.classifier_ = build_classifier(self.args).fit(self._matrix(texts, raw, fit=True), y)
        self.classes_ = [str(c) for c in self.classifier_.classes_]
        return self

    def _check_fitted(self) -> None:
        if self.classifier_ is None and getattr(self, "pipeline_", None) is None:
            raise RuntimeError("TagifaiModel is not fitted: call fit() first")

    def __setstate__(self, state: dict) -> None:
        """Unpickle, also a model saved before the embedding existed (a sklearn ``pipeline_`` of TF-IDF
        and classifier, TrainArgs without the embedding fields): it keeps predicting as it did."""
        self.__dict__.update(state)
        args = self.__dict__.get("args")
        if args is not None and "embedding" not in vars(args):  # (the class default is "minilm")
            args.embedding, args.embedding_weight = "none", 1.0
        for name in ("embedder", "features_", "classifier_"):
            self.__dict__.setdefault(name, None)
        features = self.features_ if self.features_ is not None else self.__dict__.get("pipeline_")
        if features is not None:  # a model pickled with scikit-learn's own vectorizers: the same, faster
            from tagifai.textfeatures import accelerate

            accelerate(features)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, one column per class in :attr:`classes_` order."""
        self._check_fitted()
        texts, raw = to_inputs(X)
        if not texts:
            return np.zeros((0, len(self.classes_)))
        if self.classifier_ is None:  # a model pickled by an earlier version
            return np.asarray(self.pipeline_.predict_proba(texts), dtype=float)
        matrix = self._matrix(texts, raw)
        proba = calibrated_linear_proba(self.classifier_, matrix)
        if proba is None:
            proba = self.classifier_.predict_proba(matrix)
        return np.asarray(proba, dtype=float)

    def predict(self, X: Any, threshold: float | None = None) -> np.ndarray:
        """Class labels with the threshold (:attr:`threshold` unless given)."""
        t = self.threshold if threshold is None else float(threshold)
        return apply_threshold(self.predict_proba(X), self.classes_, t, self.other)

    def __repr__(self) -> str:
        fitted = self.classifier_ is not None or getattr(self, "pipeline_", None) is not None
        state = f"classes={self.classes_}" if fitted else "unfitted"
        return (
            f"TagifaiModel(model={self.args.model!r}, embedding={self.args.embedding!r}, "
            f"threshold={self.threshold:.2f}, {state})"
        )
