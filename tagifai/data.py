"""Data preparation: cleaning text, mapping raw tags to the target classes, splitting.

The input everywhere is a *labeled projects* frame with the columns ``id, created_on, title,
description, tag`` (the dbt model ``labeled_projects``). :func:`prepare` adds the two columns the model
needs: ``text`` (title and description, cleaned) and ``label`` (one of four classes:
natural-language-processing, computer-vision, mlops, other). :func:`split` makes stratified,
deterministic train/validation/test splits.

Only pandas, numpy and the standard library are imported at module level; scikit-learn is imported
inside :func:`split`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import chain
from typing import NamedTuple

import pandas as pd

from tagifai.labels import OTHER as LABELS_OTHER

#: Tags the model may predict as themselves; every other tag becomes :data:`OTHER`.
ACCEPTED_TAGS: tuple[str, ...] = (
    "natural-language-processing",
    "computer-vision",
    "mlops",
    "graph-learning",
)
#: The label of everything outside the accepted (and frequent enough) tags (defined in tagifai.labels, which
#: the compiled serving path imports without pandas).
OTHER = LABELS_OTHER

#: Default ``min_freq`` of :func:`map_labels`: a tag needs at least 5% of the rows to be a class.
#: A float in (0, 1) is a fraction of the rows, an int >= 1 an absolute count. The course used an
#: absolute 75 on 955 rows; on the 764 rows here that would fold mlops (63) into "other". 5% of 764
#: is 38.2: mlops (63) stays a class and graph-learning (33) folds into "other", which gives the four
#: classes of the newer Made With ML dataset. A relative threshold also behaves sensibly on the full
#: 955-row file and on smaller batches, where an absolute count would fold everything into "other".
DEFAULT_MIN_FREQ: float = 0.05

#: English stop words (NLTK's list, as used by the course; kept in code: no corpus download).
STOPWORDS: tuple[str, ...] = tuple(
    [
        "i",
        "me",
        "my",
        "myself",
        "we",
        "our",
        "ours",
        "ourselves",
        "you",
        "you're",
        "you've",
        "you'll",
        "you'd",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "he",
        "him",
        "his",
        "himself",
        "she",
        "she's",
        "her",
        "hers",
        "herself",
        "it",
        "it's",
        "its",
        "itself",
        "they",
        "them",
        "their",
        "theirs",
        "themselves",
        "what",
        "which",
        "who",
        "whom",
        "this",
        "that",
        "that'll",
        "these",
        "those",
        "am",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "have",
        "has",
        "had",
        "having",
        "do",
        "does",
        "did",
        "doing",
        "a",
        "an",
        "the",
        "and",
        "but",
        "if",
        "or",
        "because",
        "as",
        "until",
        "while",
        "of",
        "at",
        "by",
        "for",
        "with",
        "about",
        "against",
        "between",
        "into",
        "through",
        "during",
        "before",
        "after",
        "above",
        "below",
        "to",
        "from",
        "up",
        "down",
        "in",
        "out",
        "on",
        "off",
        "over",
        "under",
        "again",
        "further",
        "then",
        "once",
        "here",
        "there",
        "when",
        "where",
        "why",
        "how",
        "all",
        "any",
        "both",
        "each",
        "few",
        "more",
        "most",
        "other",
        "some",
        "such",
        "no",
        "nor",
        "not",
        "only",
        "own",
        "same",
        "so",
        "than",
        "too",
        "very",
        "s",
        "t",
        "can",
        "will",
        "just",
        "don",
        "don't",
        "should",
        "should've",
        "now",
        "d",
        "ll",
        "m",
        "o",
        "re",
        "ve",
        "y",
        "ain",
        "aren",
        "aren't",
        "couldn",
        "couldn't",
        "didn",
        "didn't",
        "doesn",
        "doesn't",
        "hadn",
        "hadn't",
        "hasn",
        "hasn't",
        "haven",
        "haven't",
        "isn",
        "isn't",
        "ma",
        "mightn",
        "mightn't",
        "mustn",
        "mustn't",
        "needn",
        "needn't",
        "shan",
        "shan't",
        "shouldn",
        "shouldn't",
        "wasn",
        "wasn't",
        "weren",
        "weren't",
        "won",
        "won't",
        "wouldn",
        "wouldn't",
    ]
)

#: Columns :func:`prepare` needs.
PREPARE_COLUMNS: tuple[str, ...] = ("title", "description", "tag")

_URL = re.compile(r"(?:https?://|www\.)\S+")
_PUNCT = re.compile(r"([!\"'#$%&()*\+,\-./:;<=>?@\\\[\]^_`{|}~])")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_SPACES = re.compile(r" +")
_STOPWORD_PATTERNS: dict[tuple[str, ...], re.Pattern] = {}


class DataError(ValueError):
    """The input frame cannot be used (a missing column, an empty frame, too few rows to split)."""


class Splits(NamedTuple):
    """Train, validation and test frames (disjoint; together the whole input)."""

    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame


def require_columns(df: pd.DataFrame, columns: Iterable[str], what: str = "input") -> None:
    """Raise :class:`DataError` naming every column of ``columns`` that ``df`` lacks."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(f"{what}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise DataError(f"{what} is missing column(s) {names} (has: {', '.join(map(str, df.columns))})")


def _stopword_pattern(stopwords: Sequence[str]) -> re.Pattern:
    key = tuple(stopwords)
    pattern = _STOPWORD_PATTERNS.get(key)
    if pattern is None:
        # Longest first, so "don't" wins over "don".
        words = sorted({re.escape(w.lower()) for w in key}, key=len, reverse=True)
        pattern = re.compile(r"\b(" + "|".join(words) + r")\b\s*")
        _STOPWORD_PATTERNS[key] = pattern
    return pattern


def clean_text_regex(text: str, lower: bool = True, stopwords: Sequence[str] = STOPWORDS) -> str:
    """:func:`clean_text` as its definition: the chain of regular expressions over the whole text (lowercase, URLs,
    stop words, punctuation, every other non-alphanumeric character, runs of spaces). :func:`clean_text` gives the
    same string for every input, mostly faster (see there); this is the reference its tests compare with."""
    if lower:
        text = text.lower()
    text = _URL.sub(" ", text)
    if stopwords:
        text = _stopword_pattern(stopwords).sub(" ", text)
    text = _PUNCT.sub(r" \1 ", text)
    text = _NON_ALNUM.sub(" ", text) if lower else re.sub(r"[^A-Za-z0-9]+", " ", text)
    text = _SPACES.sub(" ", text)
    return text.strip()


# Why clean_text works word by word (issue 13: the regexes were ~50 us a row, a fifth of TF-IDF-only prediction).
# With lower=True, every step of clean_text_regex keeps to one whitespace-separated chunk of the lowercased text:
# a URL is "http(s)://" or "www." and the non-space characters after it; a stop word starts and ends with a word
# character and holds no whitespace (checked for every stop list before it takes this path), so the \b around it
# see the same neighbours in the chunk as in the text (whitespace is a non-word character, as is a chunk's edge);
# the output keeps only runs of [a-z0-9], joined by one space. So the cleaned text is the words of the cleaned
# chunks joined by spaces, and a chunk is cleaned once: chunks repeat, so most come from a bounded memo (a dict
# look-up costs less than one regex call). Punctuation and runs of spaces need no step of their own there (both
# become single spaces with the other non-alphanumeric characters).
# tests/unit/test_textfeatures.py compares both on the real data and on adversarial strings.

#: Cleaned chunks (their words) remembered per stop list; a memo holding this many chunks is emptied first.
_CHUNK_MEMO_MAX = 1 << 16
_CHUNK_MEMOS: dict[tuple[str, ...], dict[str, tuple[str, ...]] | None] = {}
_DEFAULT_CHUNK_MEMO: dict[str, tuple[str, ...]] = {}


def _chunk_memo(stopwords: Sequence[str] | None) -> dict[str, tuple[str, ...]] | None:
    """The memo of cleaned chunks for this stop list, or None when the stop list breaks the chunk argument."""
    if stopwords is STOPWORDS:  # the usual case, without hashing the 179 words at every call
        return _DEFAULT_CHUNK_MEMO
    key = tuple(stopwords or ())
    memo = _CHUNK_MEMOS.get(key, False)
    if memo is False:
        word_like = re.compile(r"\w(?:\S*\w)?")
        memo = {} if all(word_like.fullmatch(w.lower()) for w in key) else None
        _CHUNK_MEMOS[key] = memo
    return memo


def _clean_chunk(chunk: str, stopwords: Sequence[str] | None) -> tuple[str, ...]:
    """The words left of one lowercased chunk without whitespace (clean_text_regex's steps that matter there)."""
    chunk = _URL.sub(" ", chunk)
    if stopwords:
        chunk = _stopword_pattern(stopwords).sub(" ", chunk)
    return tuple(_NON_ALNUM.sub(" ", chunk).split())


def _clean_words(text: str, memo: dict[str, tuple[str, ...]], stopwords: Sequence[str] | None) -> list[str]:
    """The words of ``clean_text(text)`` (lowercase, with ``memo`` of ``stopwords``)."""
    chunks = text.lower().split()
    parts = list(map(memo.get, chunks))
    if None in parts:
        for i, part in enumerate(parts):
            if part is None:
                parts[i] = _clean_chunk(chunks[i], stopwords)
                if len(memo) >= _CHUNK_MEMO_MAX:
                    memo.clear()
                memo[chunks[i]] = parts[i]
    return list(chain.from_iterable(parts))


def clean_text(text: object, lower: bool = True, stopwords: Sequence[str] = STOPWORDS) -> str:
    """Clean raw text as the course does: lowercase, drop URLs and stop words, punctuation, extra spaces.

    URLs are removed first (the course removed them last, after punctuation had already split them
    into words). Non-alphanumeric characters become spaces. ``None``/NaN give "".
    The result is :func:`clean_text_regex`'s, computed per whitespace-separated chunk with a memo when
    ``lower`` is true (the comment above this function says why that is the same).

    >>> clean_text("Hello, World! See https://example.com/x for the BEST models.")
    'hello world see best models'
    """
    if text is None or (isinstance(text, float) and text != text):
        return ""
    text = str(text)
    memo = _chunk_memo(stopwords) if lower else None
    if memo is None:
        return clean_text_regex(text, lower, stopwords)
    return " ".join(_clean_words(text, memo, stopwords))


class TextBatch(list):
    """A list of texts with what is known about them, for the TF-IDF vectorizers (:mod:`tagifai.textfeatures`).

    ``words``: None, or each text's words (``words[i] == self[i].split()``) when every text is lowercase, as
    :func:`clean_texts` makes them (the vectorizers then need not split the texts). ``derived``: a dict in which
    the vectorizers of one call keep the tokenization they share. A batch is read-only once made.
    """

    def __init__(self, texts: Iterable[str] = (), words: list[list[str]] | None = None):
        super().__init__(texts)
        if words is not None and len(words) != len(self):
            raise ValueError(f"{len(words)} word lists for {len(self)} texts")
        self.words = words
        self.derived: dict = {}


def clean_texts(texts: Iterable[object]) -> TextBatch:
    """:func:`clean_text` of each text (default options), as a :class:`TextBatch` that keeps each one's words.
    (:func:`_clean_words` inlined: a call less per text is ~10% of the cleaning.)"""
    memo = _DEFAULT_CHUNK_MEMO
    get = memo.get
    from_iterable = chain.from_iterable
    words: list[list[str]] = []
    append = words.append
    for text in texts:
        if type(text) is not str:
            if text is None or (isinstance(text, float) and text != text):
                append([])
                continue
            text = str(text)
        chunks = text.lower().split()
        parts = list(map(get, chunks))
        if None in parts:
            for i, part in enumerate(parts):
                if part is None:
                    parts[i] = _clean_chunk(chunks[i], STOPWORDS)
                    if len(memo) >= _CHUNK_MEMO_MAX:
                        memo.clear()
                    memo[chunks[i]] = parts[i]
        append(list(from_iterable(parts)))
    return TextBatch(map(" ".join, words), words=words)


def _threshold(min_freq: float, n: int) -> float:
    if min_freq is None:
        return 0
    if min_freq < 0:
        raise DataError(f"min_freq must be >= 0, got {min_freq}")
    if 0 < min_freq < 1:
        return min_freq * n
    return float(min_freq)


def map_labels(
    tags: Iterable[str],
    accepted_tags: Iterable[str] = ACCEPTED_TAGS,
    min_freq: float = DEFAULT_MIN_FREQ,
    other: str = OTHER,
) -> pd.Series:
    """Map raw tags to classes: tags outside ``accepted_tags`` or rarer than ``min_freq`` become ``other``.

    ``min_freq`` is a fraction of the rows when in (0, 1), else an absolute count (a tag needs at
    least that many rows). On the 764 Made With ML rows the default keeps natural-language-processing
    (310), computer-vision (285) and mlops (63) and folds graph-learning (33), reinforcement-learning,
    time-series into "other": four classes.
    """
    tags = pd.Series(tags, dtype="object") if not isinstance(tags, pd.Series) else tags.astype("object")
    counts = tags.value_counts()
    limit = _threshold(min_freq, len(tags))
    accepted = set(accepted_tags)
    keep = {tag for tag, n in counts.items() if tag in accepted and n >= limit}
    return tags.where(tags.isin(keep), other).rename("label")


def prepare(
    df: pd.DataFrame,
    accepted_tags: Iterable[str] = ACCEPTED_TAGS,
    min_freq: float = DEFAULT_MIN_FREQ,
) -> pd.DataFrame:
    """A copy of ``df`` with ``text`` (title + " " + description, cleaned) and ``label`` added.

    Needs the columns title, description and tag (:class:`DataError` names any that is missing).
    A missing description (NaN) counts as empty. Rows are neither dropped nor reordered.
    """
    require_columns(df, PREPARE_COLUMNS, "labeled projects")
    out = df.copy()
    out["text"] = build_text(out)
    out["label"] = map_labels(out["tag"], accepted_tags=accepted_tags, min_freq=min_freq).to_numpy()
    return out


def raw_text(df: pd.DataFrame) -> pd.Series:
    """``title + " " + description`` of each row as written (a missing part counts as empty), stripped."""
    require_columns(df, ("title", "description"), "projects")
    title = df["title"].fillna("").astype(str)
    description = df["description"].fillna("").astype(str)
    return (title + " " + description).str.strip()


def build_text(df: pd.DataFrame) -> pd.Series:
    """Cleaned ``title + " " + description`` of each row (the model's input text)."""
    return raw_text(df).map(clean_text).rename("text")


def split(
    df: pd.DataFrame,
    val_size: float = 0.15,
    test_size: float = 0.2,
    seed: int = 42,
    label_column: str = "label",
) -> Splits:
    """Stratified, deterministic train/validation/test split.

    ``val_size`` and ``test_size`` are fractions of the whole frame (the test part is taken first, so
    for a given ``test_size`` and ``seed`` the test rows do not depend on ``val_size``). Either may be 0
    (an empty frame with the same columns comes back). The same inputs always give the same splits.
    """
    require_columns(df, (label_column,), "split input")
    for name, value in (("val_size", val_size), ("test_size", test_size)):
        if not 0 <= value < 1:
            raise DataError(f"{name} must be in [0, 1), got {value}")
    if val_size + test_size >= 1:
        raise DataError(f"val_size + test_size must be < 1, got {val_size + test_size}")
    if len(df) == 0:
        raise DataError("cannot split an empty frame")
    from sklearn.model_selection import train_test_split

    def _cut(frame: pd.DataFrame, size: float) -> tuple[pd.DataFrame, pd.DataFrame]:
        if size == 0:
            return frame, frame.iloc[0:0]
        counts = frame[label_column].value_counts()
        stratify = frame[label_column] if counts.min() >= 2 else None
        try:
            return train_test_split(frame, test_size=size, stratify=stratify, random_state=seed)
        except ValueError as exc:  # e.g. fewer test rows than classes
            raise DataError(f"cannot split {len(frame)} rows with size {size}: {exc}") from exc

    rest, test = _cut(df, test_size)
    rest_val = val_size / (1 - test_size) if val_size else 0
    train, val = _cut(rest, rest_val)
    return Splits(train, val, test)
