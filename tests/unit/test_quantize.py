"""tagifai.quantize: the integer graph derived from the packaged MiniLM file, and the encoder's choice of graph
(tagifai.embeddings: TAGIFAI_ENCODER_INT8, sessions, store keys)."""

from __future__ import annotations

import hashlib
from collections import Counter

import numpy as np
import pytest

from tagifai import embeddings, quantize
from tagifai.embeddings import EmbeddingUnavailable, SentenceEmbedder


@pytest.fixture(scope="module")
def source() -> bytes:
    return embeddings.model_path().read_bytes()


@pytest.fixture(scope="module")
def derived(source) -> bytes:
    return quantize.build(source)


@pytest.fixture(autouse=True)
def _no_store(monkeypatch):
    monkeypatch.setenv("TAGIFAI_EMBEDDING_CACHE", "off")
    monkeypatch.delenv(embeddings.INT8_ENV, raising=False)


def test_the_reader_gives_the_files_weights_and_nodes(source):
    inits, nodes = quantize.read(source)
    assert len(inits) == 160 and len(nodes) == 385
    words = inits["inner.embeddings.word_embeddings.weight_q"]
    assert words.dtype == np.int8 and words.shape == (30522, 384)
    assert Counter(op for op, _, _ in nodes)["MatMul"] == 48  # 36 with weights, 12 in attention
    onnx = pytest.importorskip("onnx")  # not a dependency: the cross-check runs where it is installed
    model = onnx.load_from_string(source)
    reference = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert reference.keys() == inits.keys()
    for name, array in reference.items():
        assert array.dtype == inits[name].dtype and np.array_equal(array, inits[name]), name
    assert [(n.op_type, list(n.input), list(n.output)) for n in model.graph.node] == nodes


def test_the_derived_graph_is_deterministic_and_pinned(source, derived):
    assert quantize.build(source) == derived
    assert hashlib.sha256(derived).hexdigest() == quantize.GRAPH_SHA256
    assert len(derived) < 1.01 * len(source)  # the int8 tables stay int8


def test_every_weight_product_runs_on_integers(derived):
    ops = Counter(quantize.ops(derived))
    assert ops["MatMulIntegerToFloat"] == 36  # 6 layers x (query, key, value, output, up, down)
    assert ops["QuantizeLinear"] == 24  # one per distinct input: query/key/value share theirs
    assert ops["MatMul"] == 12  # only the attention's two products per layer (activations x activations)
    assert ops["Cast"] <= 3 and "Erf" not in ops and "IsNaN" not in ops


def test_the_weights_are_the_files_int8_matrices_unchanged(source, derived):
    inits, _ = quantize.read(source)
    ours, _ = quantize.read(derived)
    np.testing.assert_array_equal(ours["words_q"], inits["inner.embeddings.word_embeddings.weight_q"])
    weights = quantize._weights(*quantize.read(source))
    key, scale, bias = weights["inner.encoder.layer.3.attention.self.key.bias"]
    np.testing.assert_array_equal(ours["l3_key_q"], key)
    np.testing.assert_array_equal(ours["l3_key_scale"], scale)
    query = weights["inner.encoder.layer.0.attention.self.query.bias"]
    np.testing.assert_array_equal(ours["l0_query_q"], query[0])
    np.testing.assert_allclose(ours["l0_query_scale"], query[1] / np.sqrt(32), rtol=1e-6)  # scores' scale folded


def test_an_unexpected_file_is_a_clear_error(source):
    with pytest.raises(ValueError, match="no graph"):
        quantize.build(b"")
    # the same protobuf with the word table renamed (same length: still a valid file)
    broken = source.replace(b"inner.embeddings.word_embeddings.weight_q", b"inner.embeddings.word_embeddings.weight_x")
    with pytest.raises(ValueError, match="word_embeddings.weight_q is missing"):
        quantize.build(broken)


def test_integer_and_float_vectors_agree_on_real_texts(labeled_df):
    from tagifai.data import raw_text

    texts = raw_text(labeled_df).tolist()[:200]
    exact = SentenceEmbedder(store=None, graph="float").encode(texts)
    fast = SentenceEmbedder(store=None, graph="int8").encode(texts)
    cosine = (exact * fast).sum(axis=1)
    # per-token activations: mean 0.998, min 0.9966 on these texts (a per-tensor scale: 0.994, min 0.985)
    assert cosine.mean() >= 0.997 and cosine.min() >= 0.995
    np.testing.assert_allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_the_integer_vector_of_a_text_does_not_depend_on_its_batch():
    texts = ["short", "a much longer text about object detection with transformers " * 4, "graph neural networks"]
    together = SentenceEmbedder(store=None, graph="int8", batch_size=3).encode(texts)
    alone = np.vstack([SentenceEmbedder(store=None, graph="int8").encode([t]) for t in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_the_setting_chooses_the_graph_once_per_embedder(monkeypatch):
    monkeypatch.setattr(embeddings, "int8_dot_products", lambda: True)
    monkeypatch.setenv(embeddings.INT8_ENV, "auto")
    assert embeddings.encoder_graph() == "int8"
    monkeypatch.setenv(embeddings.INT8_ENV, "0")
    assert embeddings.encoder_graph() == "float"
    embedder = SentenceEmbedder(store=None)
    embedder.encode(["kept"])
    monkeypatch.setenv(embeddings.INT8_ENV, "1")
    assert embedder.graph == "float"  # resolved at its first encode, then kept
    assert SentenceEmbedder().graph == "int8"
    with pytest.raises(ValueError, match="unknown encoder graph"):
        SentenceEmbedder(graph="fp16")


def test_auto_runs_the_integer_graph_only_where_int8_products_do_not_saturate(monkeypatch):
    for has, graph in ((True, "int8"), (False, "float")):
        monkeypatch.setattr(embeddings, "int8_dot_products", lambda has=has: has)
        monkeypatch.setenv(embeddings.INT8_ENV, "auto")
        assert embeddings.encoder_graph() == graph
        monkeypatch.setenv(embeddings.INT8_ENV, "")
        assert embeddings.encoder_graph() == "float"  # opt-in: the default stays the file's own graph
        monkeypatch.setenv(embeddings.INT8_ENV, "1")
        assert embeddings.encoder_graph() == "int8"
        monkeypatch.setenv(embeddings.INT8_ENV, "off")
        assert embeddings.encoder_graph() == "float"
    monkeypatch.setenv(embeddings.INT8_ENV, "maybe")
    with pytest.raises(ValueError, match="expected 0, 1 or auto"):
        embeddings.encoder_graph()


def test_the_cpu_check_reads_the_flags():
    from pathlib import Path

    info = Path("/proc/cpuinfo")
    flags = set(info.read_text().split()) if info.exists() else set()
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:  # as on the machine of issue 13
        assert embeddings.int8_dot_products()
    elif "avx2" in flags:  # e.g. Zen 3
        assert not embeddings.int8_dot_products()


def test_the_two_graphs_never_share_store_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(embeddings, "_SHARED_MEMO", None)  # the test suite's shared memo bypasses stores
    texts = ["Graph neural networks", "Object detection"]
    assert embeddings.text_keys(texts, graph="int8") != embeddings.text_keys(texts, graph="float")
    assert embeddings.store_folder(tmp_path, graph="int8") != embeddings.store_folder(tmp_path, graph="float")
    assert embeddings.store_folder(tmp_path, graph="int8").name.endswith("-int8-" + quantize.GRAPH_SHA256[:12])
    # the float graph keeps the keys and folder it always had: existing stores stay valid for it
    old_prefix = f"minilm\x00{embeddings.MINILM_SHA256}\x00128\x00{embeddings.ENCODER_VERSION}\x00".encode()
    assert embeddings.key_prefix(graph="float") == old_prefix
    assert embeddings.store_folder(tmp_path, graph="float").name == (
        f"minilm-{embeddings.MINILM_SHA256[:12]}-len128-v{embeddings.ENCODER_VERSION}"
    )
    # through a store: vectors written by one graph are not read by the other
    root = tmp_path / "store"
    SentenceEmbedder(store=root, graph="float").encode(texts)
    reader = SentenceEmbedder(store=root, graph="int8")
    reader.encode(texts)
    assert reader.stats == {"from_store": 0, "encoded": 2}
    assert sorted(p.name.endswith(quantize.GRAPH_SHA256[:12]) for p in root.iterdir()) == [False, True]


def test_the_shared_memo_keeps_the_graphs_apart(monkeypatch):
    monkeypatch.setattr(embeddings, "_SHARED_MEMO", {})
    a = SentenceEmbedder(graph="float").encode(["memo text"])
    b = SentenceEmbedder(graph="int8").encode(["memo text"])
    assert not np.array_equal(a, b) and len(embeddings._SHARED_MEMO) == 2


def test_the_graph_is_derived_once_per_session_and_checked(monkeypatch):
    monkeypatch.setattr(embeddings, "_SESSIONS", {})
    builds = []
    real = quantize.build
    monkeypatch.setattr(quantize, "build", lambda data: builds.append(1) or real(data))
    first = embeddings.session(graph="int8")
    assert embeddings.session(graph="int8") is first and len(builds) == 1
    assert embeddings.session(graph="float") is not first and len(builds) == 1
    monkeypatch.setattr(embeddings, "_SESSIONS", {})
    monkeypatch.setattr(quantize, "GRAPH_SHA256", "0" * 64)
    with pytest.raises(EmbeddingUnavailable, match="TAGIFAI_ENCODER_INT8=0"):
        embeddings.session(graph="int8")
