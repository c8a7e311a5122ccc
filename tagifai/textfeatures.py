"""TF-IDF features computed word by word: :class:`FastTfidfVectorizer`, scikit-learn's ``TfidfVectorizer`` with a
faster ``fit``/``fit_transform``/``transform`` that give the same vocabulary, idf and matrices, bit for bit.

Why there is code of our own here (issue 13): scikit-learn's ``transform`` runs its analyzer and its vocabulary
look-up in Python, one n-gram at a time: for the model's char_wb 2-4 n-grams of a cleaned project text that is
about 150 n-grams a text, ~0.25 ms, four fifths of a TF-IDF-only prediction. But the char_wb analyzer works on each
whitespace-separated word of the preprocessed text alone (a word's n-grams are those of `` word ``), and so does
the word analyzer with unigrams and its default token pattern (a token never spans whitespace), and words repeat.
So :class:`FastTfidfVectorizer` finds the vocabulary indices of each distinct word once (with scikit-learn's own
n-gram code, kept in a bounded memo across calls) and builds the document-term counts as one sparse product:
(documents x distinct words of the batch) @ (distinct words x vocabulary). The counts are the same numbers in the
same sorted CSR layout as scikit-learn's, and scikit-learn's own ``TfidfTransformer`` turns them into TF-IDF, so
the features are identical (``tests/unit/test_textfeatures.py`` asserts it on the real data).

Fitting (``_count_vocab`` with ``fixed_vocab=False``, which ``fit`` and ``fit_transform`` call: most of a TF-IDF
fit's time, paid by every training run and every cross-validation fold of the hyperparameter search) counts the same
way. scikit-learn numbers the n-grams in order of first appearance (documents in order, each one's n-grams in order)
and sorts each row's counts in that numbering; the distinct words in order of first appearance, each one's n-grams
in order, give the same first appearances (a repeated word adds no new n-gram), so the same numbering and the same
counts come out of the sparse product. scikit-learn's ``fit_transform`` then renumbers the features alphabetically
and applies min_df/max_df/max_features itself, so its fitted attributes, its errors ("empty vocabulary ...") and
its output layout are unchanged. That numbering is not kept in the transform memo (it is not the fitted
vocabulary's).

Only the counting (``_count_vocab``) is replaced; every parameter, ``get_params``/``clone`` and pickles are the
parent's. Settings the word argument does not hold for (analyzer "char", word n-grams above 1, a custom tokenizer
or token pattern, a callable analyzer, file inputs) take scikit-learn's path unchanged, to fit and to transform.
The memo is not pickled. The vectorizers of one call (a FeatureUnion's word and char parts) given a
:class:`~tagifai.data.TextBatch` split its texts once, to fit as to transform.

scikit-learn is imported here at module level: import this module only where scikit-learn is needed anyway.
"""

from __future__ import annotations

from array import array
from collections import Counter, defaultdict
from itertools import chain
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

from tagifai.data import TextBatch

try:  # scikit-learn >= 1.8: the sparse container type follows set_config(sparse_interface=...)
    from sklearn.utils._sparse import _align_api_if_sparse
except ImportError:  # pragma: no cover - older scikit-learn returns csr_matrix

    def _align_api_if_sparse(X):
        return sp.csr_matrix(X)


#: The token pattern the word path accepts (scikit-learn's default: runs of 2+ word characters).
DEFAULT_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
#: Distinct words remembered per vectorizer; the memo is emptied when it reaches this size.
MEMO_MAX_WORDS = 1 << 16

#: Up to this many documents a call counts with plain Python (a single prediction: no sparse-product set-up).
SMALL_BATCH = 32
#: Documents per sparse product of a larger call.
PRODUCT_BLOCK = 4096


class FastTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` whose fit and ``transform`` count n-grams per distinct word (see the module's docstring).

    A drop-in: same parameters, same fitted attributes, same output; :meth:`word_path_applies` says whether
    fitting and ``transform`` take the word path with the current settings.
    """

    # ------------------------------------------------------------------ when the word path gives the same counts

    def word_path_applies(self) -> bool:
        """True when the document-term counts decompose over whitespace-separated words for these settings."""
        if self.input != "content" or callable(self.analyzer):
            return False
        if self.analyzer == "char_wb":
            return True
        return (
            self.analyzer == "word"
            and tuple(self.ngram_range) == (1, 1)
            and self.tokenizer is None
            and self.token_pattern == DEFAULT_TOKEN_PATTERN
        )

    def _word_ngrams_of(self):
        """A function from one preprocessed word (no whitespace) to its n-grams, scikit-learn's own code."""
        if self.analyzer == "char_wb":
            return self._char_wb_ngrams
        tokenize = self.build_tokenizer()
        stop_words = self.get_stop_words()
        ngrams = self._word_ngrams
        return lambda word: ngrams(tokenize(word), stop_words)

    def _memo(self) -> dict[str, array]:
        """word -> vocabulary indices of its n-grams (repeats kept), for the current vocabulary and settings (a
        preprocessed word is the key, so the preprocessing settings do not matter)."""
        key = (self.analyzer, tuple(self.ngram_range), self.stop_words, len(self.vocabulary_))
        state = self.__dict__.get("_word_memo")
        if state is None or state[1] is not self.vocabulary_ or state[0] != key:
            state = (key, self.vocabulary_, {})
            self.__dict__["_word_memo"] = state  # one assignment: a concurrent call keeps the memo it had
        return state[2]

    # ------------------------------------------------------------------ the count matrix

    def _count_vocab(self, raw_documents, fixed_vocab):
        if not self.word_path_applies():
            return super()._count_vocab(raw_documents, fixed_vocab)
        if fixed_vocab:
            return self.vocabulary_, self._count_words(raw_documents)
        return self._learn_words(raw_documents)

    def _count_words(self, raw_documents) -> Any:
        """The document-term counts of a fixed vocabulary, as scikit-learn's ``_count_vocab`` builds them: float
        counts (``self.dtype``), int32 indices, each row's column indices in increasing order."""
        if self.analyzer == "word" and getattr(self, "_stop_words_id", None) != id(self.stop_words):
            self.build_analyzer()  # scikit-learn's stop-word check (a warning, once per stop list), as it makes it
        tokens = self._tokens(raw_documents)
        return self._counts(tokens, self._rows(tokens.distinct), len(self.vocabulary_))

    def _learn_words(self, raw_documents) -> tuple[dict[str, int], Any]:
        """What scikit-learn's ``_count_vocab`` returns when it learns the vocabulary (``fit``, ``fit_transform``):
        the n-grams numbered in order of first appearance (documents in order, each one's n-grams in order) and the
        counts in that numbering, each row's indices in increasing order; ``fit_transform`` then sorts and limits
        the features itself. The distinct words in order of first appearance, each one's n-grams in order, give
        the same first appearances (a repeated word adds no new n-gram), so the numbering is the same."""
        self.build_analyzer()  # scikit-learn's checks and warnings (stop-word consistency), as its fit makes them
        tokens = self._tokens(raw_documents)
        vocabulary: defaultdict[str, int] = defaultdict()
        vocabulary.default_factory = vocabulary.__len__  # (scikit-learn's numbering: the next index when new)
        number = vocabulary.__getitem__
        ngrams_of = self._word_ngrams_of()
        rows = [array("i", map(number, ngrams_of(word))) for word in tokens.distinct]
        vocabulary = dict(vocabulary)
        if not vocabulary:
            raise ValueError("empty vocabulary; perhaps the documents only contain stop words")
        return vocabulary, self._counts(tokens, rows, len(vocabulary))

    def _counts(self, tokens: _Tokens, rows: list[array], n_features: int) -> Any:
        """The document-term counts from each distinct word's vocabulary indices (``rows``, in ``tokens.distinct``
        order) in a vocabulary of ``n_features``."""
        if tokens.n_docs <= SMALL_BATCH:
            X = self._count_small(tokens.splits, dict(zip(tokens.distinct, rows, strict=True)), n_features)
        else:
            X = self._count_large(tokens, rows, n_features)
        X.has_sorted_indices = True
        return _align_api_if_sparse(X)

    def _tokens(self, raw_documents) -> _Tokens:
        """The words of each preprocessed document (``preprocess(doc).split()``), shared through a
        :class:`~tagifai.data.TextBatch` by the vectorizers of one call that preprocess alike."""
        batch = raw_documents if isinstance(raw_documents, TextBatch) else None
        plain = self.preprocessor is None and not self.strip_accents  # scikit-learn's preprocessing: lower() or none
        key = ("tokens", bool(self.lowercase)) if plain else None
        if batch is not None and key in batch.derived:
            return batch.derived[key]
        if plain and batch is not None and batch.words is not None:  # lowercase texts and their split(), made once
            tokens = _Tokens(batch.words)
        else:
            docs = raw_documents if isinstance(raw_documents, list) else list(raw_documents)
            if set(map(type, docs)) - {str}:
                docs = list(map(self.decode, docs))  # bytes, or scikit-learn's own error for NaN
            if not plain:
                docs = list(map(self.build_preprocessor(), docs))
            elif self.lowercase:
                docs = list(map(str.lower, docs))
            tokens = _Tokens(list(map(str.split, docs)))
        if batch is not None and key is not None:
            batch.derived[key] = tokens
        return tokens

    def _rows(self, words: list[str]) -> list[array]:
        """The vocabulary indices of each word's n-grams (repeats kept, unknown n-grams left out), from the memo or
        computed with scikit-learn's n-gram code and remembered."""
        memo = self._memo()
        rows = list(map(memo.get, words))
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            ngrams_of = self._word_ngrams_of()
            get = self.vocabulary_.get
            for i in missing:
                rows[i] = array("i", [j for j in map(get, ngrams_of(words[i])) if j is not None])
                if len(memo) >= MEMO_MAX_WORDS:
                    memo.clear()
                memo[words[i]] = rows[i]
        return rows

    def _count_small(self, splits: list[list[str]], row_of: dict[str, array], n_features: int) -> Any:
        """A few documents: each one's n-gram indices counted with a Counter and sorted (no array set-up costs)."""
        indices: list[int] = []
        values: list[int] = []
        indptr = [0]
        for words in splits:
            counts = Counter(chain.from_iterable(map(row_of.__getitem__, words)))
            keys = sorted(counts)
            indices += keys
            values += map(counts.__getitem__, keys)
            indptr.append(len(indices))
        return sp.csr_array(
            (
                np.array(values, dtype=self.dtype),
                np.array(indices, dtype=np.int32),
                np.array(indptr, dtype=np.int32),
            ),
            shape=(len(splits), n_features),
        )

    def _count_large(self, tokens: _Tokens, rows: list[array], n_features: int) -> Any:
        """Many documents: counts = (documents x distinct words) @ (distinct words x vocabulary), one sparse product.

        It is computed transposed: the product's rows (vocabulary) come out with unsorted columns, but turning it
        back into rows per document (a counting sort, linear) lists each document's vocabulary indices in
        increasing order, the layout scikit-learn sorts its counts into. Every entry is a sum of ones (the count
        of an n-gram in a document, in int32): exact, as scikit-learn's integer counts cast to float. Blocks of
        :data:`PRODUCT_BLOCK` documents keep each product's working arrays in the CPU's caches (~30% faster)."""
        n_docs, n_words = tokens.n_docs, len(rows)
        columns, doc_indptr = tokens.columns()
        word_indices = np.frombuffer(b"".join(rows), dtype=np.intc)
        word_indptr = np.zeros(n_words + 1, dtype=_index_dtype(len(word_indices)))
        np.cumsum(np.fromiter(map(len, rows), dtype=word_indptr.dtype, count=n_words), out=word_indptr[1:])
        ones = np.ones(max(len(word_indices), len(columns)), dtype=np.int32)
        vocab_x_words = sp.csr_array(
            (ones[: len(word_indices)], word_indices, word_indptr), (n_words, n_features)
        ).T.tocsr()
        blocks = []
        for first in range(0, n_docs, PRODUCT_BLOCK):
            last = min(first + PRODUCT_BLOCK, n_docs)
            start, stop = doc_indptr[first], doc_indptr[last]
            docs_x_words = sp.csr_array(
                (ones[: stop - start], columns[start:stop], doc_indptr[first : last + 1] - start),
                (last - first, n_words),
            )
            blocks.append((vocab_x_words @ docs_x_words.T.tocsr()).T.tocsr())
        counts = blocks[0] if len(blocks) == 1 else sp.vstack(blocks, format="csr")
        index_dtype = _index_dtype(counts.nnz)
        return sp.csr_array(
            (
                counts.data.astype(self.dtype),
                counts.indices.astype(index_dtype, copy=False),
                counts.indptr.astype(index_dtype, copy=False),
            ),
            shape=(n_docs, n_features),
        )

    # ------------------------------------------------------------------ pickling

    def __getstate__(self):
        state = dict(super().__getstate__())  # (object.__getstate__ returns the live __dict__)
        state.pop("_word_memo", None)
        return state


def _index_dtype(n: int) -> type:
    """scikit-learn's choice of index type: int32 unless ``n`` entries need more."""
    return np.int32 if n <= np.iinfo(np.int32).max else np.int64


class _Tokens:
    """The words of each document of one call; the distinct words in order of appearance and, for the sparse
    product, each word occurrence's column (computed once, shared by the vectorizers of a TextBatch)."""

    def __init__(self, splits: list):
        self.splits = splits
        self.n_docs = len(splits)
        self._column_of = dict.fromkeys(chain.from_iterable(splits))
        self.distinct = list(self._column_of)
        self._columns = None

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        """(the column of every word occurrence, document by document; the document offsets into it)."""
        if self._columns is None:
            column_of = self._column_of
            for i, word in enumerate(self.distinct):
                column_of[word] = i
            n = sum(map(len, self.splits))
            dtype = _index_dtype(max(n, len(self.distinct)))
            columns = np.fromiter(map(column_of.__getitem__, chain.from_iterable(self.splits)), dtype=dtype, count=n)
            indptr = np.zeros(self.n_docs + 1, dtype=dtype)
            np.cumsum(np.fromiter(map(len, self.splits), dtype=dtype, count=self.n_docs), out=indptr[1:])
            self._columns = (columns, indptr)
        return self._columns


def accelerate(features: Any) -> Any:
    """``features`` with every plain ``TfidfVectorizer`` inside it (itself, a FeatureUnion's or a Pipeline's parts)
    turned into a :class:`FastTfidfVectorizer` in place (it holds no other state, so the output is the same);
    returns ``features``. For models pickled before the fast vectorizer existed."""
    if type(features) is TfidfVectorizer:
        features.__class__ = FastTfidfVectorizer
        return features
    for attr in ("transformer_list", "steps"):
        for part in getattr(features, attr, None) or ():
            if isinstance(part, tuple) and len(part) >= 2:
                accelerate(part[1])
    return features
