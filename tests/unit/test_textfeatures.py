"""The fast text path of prediction (issue 13) gives exactly what scikit-learn and the regexes give.

- :func:`tagifai.data.clean_text` (word by word, with a memo) equals :func:`tagifai.data.clean_text_regex` (the
  chain of regexes it replaced) on the real projects and on adversarial strings;
- :class:`tagifai.textfeatures.FastTfidfVectorizer` gives the same matrix, bit for bit (values, indices, layout,
  dtypes), as scikit-learn's ``TfidfVectorizer`` with the same fitted vocabulary and idf, on the real data, for
  the model's settings and others, in both of its counting paths;
- fitted, it learns the same vocabulary, idf and fit_transform matrix (scikit-learn's row layout included) as
  scikit-learn's, raises and warns as it does, and leaves other settings to scikit-learn's own fit;
- models use it, old pickles (scikit-learn's vectorizers) load onto it, and their predictions do not change.
"""

from __future__ import annotations

import copy
import pickle
import random
import re

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer

from tagifai import textfeatures
from tagifai.data import STOPWORDS, TextBatch, clean_text, clean_text_regex, clean_texts, prepare, raw_text
from tagifai.model import TagifaiModel, TrainArgs, build_features
from tagifai.textfeatures import FastTfidfVectorizer, accelerate

ADVERSARIAL = [
    "",
    "   ",
    "It's a don't-miss: the O'Reilly book's 2nd ed.",
    "don't\tdon 't don'tx xdon't it's its it'S IT'S",
    "See https://example.com/a?b=c,d and www.x.org/path. (http://y) then-www.z.com",
    "http:// www. https://x www.y httpwww.z.co",
    "naïve café Straße İstanbul ΣΊΣΥΦΟΣ ǅemal ﬁne",
    "o'reilly o’reilly l'été the_thing __init__ a_b_the",
    "state-of-the-art NLP/CV & MLOps!!! 3-d 1.5x 10,000",
    "no-break\u00a0space\u2003em\u2028line\u0085nel\x1cfs\x1fus end",
    "THE The tHe the\nthe\r\nthe\x0bthe\x0cthe",
    "émoji 🤖 robots 🤖🤖 and/or & | ~ ^ ` @ # $ % * + = < > ? ; : [ ] { }",
    "ab'cd'ef 'quoted' ''double'' ' lone '",
    "wouldn't've y'all ma'am ain't isn't",
]


def _random_texts(n: int, seed: int = 0) -> list[str]:
    """Strings made of stop words, apostrophes, URLs, punctuation, Unicode letters and whitespace."""
    rng = random.Random(seed)
    pieces = [*STOPWORDS[:60], "'", "’", "-", "www.", "http://", "https://", ".", ",", "!", "_", "x", "ML"]
    pieces += ["É", "é", "ß", "İ", "Σ", "ς", "1", "42", " ", "  ", "\t", "\n", "\u00a0", "\u3000", "🤖", "The", "DON'T"]
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(n)]


# --------------------------------------------------------------------------- cleaning


def test_clean_text_equals_the_regex_chain_on_real_and_adversarial_text(labeled_df):
    texts = raw_text(labeled_df).tolist() + ADVERSARIAL + _random_texts(3000)
    assert [clean_text(t) for t in texts] == [clean_text_regex(t) for t in texts]
    batch = clean_texts(texts)
    assert isinstance(batch, TextBatch) and list(batch) == [clean_text_regex(t) for t in texts]
    assert batch.words == [t.split() for t in batch]
    assert all(t == t.lower() for t in batch)
    assert clean_texts([None, float("nan"), "The CAT"]) == ["", "", "cat"]


@pytest.mark.parametrize(
    "stopwords",
    [(), ("cat", "don't"), ["the", "a"], ("-x", "the"), ("a b",)],  # the last two take the regex path
)
def test_clean_text_with_other_stop_lists_and_case(stopwords):
    texts = ADVERSARIAL + _random_texts(500, seed=1)
    for text in texts:
        assert clean_text(text, stopwords=stopwords) == clean_text_regex(text, stopwords=stopwords)
        assert clean_text(text, lower=False, stopwords=stopwords) == clean_text_regex(
            text, lower=False, stopwords=stopwords
        )


def test_clean_text_memo_is_bounded(monkeypatch):
    from tagifai import data

    memo = data._chunk_memo(STOPWORDS)
    monkeypatch.setattr(data, "_CHUNK_MEMO_MAX", 50)
    texts = _random_texts(300, seed=2)
    assert [clean_text(t) for t in texts] == [clean_text_regex(t) for t in texts]
    assert len(memo) <= 50


# --------------------------------------------------------------------------- the vectorizer


def _assert_same_matrix(a, b) -> None:
    assert type(a) is type(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.indices.dtype == b.indices.dtype and a.indptr.dtype == b.indptr.dtype
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)  # bit for bit: the same floats in the same order
    rows = np.repeat(np.arange(a.shape[0]), np.diff(a.indptr))
    assert np.all((np.diff(a.indices) > 0) | (np.diff(rows) > 0))  # each row's columns in increasing order


@pytest.fixture(scope="module")
def real_texts(_labeled_projects):
    df = prepare(_labeled_projects)
    train, new = df.iloc[:500], df.iloc[500:]
    unseen = [f"{t} zqxjk {t[::-1]}" for t in new["text"]]  # words and n-grams outside the vocabulary
    raw = raw_text(new).tolist()  # not cleaned: case, punctuation, Unicode
    return train["text"].tolist(), new["text"].tolist() + unseen + raw + ADVERSARIAL + _random_texts(200, seed=3)


SETTINGS = [
    dict(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),  # the model's char part
    dict(analyzer="word", ngram_range=(1, 1), sublinear_tf=True),  # the model's word part
    dict(analyzer="char_wb", ngram_range=(1, 3), norm=None, use_idf=False),
    dict(analyzer="char_wb", ngram_range=(3, 5), lowercase=False, dtype=np.float32),
    dict(analyzer="char_wb", ngram_range=(2, 4), strip_accents="unicode", binary=True),
    dict(analyzer="word", ngram_range=(1, 1), stop_words="english", min_df=2, max_features=500),
    dict(analyzer="word", ngram_range=(1, 1), lowercase=False, norm="l1", smooth_idf=False),
    dict(analyzer="word", ngram_range=(1, 2)),  # scikit-learn's path (n-grams span words)
    dict(analyzer="char", ngram_range=(2, 4)),  # scikit-learn's path
    dict(analyzer="word", token_pattern=r"\S+"),  # scikit-learn's path
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_fast_vectorizer_is_bit_identical_to_scikit_learn(real_texts, settings):
    train, texts = real_texts
    reference = TfidfVectorizer(**settings).fit(train)
    fast = FastTfidfVectorizer(**settings).fit(train)
    assert fast.vocabulary_ == reference.vocabulary_
    if reference.use_idf:
        assert np.array_equal(fast.idf_, reference.idf_)
    expected = reference.transform(texts)
    _assert_same_matrix(fast.transform(texts), expected)  # the sparse product (many documents), memo cold
    _assert_same_matrix(fast.transform(texts), expected)  # memo warm
    _assert_same_matrix(fast.transform(TextBatch(texts)), expected)
    cleaned = clean_texts(texts)  # a batch that carries its words
    _assert_same_matrix(fast.transform(cleaned), reference.transform(list(cleaned)))
    for start in (0, 7, 500):  # the plain-Python path (a few documents), a single one, and none-empty edges
        for n in (1, 3, textfeatures.SMALL_BATCH):
            part = texts[start : start + n]
            _assert_same_matrix(fast.transform(part), reference.transform(part))
    _assert_same_matrix(fast.transform(iter(texts[:50])), reference.transform(texts[:50]))
    _assert_same_matrix(
        fast.transform([t.encode() for t in texts[:40]]), reference.transform([t.encode() for t in texts[:40]])
    )
    if fast.word_path_applies():
        assert fast._memo(), "the word path was not taken"


def test_fast_vectorizer_edge_cases(real_texts, monkeypatch):
    train, texts = real_texts
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit(train)
    fast = accelerate(copy.deepcopy(reference))
    assert type(fast) is FastTfidfVectorizer and fast.word_path_applies()
    empties = ["", "   ", "zzzz qqqq"] * 20  # no words, no known n-grams
    _assert_same_matrix(fast.transform(empties), reference.transform(empties))
    with pytest.raises(ValueError, match="np.nan is an invalid document"):
        fast.transform(["a", np.nan])
    with pytest.raises(ValueError, match="Iterable over raw text documents expected"):
        fast.transform("one string")
    # Several sparse products (blocks of documents, the last one short): the same output.
    monkeypatch.setattr(textfeatures, "PRODUCT_BLOCK", 97)
    fast.__dict__.pop("_word_memo", None)
    _assert_same_matrix(fast.transform(texts), reference.transform(texts))
    _assert_same_matrix(fast.transform(clean_texts(texts)), reference.transform(clean_texts(texts)))
    # A bounded memo, emptied when full: the same output.
    monkeypatch.setattr(textfeatures, "MEMO_MAX_WORDS", 100)
    fast.__dict__.pop("_word_memo", None)
    _assert_same_matrix(fast.transform(texts), reference.transform(texts))
    assert len(fast._memo()) <= 100
    # A refit (new vocabulary) starts a new memo.
    fast.fit(texts[:100])
    _assert_same_matrix(
        fast.transform(texts), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit(texts[:100]).transform(texts)
    )


def test_fast_vectorizer_is_a_scikit_learn_estimator(real_texts):
    train, texts = real_texts
    fast = FastTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True)
    twin = clone(fast)
    assert type(twin) is FastTfidfVectorizer and twin.get_params() == fast.get_params()
    fast.fit(train)
    fast.transform(texts[:100])
    data = pickle.dumps(fast)
    assert b"tagifai.textfeatures" in data and b"_word_memo" not in data  # the memo is not pickled
    loaded = pickle.loads(data)
    _assert_same_matrix(loaded.transform(texts), fast.transform(texts))
    assert "_word_memo" in fast.__dict__  # pickling did not drop the live object's memo


# --------------------------------------------------------------------------- fitting


def _assert_same_fit(settings: dict, docs, fit: bool = False) -> tuple:
    """Fit scikit-learn's vectorizer and the fast one on ``docs`` (a list, or a function making fresh input):
    the same vocabulary, idf, stop words, fitted state and fit_transform matrix, bit for bit (and ``fit``'s)."""
    make = docs if callable(docs) else lambda: docs
    reference, fast = TfidfVectorizer(**settings), FastTfidfVectorizer(**settings)
    try:
        expected = reference.fit_transform(make())
    except ValueError as error:  # e.g. limits that leave no term: the same error
        with pytest.raises(ValueError, match=re.escape(str(error))):
            fast.fit_transform(make())
        return reference, fast
    got = fast.fit_transform(make())
    assert fast.vocabulary_ == reference.vocabulary_
    assert list(fast.vocabulary_) == list(reference.vocabulary_)  # the same dict order too
    assert getattr(fast, "stop_words_", None) == getattr(reference, "stop_words_", None)
    if reference.use_idf:
        assert fast.idf_.dtype == reference.idf_.dtype and np.array_equal(fast.idf_, reference.idf_)
    assert set(fast.__dict__) - {"_word_memo"} == set(reference.__dict__)  # (e.g. _stop_words_id)
    _assert_same_matrix_unsorted(got, expected)
    some = list(make())[:100]
    _assert_same_matrix(fast.transform(some), reference.transform(some))
    if fit:
        fitted = FastTfidfVectorizer(**settings).fit(make())  # fit: the same vocabulary and idf
        assert fitted.vocabulary_ == reference.vocabulary_
        if reference.use_idf:
            assert np.array_equal(fitted.idf_, reference.idf_)
    return reference, fast


def _assert_same_matrix_unsorted(a, b) -> None:
    """:func:`_assert_same_matrix` without the sorted rows: fit_transform's rows follow scikit-learn's order of
    first appearance, renumbered alphabetically (``_sort_features``), and must be that same layout."""
    assert type(a) is type(b)
    assert a.shape == b.shape and a.dtype == b.dtype
    assert a.indices.dtype == b.indices.dtype and a.indptr.dtype == b.indptr.dtype
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)


@pytest.fixture
def count_paths(monkeypatch):
    """Counts of the calls of scikit-learn's ``_count_vocab`` and of the fast fit (``_learn_words``)."""
    from sklearn.feature_extraction.text import CountVectorizer

    calls = {"sklearn_fit": 0, "sklearn_transform": 0, "fast_fit": 0}
    sklearn_count, learn = CountVectorizer._count_vocab, FastTfidfVectorizer._learn_words

    def count_vocab(self, raw_documents, fixed_vocab):
        calls["sklearn_transform" if fixed_vocab else "sklearn_fit"] += 1
        return sklearn_count(self, raw_documents, fixed_vocab)

    def learn_words(self, raw_documents):
        calls["fast_fit"] += 1
        return learn(self, raw_documents)

    monkeypatch.setattr(CountVectorizer, "_count_vocab", count_vocab)
    monkeypatch.setattr(FastTfidfVectorizer, "_learn_words", learn_words)
    return calls


FIT_SETTINGS = [
    *SETTINGS,
    dict(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2, max_df=0.5),
    dict(analyzer="char_wb", ngram_range=(1, 1), max_features=20, binary=True),
    dict(analyzer="char_wb", ngram_range=(4, 6), max_df=10, norm=None),
    dict(analyzer="word", ngram_range=(1, 1), stop_words="english", sublinear_tf=True, max_df=0.2),
    dict(analyzer="word", ngram_range=(1, 1), strip_accents="ascii", dtype=np.float32, max_features=50),
]


@pytest.mark.parametrize("settings", FIT_SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
def test_fast_fit_is_bit_identical_to_scikit_learn(real_texts, settings, count_paths, monkeypatch):
    train, texts = real_texts
    corpus = train + texts  # cleaned, unseen, raw (case, punctuation, Unicode), adversarial, random
    _assert_same_fit(settings, train, fit=True)
    word_path = FastTfidfVectorizer(**settings).word_path_applies()
    assert count_paths["fast_fit"] == (2 if word_path else 0)  # the fast fit_transform and fit
    assert count_paths["sklearn_fit"] == (1 if word_path else 3)  # the reference's only, on the word path
    _assert_same_fit(settings, corpus)
    part = corpus[::4]
    _assert_same_fit(settings, lambda: iter(part))
    _assert_same_fit(settings, lambda: TextBatch(part))
    _assert_same_fit(settings, lambda: clean_texts(part))  # a batch that carries its words
    _assert_same_fit(settings, [t.encode() for t in part])
    for n in (1, 5, textfeatures.SMALL_BATCH):  # the plain-Python counting path
        _assert_same_fit(settings, texts[500 : 500 + n])
    monkeypatch.setattr(textfeatures, "PRODUCT_BLOCK", 97)  # several sparse products
    _assert_same_fit(settings, corpus[1::3])


FIT_EDGES = [
    "",
    "   \t\n ",
    "the the the THE The",
    "Café CAFÉ café naïve NAÏVE Straße İstanbul",
    "a b c d",  # words shorter than the n-grams (and than the word analyzer's two characters)
    "ab a abc ab",
    "and the of or it is",  # stop words only
    "repeated repeated repeated word word",
    "x-y_z 'q' don't l'été 🤖🤖 3.5",
    "\u00a0nbsp\u2003em\u3000wide\x1cfs",
]


@pytest.mark.parametrize(
    "settings",
    [
        dict(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True),
        dict(analyzer="char_wb", ngram_range=(1, 5), lowercase=False),
        dict(analyzer="char_wb", ngram_range=(3, 3), strip_accents="unicode", min_df=2),
        dict(analyzer="word", sublinear_tf=True),
        dict(analyzer="word", stop_words="english"),
        dict(analyzer="word", stop_words="english", lowercase=False, max_df=0.9),
        dict(analyzer="word", max_features=3, min_df=1),
    ],
    ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()),
)
def test_fast_fit_edge_cases(settings, count_paths):
    for docs in (FIT_EDGES, FIT_EDGES * 5, FIT_EDGES[::-1] * 4, [FIT_EDGES[2], "", "Café"], ["", *FIT_EDGES]):
        _assert_same_fit(settings, docs, fit=True)
    _assert_same_fit(settings, np.array(FIT_EDGES * 4))  # numpy strings
    _assert_same_fit(settings, tuple(FIT_EDGES * 4))
    assert count_paths["fast_fit"] > 0


@pytest.mark.parametrize(
    "settings, docs",
    [
        (dict(analyzer="char_wb"), ["", "   ", "\t\n"]),
        (dict(analyzer="char_wb"), []),
        (dict(analyzer="word"), ["a b c", "", "1 x"]),  # no token of two characters
        (dict(analyzer="word", stop_words="english"), ["the and of", "it IS", ""] * 20),
    ],
)
def test_fast_fit_raises_as_scikit_learn_does(settings, docs, count_paths):
    with pytest.raises(ValueError) as expected:
        TfidfVectorizer(**settings).fit_transform(docs)
    for fit in ("fit", "fit_transform"):
        with pytest.raises(ValueError) as got:
            getattr(FastTfidfVectorizer(**settings), fit)(docs)
        assert str(got.value) == str(expected.value)
    assert "empty vocabulary" in str(expected.value)
    # Limits that leave nothing, bad inputs: scikit-learn's own errors after (or before) the fast counting.
    for bad_settings, bad_docs in [
        (dict(analyzer="char_wb", min_df=5), ["ab", "cd"]),
        (dict(analyzer="word", max_df=1, min_df=2), ["aa bb", "aa cc"]),
        (dict(analyzer="char_wb"), ["ok", np.nan]),
        (dict(analyzer="word"), "one string"),
    ]:
        with pytest.raises(ValueError) as expected:
            TfidfVectorizer(**bad_settings).fit_transform(bad_docs)
        with pytest.raises(ValueError) as got:
            FastTfidfVectorizer(**bad_settings).fit_transform(bad_docs)
        assert str(got.value) == str(expected.value)


def test_fast_fit_warns_as_scikit_learn_does():
    docs = ["I don't know", "we'll see, don't worry"]
    with pytest.warns(UserWarning, match="stop_words may be inconsistent") as expected:
        TfidfVectorizer(stop_words=["don't"]).fit(docs)
    with pytest.warns(UserWarning, match="stop_words may be inconsistent") as got:
        _assert_same_fit(dict(stop_words=["don't"]), docs, fit=True)
    assert [str(w.message) for w in got][:1] == [str(w.message) for w in expected]
    with pytest.warns(UserWarning, match="stop_words may be inconsistent"):  # a given vocabulary: the transform path
        FastTfidfVectorizer(stop_words=["don't"], vocabulary=["know", "see"]).fit(docs)


def test_fast_fit_with_a_given_vocabulary_counts_it(real_texts, count_paths):
    train, _ = real_texts
    for settings in (
        dict(analyzer="char_wb", ngram_range=(2, 3), vocabulary=["th", " t", "the", "zz", "ng "]),
        dict(analyzer="word", vocabulary={"model": 1, "learning": 0, "zqxjk": 2}, sublinear_tf=True),
    ):
        _assert_same_fit(settings, train, fit=True)
    assert count_paths["fast_fit"] == 0 and count_paths["sklearn_fit"] == 0  # (the vocabulary is fixed)


def test_fast_fit_leaves_the_transform_memo_to_the_fitted_vocabulary(real_texts):
    train, texts = real_texts
    fast = FastTfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4))
    fast.fit_transform(train)
    assert not fast.__dict__.get("_word_memo")  # the fit's first-appearance numbering is not remembered
    reference = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit(train)
    _assert_same_matrix(fast.transform(texts), reference.transform(texts))
    fast.fit(texts)  # a refit after a transform: a new vocabulary, a new memo
    _assert_same_matrix(
        fast.transform(train), TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4)).fit(texts).transform(train)
    )


# --------------------------------------------------------------------------- the model


def _plain(features):
    """A copy of a model's features with scikit-learn's own vectorizers."""
    features = copy.deepcopy(features)
    for _, part in features.transformer_list:
        part.__class__ = TfidfVectorizer
    return features


def test_model_features_are_identical_and_old_pickles_load_fast(labeled_df):
    df = prepare(labeled_df)
    args = TrainArgs(embedding="none", threshold_strategy="none")
    assert {type(p) for _, p in build_features(args).transformer_list} == {FastTfidfVectorizer}
    model = TagifaiModel(args).fit(df.iloc[:600], df["label"].iloc[:600])
    new = df.iloc[600:][["title", "description"]]
    texts = clean_texts(raw_text(new))
    plain = _plain(model.features_)
    _assert_same_matrix(model.features_.transform(texts), plain.transform(list(texts)))
    proba = model.predict_proba(new)

    # A model pickled before this change: scikit-learn's vectorizers. It loads with the fast ones, same output.
    old = copy.deepcopy(model)
    old.features_ = plain
    data = pickle.dumps(old)
    assert b"tagifai.textfeatures" not in data
    loaded = pickle.loads(data)
    assert {type(p) for _, p in loaded.features_.transformer_list} == {FastTfidfVectorizer}
    assert np.array_equal(loaded.predict_proba(new), proba)
    assert np.array_equal(loaded.predict_proba(new.head(1)), proba[:1])
    assert loaded.predict(new).tolist() == model.predict(new).tolist()
    # The same probabilities as scikit-learn's vectorizers give, bit for bit.
    assert np.array_equal(model.classifier_.predict_proba(plain.transform(list(texts))), proba)


def test_accelerate_walks_pipelines_and_leaves_other_classes():
    from sklearn.pipeline import FeatureUnion, Pipeline

    class Custom(TfidfVectorizer):
        pass

    inner = TfidfVectorizer()
    custom = Custom()
    pipe = Pipeline([("features", FeatureUnion([("a", inner), ("b", custom)])), ("clf", "passthrough")])
    assert accelerate(pipe) is pipe
    assert type(inner) is FastTfidfVectorizer and type(custom) is Custom
    assert accelerate(None) is None


def test_model_fit_with_the_fast_path_equals_scikit_learn(labeled_df, monkeypatch):
    df = prepare(labeled_df)
    args = TrainArgs(embedding="none", threshold_strategy="none")
    train, new = df.iloc[:600], df.iloc[600:][["title", "description"]]
    made = []
    tokens_init = textfeatures._Tokens.__init__

    def count_tokens(self, splits):
        made.append(len(splits))
        tokens_init(self, splits)

    monkeypatch.setattr(textfeatures._Tokens, "__init__", count_tokens)
    model = TagifaiModel(args).fit(train, train["label"])
    assert made == [600]  # the word and char vectorizers of the FeatureUnion split the texts once, together
    with monkeypatch.context() as m:
        m.setattr(FastTfidfVectorizer, "word_path_applies", lambda self: False)
        reference = TagifaiModel(args).fit(train, train["label"])  # scikit-learn's fit and transform
    reference.features_ = _plain(reference.features_)
    for (_, part), (_, ref) in zip(model.features_.transformer_list, reference.features_.transformer_list, strict=True):
        assert type(ref) is TfidfVectorizer and part.vocabulary_ == ref.vocabulary_
        assert np.array_equal(part.idf_, ref.idf_)
    assert np.array_equal(model.predict_proba(new), reference.predict_proba(new))
    assert np.array_equal(model.predict_proba(train), reference.predict_proba(train))
