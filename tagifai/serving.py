"""The compiled serving form of a :class:`~tagifai.model.TagifaiModel`: its numbers without scikit-learn.

Why (issue: cold start of ``tagifai predict``): the serving copy is a pickle whose parts are scikit-learn objects,
so unpickling it imports scikit-learn, SciPy and pandas (~2 s of a ~3.5 s cold prediction). What a fitted model
computes at prediction time is small: the cleaned text (:func:`tagifai.data.clean_texts`), TF-IDF of a fixed
vocabulary (counts of n-grams, ``log(tf) + 1``, times idf, l2 norm per vectorizer), the sentence embedding of the raw
text times ``embedding_weight`` and a linear model with its probability link. :func:`compile_model` (run where the
serving copy is written, with scikit-learn at hand) extracts those numbers into arrays and JSON;
:class:`CompiledModel` computes the same probabilities with numpy and the standard library only (and
:mod:`tagifai.embeddings`, numpy-only until it encodes).

The file (``model-v<version>-<hash of the pickle>.npz``, written by :func:`tagifai.predict.write_serving_copy`):
an ``.npz`` (no pickled objects: read with ``allow_pickle=False``) holding ``meta`` (the JSON below, as bytes),
``coef`` (features x columns of every linear model side by side), ``intercept`` and, per vectorizer ``i``,
``idf_i`` (when it uses idf). The JSON holds the classes, threshold, "other" label, the text-cleaning constants of
:mod:`tagifai.data` at compile time, each vectorizer's settings and vocabulary (terms in column order), the
embedding settings and the classifier's kind and calibration numbers.

Supported: TF-IDF vectorizers (word, char and char_wb analyzers, any n-gram range, lowercase or not, sublinear tf,
idf or not, l2/l1/no norm, binary counts, float64) alone or in a FeatureUnion without weights; with or without the
sentence embedding; ``CalibratedClassifierCV(method="sigmoid")`` over a linear classifier (LinearSVC, SGD hinge),
LogisticRegression, SGDClassifier with log_loss or modified_huber loss; binary or multiclass. Anything else (e.g.
complement_nb, isotonic calibration, a model pickled by an earlier version) raises :class:`Unsupported` with the
reason, and the serving copy is then the pickle alone. The probabilities are those of ``TagifaiModel.predict_proba``
up to floating-point summation order (tests/unit/test_serving.py: within 1e-12 on the real data).
"""

from __future__ import annotations

import io
import json
import math
import re
from collections import Counter
from itertools import chain
from typing import Any

import numpy as np

from tagifai.labels import OTHER, apply_threshold, prob_column

#: Version of the compiled file's layout; a file of another version is not used (the pickle is).
COMPILED_FORMAT = 1
#: sklearn's default token pattern.
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_WHITE_SPACES = re.compile(r"\s\s+")
_CALIBRATION_CLIP = 1.0 + 1e-5


class Unsupported(ValueError):
    """The model cannot be compiled exactly; the message says why."""


# --------------------------------------------------------------------------- compiling (scikit-learn needed here)


def _vectorizer_spec(vec: Any, index: int, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from tagifai.textfeatures import FastTfidfVectorizer

    if type(vec) not in (TfidfVectorizer, FastTfidfVectorizer):
        raise Unsupported(f"feature extractor {type(vec).__name__} is not a TfidfVectorizer")
    if vec.input != "content" or callable(vec.analyzer) or vec.analyzer not in ("word", "char", "char_wb"):
        raise Unsupported(f"vectorizer analyzer {vec.analyzer!r} / input {vec.input!r}")
    if vec.preprocessor is not None or vec.tokenizer is not None or vec.strip_accents:
        raise Unsupported("vectorizer with a custom preprocessor, tokenizer or accent stripping")
    if vec.stop_words is not None:
        raise Unsupported("vectorizer with stop words")
    if np.dtype(vec.dtype) != np.float64:
        raise Unsupported(f"vectorizer dtype {vec.dtype}")
    if vec.norm not in ("l2", "l1", None):
        raise Unsupported(f"vectorizer norm {vec.norm!r}")
    pattern = vec.token_pattern
    if vec.analyzer == "word" and (pattern is None or re.compile(pattern).groups != 0):
        raise Unsupported(f"token pattern {pattern!r}")
    tfidf = vec._tfidf
    use_idf = hasattr(tfidf, "idf_")
    vocabulary = vec.vocabulary_
    terms: list[Any] = [None] * len(vocabulary)
    for term, column in vocabulary.items():
        terms[int(column)] = term
    if any(not isinstance(t, str) for t in terms):
        raise Unsupported("vocabulary is not a permutation of 0..n-1")
    if use_idf:
        arrays[f"idf_{index}"] = np.asarray(tfidf.idf_, dtype=np.float64)
    min_n, max_n = (int(n) for n in vec.ngram_range)
    return {
        "analyzer": vec.analyzer,
        "ngram_range": [min_n, max_n],
        "lowercase": bool(vec.lowercase),
        "token_pattern": pattern if vec.analyzer == "word" else None,
        "binary": bool(vec.binary),
        "sublinear_tf": bool(tfidf.sublinear_tf),
        "use_idf": use_idf,
        "norm": vec.norm,
        "terms": terms,
    }


def _features_spec(features: Any, arrays: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    from sklearn.pipeline import FeatureUnion

    if type(features) is FeatureUnion:
        if features.transformer_weights:
            raise Unsupported("FeatureUnion with transformer weights")
        parts = [part for _, part in features.transformer_list]
        if any(isinstance(p, str) for p in parts):  # "drop" / "passthrough"
            raise Unsupported("FeatureUnion with a dropped or passthrough part")
    else:
        parts = [features]
    return [_vectorizer_spec(vec, i, arrays) for i, vec in enumerate(parts)]


def _linear_parts(estimator: Any, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model._base import LinearClassifierMixin

    if getattr(type(estimator), "decision_function", None) is not LinearClassifierMixin.decision_function:
        raise Unsupported(f"{type(estimator).__name__} is not a linear classifier")
    coef, intercept = estimator.coef_, estimator.intercept_
    if not isinstance(coef, np.ndarray) or coef.ndim != 2:
        raise Unsupported(f"{type(estimator).__name__} has sparse or odd coefficients")
    if not np.array_equal(np.asarray(estimator.classes_), classes):
        raise Unsupported(f"{type(estimator).__name__} saw other classes than the model")
    rows = 1 if len(classes) == 2 else len(classes)
    intercept = np.broadcast_to(np.asarray(intercept, dtype=np.float64), (rows,))
    if coef.shape[0] != rows:
        raise Unsupported(f"{type(estimator).__name__} coefficients of shape {coef.shape}")
    return np.asarray(coef, dtype=np.float64), np.array(intercept, dtype=np.float64)


def _classifier_spec(classifier: Any, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    from sklearn.calibration import CalibratedClassifierCV, _CalibratedClassifier, _SigmoidCalibration
    from sklearn.linear_model import LogisticRegression, SGDClassifier

    classes = np.asarray(classifier.classes_)
    coefs: list[np.ndarray] = []
    intercepts: list[np.ndarray] = []
    spec: dict[str, Any]
    if type(classifier) is CalibratedClassifierCV:
        folds = list(getattr(classifier, "calibrated_classifiers_", None) or [])
        if not folds:
            raise Unsupported("calibrated classifier without folds")
        a_values, b_values = [], []
        for fold in folds:
            if type(fold) is not _CalibratedClassifier or fold.method != "sigmoid":
                raise Unsupported(f"calibration method {getattr(fold, 'method', '?')!r}")
            if not np.array_equal(np.asarray(fold.classes), classes):
                raise Unsupported("calibration fold with other classes")
            coef, intercept = _linear_parts(fold.estimator, classes)
            if len(fold.calibrators) != coef.shape[0] or not all(
                type(c) is _SigmoidCalibration for c in fold.calibrators
            ):
                raise Unsupported("calibrators that are not sigmoids, one a class")
            coefs.append(coef)
            intercepts.append(intercept)
            a_values.append([float(c.a_) for c in fold.calibrators])
            b_values.append([float(c.b_) for c in fold.calibrators])
        spec = {"kind": "calibrated_sigmoid", "folds": len(folds), "a": a_values, "b": b_values}
    elif type(classifier) is LogisticRegression:
        coef, intercept = _linear_parts(classifier, classes)
        coefs.append(coef)
        intercepts.append(intercept)
        spec = {"kind": "logreg"}
    elif type(classifier) is SGDClassifier and classifier.loss in ("log_loss", "modified_huber"):
        coef, intercept = _linear_parts(classifier, classes)
        coefs.append(coef)
        intercepts.append(intercept)
        spec = {"kind": "sgd_log" if classifier.loss == "log_loss" else "sgd_modified_huber"}
    else:
        loss = getattr(classifier, "loss", None)
        raise Unsupported(f"classifier {type(classifier).__name__}" + (f" with loss {loss!r}" if loss else ""))
    arrays["coef"] = np.ascontiguousarray(np.concatenate(coefs, axis=0).T)  # features x (folds * rows)
    arrays["intercept"] = np.concatenate(intercepts)
    spec["rows"] = int(coefs[0].shape[0])
    return spec


def compile_model(model: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """``(meta, arrays)`` of a fitted :class:`~tagifai.model.TagifaiModel`, or :class:`Unsupported` with the reason."""
    import tagifai.data as data
    from tagifai.model import TagifaiModel

    if type(model) is not TagifaiModel:
        raise Unsupported(f"not a TagifaiModel: {type(model).__name__}")
    if model.classifier_ is None or model.features_ is None:
        raise Unsupported("a model pickled by an earlier version (no features_/classifier_)")
    arrays: dict[str, np.ndarray] = {}
    vectorizers = _features_spec(model.features_, arrays)
    classifier = _classifier_spec(model.classifier_, arrays)
    classes = [str(c) for c in model.classifier_.classes_]
    if classes != [str(c) for c in model.classes_]:
        raise Unsupported("classes_ differ from the classifier's")
    n_tfidf = sum(len(v["terms"]) for v in vectorizers)
    args = model.args
    embedding = None
    n_features = n_tfidf
    if args.embedding != "none":
        embedder = model._embedder()
        from tagifai.embeddings import DIM

        embedding = {
            "name": embedder.name,
            "max_length": int(embedder.max_length),
            "batch_size": int(embedder.batch_size),
            "weight": float(args.embedding_weight),
        }
        n_features += DIM
    if arrays["coef"].shape[0] != n_features:
        raise Unsupported(f"{arrays['coef'].shape[0]} coefficients a class for {n_features} features")
    meta = {
        "format": COMPILED_FORMAT,
        "classes": classes,
        "threshold": float(model.threshold),
        "other": str(getattr(model, "other", OTHER)),
        "cleaning": {
            "url": data._URL.pattern,
            "non_alnum": data._NON_ALNUM.pattern,
            "stopwords": list(data.STOPWORDS),
        },
        "vectorizers": vectorizers,
        "embedding": embedding,
        "classifier": classifier,
    }
    return meta, arrays


def compiled_bytes(model: Any) -> bytes:
    """The compiled file of ``model`` (an ``.npz``), or :class:`Unsupported`."""
    meta, arrays = compile_model(model)
    buffer = io.BytesIO()
    blob = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode(), dtype=np.uint8)
    np.savez(buffer, meta=blob, **arrays)
    return buffer.getvalue()


def check_compiled(compiled: CompiledModel, model: Any) -> None:
    """Raise :class:`Unsupported` unless ``compiled`` gives ``model``'s TF-IDF features and classifier probabilities
    (on a few probe texts and random feature rows; the embedding is the same code on both sides)."""
    import scipy.sparse as sp

    probes = [
        "",
        "Transfer learning with transformers Using transformers for NLP",
        "Émile's GAN: image-to-image translation (https://x.io/a) — fast, 3D!",
        "kubernetes   MLOps\tpipelines\nfor models " * 3,
    ]
    texts = compiled.clean(probes)
    from tagifai.data import clean_texts

    if texts != list(clean_texts(probes)):
        raise Unsupported("self-check: text cleaning differs")
    expected = model.features_.transform(list(texts)).toarray()
    got = np.zeros_like(expected)
    for i, (cols, vals) in enumerate(compiled.tfidf_rows(texts)):
        got[i, cols] = vals
    if expected.shape != got.shape or not np.allclose(expected, got, rtol=0, atol=1e-12):
        raise Unsupported("self-check: TF-IDF features differ")
    rng = np.random.default_rng(0)
    n_features = compiled.coef.shape[0]
    dense = rng.normal(size=(3, n_features)) * (rng.random((3, n_features)) < 0.01)
    expected_p = np.asarray(model.classifier_.predict_proba(sp.csr_matrix(dense)), dtype=float)
    got_p = compiled.proba_of_scores(dense @ compiled.coef + compiled.intercept)
    if not np.allclose(expected_p, got_p, rtol=0, atol=1e-9):
        raise Unsupported("self-check: classifier probabilities differ")


# --------------------------------------------------------------------------- serving (numpy and the standard library)


class _Vectorizer:
    """One fitted TF-IDF vectorizer's transform, as scikit-learn computes it."""

    def __init__(self, spec: dict[str, Any], idf: np.ndarray | None):
        self.analyzer = spec["analyzer"]
        self.min_n, self.max_n = (int(n) for n in spec["ngram_range"])
        self.lowercase = bool(spec["lowercase"])
        self.binary = bool(spec["binary"])
        self.sublinear_tf = bool(spec["sublinear_tf"])
        self.norm = spec["norm"]
        self.idf = idf
        self.vocabulary = {term: i for i, term in enumerate(spec["terms"])}
        self.size = len(spec["terms"])
        self.token_re = re.compile(spec["token_pattern"]) if self.analyzer == "word" else None

    # scikit-learn's analyzers (sklearn.feature_extraction.text, _VectorizerMixin), stop words left out
    def _word_ngrams(self, tokens: list[str]) -> list[str]:
        min_n, max_n = self.min_n, self.max_n
        if max_n != 1:
            original = tokens
            if min_n == 1:
                tokens = list(original)
                min_n += 1
            else:
                tokens = []
            n_original = len(original)
            for n in range(min_n, min(max_n + 1, n_original + 1)):
                for i in range(n_original - n + 1):
                    tokens.append(" ".join(original[i : i + n]))
        return tokens

    def _char_ngrams(self, text: str) -> list[str]:
        text = _WHITE_SPACES.sub(" ", text)
        text_len = len(text)
        min_n, max_n = self.min_n, self.max_n
        if min_n == 1:
            ngrams = list(text)
            min_n += 1
        else:
            ngrams = []
        for n in range(min_n, min(max_n + 1, text_len + 1)):
            for i in range(text_len - n + 1):
                ngrams.append(text[i : i + n])
        return ngrams

    def _char_wb_ngrams(self, text: str) -> list[str]:
        text = _WHITE_SPACES.sub(" ", text)
        ngrams = []
        for w in text.split():
            w = " " + w + " "
            w_len = len(w)
            for n in range(self.min_n, self.max_n + 1):
                offset = 0
                ngrams.append(w[offset : offset + n])
                while offset + n < w_len:
                    offset += 1
                    ngrams.append(w[offset : offset + n])
                if offset == 0:
                    break
        return ngrams

    def analyze(self, text: str) -> list[str]:
        if self.lowercase:
            text = text.lower()
        if self.analyzer == "char_wb":
            return self._char_wb_ngrams(text)
        if self.analyzer == "char":
            return self._char_ngrams(text)
        return self._word_ngrams(self.token_re.findall(text))

    def row(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(sorted column indices, TF-IDF values) of one text: counts, sublinear tf, idf, norm."""
        get = self.vocabulary.get
        counts = Counter(j for j in map(get, self.analyze(text)) if j is not None)
        cols = np.array(sorted(counts), dtype=np.intp)
        if self.binary:
            vals = np.ones(len(cols), dtype=np.float64)
        else:
            vals = np.array([counts[j] for j in cols.tolist()], dtype=np.float64)
        if self.sublinear_tf:
            np.log(vals, vals)
            vals += 1.0
        if self.idf is not None:
            vals *= self.idf[cols]
        if self.norm is not None and len(vals):
            total = 0.0  # sequential, as sklearn's inplace_csr_row_normalize_l2/l1
            if self.norm == "l2":
                for v in vals.tolist():
                    total += v * v
                total = math.sqrt(total)
            else:
                for v in vals.tolist():
                    total += abs(v)
            if total != 0.0:
                vals /= total
        return cols, vals


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _one_vs_rest(p: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities from one-vs-rest scores in [0, 1], as scikit-learn's linear models give them: the positive
    class's column for two classes, else each row normalised (a row of zeros: uniform)."""
    if n_classes == 2:
        return np.column_stack([1.0 - p[:, 0], p[:, 0]])
    total = p.sum(axis=1)
    zero = total == 0
    p[zero, :] = 1
    total[zero] = n_classes
    return p / total[:, np.newaxis]


class CompiledModel:
    """A :class:`~tagifai.model.TagifaiModel`'s predictions from its compiled form (no scikit-learn, SciPy, pandas).

    ``predict_proba``/``predict`` take what the model takes (a frame with title and description, or with text;
    raw strings); :meth:`predict_rows` takes titles and descriptions as lists.
    """

    def __init__(self, meta: dict[str, Any], arrays: dict[str, np.ndarray]):
        if meta.get("format") != COMPILED_FORMAT:
            raise ValueError(f"compiled format {meta.get('format')!r}, expected {COMPILED_FORMAT}")
        self.meta = meta
        self.classes_ = list(meta["classes"])
        self.threshold = float(meta["threshold"])
        self.other = str(meta["other"])
        cleaning = meta["cleaning"]
        self._url = re.compile(cleaning["url"])
        self._non_alnum = re.compile(cleaning["non_alnum"])
        stopwords = cleaning["stopwords"]
        self._stopwords = None
        if stopwords:
            words = sorted({re.escape(w.lower()) for w in stopwords}, key=len, reverse=True)
            self._stopwords = re.compile(r"\b(" + "|".join(words) + r")\b\s*")
        self._chunks: dict[str, tuple[str, ...]] = {}
        self.vectorizers = [
            _Vectorizer(spec, arrays.get(f"idf_{i}") if spec["use_idf"] else None)
            for i, spec in enumerate(meta["vectorizers"])
        ]
        self.n_tfidf = sum(v.size for v in self.vectorizers)
        self.coef = arrays["coef"]
        self.intercept = arrays["intercept"]
        self.classifier = meta["classifier"]
        self.embedding = meta["embedding"]
        self._embedder = None

    def __repr__(self) -> str:
        return f"CompiledModel({self.classifier['kind']}, embedding={bool(self.embedding)}, classes={self.classes_})"

    @classmethod
    def from_bytes(cls, data: bytes) -> CompiledModel:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
        return cls(meta, arrays)

    # ------------------------------------------------------------------ text
    def _clean_chunk(self, chunk: str) -> tuple[str, ...]:
        chunk = self._url.sub(" ", chunk)
        if self._stopwords is not None:
            chunk = self._stopwords.sub(" ", chunk)
        return tuple(self._non_alnum.sub(" ", chunk).split())

    def clean(self, raw: list[str]) -> list[str]:
        """:func:`tagifai.data.clean_texts` (lowercase; URLs, stop words and non-alphanumerics out; per chunk)."""
        memo = self._chunks
        out = []
        for text in raw:
            parts = []
            for chunk in text.lower().split():
                part = memo.get(chunk)
                if part is None:
                    part = self._clean_chunk(chunk)
                    if len(memo) >= 1 << 16:
                        memo.clear()
                    memo[chunk] = part
                parts.append(part)
            out.append(" ".join(chain.from_iterable(parts)))
        return out

    def tfidf_rows(self, texts: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each cleaned text's TF-IDF columns and values (the vectorizers side by side, as a FeatureUnion)."""
        rows = []
        for text in texts:
            cols, vals, offset = [], [], 0
            for vec in self.vectorizers:
                c, v = vec.row(text)
                cols.append(c + offset)
                vals.append(v)
                offset += vec.size
            rows.append((np.concatenate(cols), np.concatenate(vals)))
        return rows

    def _embed(self, raw: list[str]) -> np.ndarray:
        if self._embedder is None:
            from tagifai.embeddings import SentenceEmbedder

            e = self.embedding
            self._embedder = SentenceEmbedder(
                e["name"], max_length=e["max_length"], batch_size=e["batch_size"], store_writes=False
            )
        return self._embedder.encode(raw) * float(self.embedding["weight"])

    # ------------------------------------------------------------------ the classifier
    def proba_of_scores(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities from the decision values of every linear model (``X @ coef + intercept``)."""
        spec = self.classifier
        n_classes = len(self.classes_)
        rows = int(spec["rows"])
        n = scores.shape[0]
        kind = spec["kind"]
        if kind == "calibrated_sigmoid":
            mean = np.zeros((n, n_classes))
            for f in range(int(spec["folds"])):
                d = scores[:, f * rows : (f + 1) * rows]
                a = np.asarray(spec["a"][f], dtype=np.float64)
                b = np.asarray(spec["b"][f], dtype=np.float64)
                p = _expit(-(a * d + b))
                if n_classes == 2:
                    proba = np.empty((n, 2))
                    proba[:, 1] = p[:, 0]
                    proba[:, 0] = 1.0 - proba[:, 1]
                else:
                    denominator = np.sum(p, axis=1)[:, np.newaxis]
                    uniform = np.full_like(p, 1 / n_classes)
                    proba = np.divide(p, denominator, out=uniform, where=denominator != 0)
                proba[(proba > 1.0) & (proba <= _CALIBRATION_CLIP)] = 1.0
                mean += proba
            mean /= int(spec["folds"])
            return mean
        d = scores[:, :rows]
        if kind == "logreg" and n_classes > 2:
            e = np.exp(d - d.max(axis=1, keepdims=True))
            return e / e.sum(axis=1, keepdims=True)
        if kind in ("logreg", "sgd_log"):
            return _one_vs_rest(_expit(d), n_classes)
        if kind == "sgd_modified_huber":
            return _one_vs_rest((np.clip(d, -1, 1) + 1.0) / 2.0, n_classes)
        raise ValueError(f"unknown classifier kind {kind!r}")

    # ------------------------------------------------------------------ prediction
    def proba_of_raw(self, raw: list[str], cleaned: list[str] | None = None) -> np.ndarray:
        """Probabilities of raw texts (``title + " " + description``, stripped); ``cleaned`` when already known."""
        if not raw:
            return np.zeros((0, len(self.classes_)))
        texts = self.clean(raw) if cleaned is None else cleaned
        scores = np.empty((len(texts), self.coef.shape[1]))
        coef_tfidf = self.coef[: self.n_tfidf]
        for i, (cols, vals) in enumerate(self.tfidf_rows(texts)):
            scores[i] = vals @ coef_tfidf[cols]
        if self.embedding:
            scores += self._embed(raw).astype(np.float64) @ self.coef[self.n_tfidf :]
        scores += self.intercept
        return self.proba_of_scores(scores)

    def predict_rows(self, titles: list[Any], descriptions: list[Any]) -> np.ndarray:
        """Probabilities of projects given as titles and descriptions (None counts as empty)."""
        raw = [f"{_cell(t)} {_cell(d)}".strip() for t, d in zip(titles, descriptions, strict=True)]
        return self.proba_of_raw(raw)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Probabilities, one column per class in :attr:`classes_` order (the inputs of ``TagifaiModel``)."""
        columns = getattr(X, "columns", None)
        if columns is not None:
            names = set(columns)
            if {"title", "description"} <= names:
                raw = [
                    f"{_cell(t)} {_cell(d)}".strip()
                    for t, d in zip(X["title"].tolist(), X["description"].tolist(), strict=True)
                ]
                cleaned = [_cell(t) for t in X["text"].tolist()] if "text" in names else None
                return self.proba_of_raw(raw, cleaned)
            if "text" in names:
                texts = [_cell(t) for t in X["text"].tolist()]
                return self.proba_of_raw(texts, texts)
            raise ValueError("model input: needs title and description (or text) columns")
        if isinstance(X, str):
            X = [X]
        return self.proba_of_raw([_cell(x) for x in X])

    def predict(self, X: Any, threshold: float | None = None) -> np.ndarray:
        t = self.threshold if threshold is None else float(threshold)
        return apply_threshold(self.predict_proba(X), self.classes_, t, self.other)


def _cell(value: Any) -> str:
    """A cell as the model reads it: None and NaN are empty, anything else its ``str``."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return value if isinstance(value, str) else str(value)


def predict_records(model: CompiledModel, title: str, description: str) -> list[dict[str, Any]]:
    """``tagifai.predict.predict(model, <one-row frame>).to_dict(orient="records")`` without pandas."""
    proba = model.predict_rows([title], [description])
    tag = apply_threshold(proba, model.classes_, model.threshold, model.other)[0]
    record: dict[str, Any] = {"predicted_tag": tag}
    for i, cls in enumerate(model.classes_):
        record[prob_column(cls)] = float(proba[0, i])
    return [record]
