"""com.microsoft Attention and EmbedLayerNormalization, as onnxruntime's transformer optimizer writes
them for BERT-like encoders, built from IR ops every backend lowers."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.graph import Value
from .composites import _Build

DOMAIN = "com.microsoft"


def _i64(b: _Build, values: list[int]) -> Value:
    b.count += 1
    return Value(f"{b.out}.i{b.count}", const=np.array(values, np.int64))


def _refuse(op: str, name: str, what: str) -> None:
    raise CompileError(f"{DOMAIN}.{op} node {name}: {what} is not supported")


def _qkv_sizes(b: _Build, weights: Value, attrs: dict) -> list[int]:
    sizes = attrs.get("qkv_hidden_sizes")
    if sizes:
        return [int(s) for s in sizes]
    if weights.const is None:
        _refuse("Attention", b.name, "weights that are not an initializer without qkv_hidden_sizes")
    return [weights.const.shape[1] // 3] * 3


def _heads(b: _Build, x: Value, heads: int, perm: tuple[int, ...]) -> Value:
    """(B, S, N*H) -> (B, N, S, H) or, with perm (0, 2, 3, 1), (B, N, H, S)."""
    return b("Transpose", b("Reshape", x, _i64(b, [0, 0, heads, -1])), perm=perm)


def _mask_bias(b: _Build, mask: Value, scores: Value, fill: float) -> Value:
    """The additive mask for scores (B, N, S, T): 0 where a key is seen, `fill` where it is masked.
    A 1-D mask_index (B) holds each batch's end of keys; a 2-D (B, T) or 3-D (B, S, T) mask holds 1/0."""
    rank = _rank(mask)
    if rank == 1:
        keys = b("Range", b.const(0), b("CastLike", b("Gather", b("Shape", scores), _i64(b, [3]), axis=0), b.const(0)),
                 b.const(1))
        seen = b("Less", keys, b("Unsqueeze", b("CastLike", mask, b.const(0)), _i64(b, [1])))
        return b("Unsqueeze", b("Where", seen, b.const(0), b.const(fill)), _i64(b, [1, 2]))
    if rank not in (2, 3):
        _refuse("Attention", b.name, f"a mask_index of rank {rank} (2-B start/end or 4-D)")
    seen = b("Greater", b("CastLike", mask, b.const(0)), b.const(0))
    return b("Unsqueeze", b("Where", seen, b.const(0), b.const(fill)), _i64(b, [1] if rank == 3 else [1, 2]))


def _rank(v: Value) -> int | None:
    """The rank of a mask at import, before shape inference: its own type's, else through the Cast and
    the row-summing ReduceSum (keepdims=0) the optimizer and EmbedLayerNormalization write."""
    if v.type is not None:
        return v.type.rank
    node = v.producer
    if node is not None and node.op in ("Cast", "CastLike", "Identity"):
        return _rank(node.inputs[0])
    if node is not None and node.op == "ReduceSum" and not node.attr("keepdims", 1) and len(node.inputs) > 1:
        inner = _rank(node.inputs[0])
        return None if inner is None else inner - 1
    return None


def _causal_bias(b: _Build, scores: Value, fill: float) -> Value:
    ones = b("ConstantOfShape", b("Shape", scores, start=2), value=np.ones(1, np.float32))
    return b("Mul", b("Trilu", ones, _i64(b, [1]), upper=1), b.const(fill))


def _attention(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """Multi-head attention over the heads of input @ weights + bias split into q, k and v."""
    ins = ins + [None] * 8
    for i, what in ((4, "past"), (6, "past_sequence_length")):
        if ins[i] is not None:
            _refuse("Attention", name, what)
    if attrs.get("do_rotary", 0):
        _refuse("Attention", name, "do_rotary")
    if len(outs) > 1 and outs[1] and outs[1] in im.used:
        _refuse("Attention", name, "reading the present output")
    b = _Build(im, name, outs[0])
    sizes = _qkv_sizes(b, ins[1], attrs)
    qkv = b("MatMul", ins[0], ins[1]) if ins[2] is None else b("Add", b("MatMul", ins[0], ins[1]), ins[2])
    q, k, v = im.emit("Split", name, [qkv, _i64(b, sizes)], [f"{outs[0]}.{p}" for p in "qkv"], {"axis": -1})
    scale = attrs.get("scale", 0.0) or (sizes[0] // attrs["num_heads"]) ** -0.5
    im.emit("Identity", name, [_attend(b, q, k, v, b.const(scale), ins[3], ins[5], attrs)], outs[:1])


def _attend(b: _Build, q: Value, k: Value, v: Value, scale: Value, mask: Value | None, bias: Value | None,
            attrs: dict) -> Value:
    """softmax(q k^T * scale + mask + bias (+ causal)) v over num_heads heads of (B, S, N*H) q, k, v,
    merged back to (B, S, N*Hv)."""
    heads, fill = attrs["num_heads"], attrs.get("mask_filter_value", -10000.0)
    scores = b("Mul", b("MatMul", _heads(b, q, heads, (0, 2, 1, 3)), _heads(b, k, heads, (0, 2, 3, 1))), scale)
    if mask is not None:
        scores = b("Add", scores, _mask_bias(b, mask, scores, fill))
    if bias is not None:
        scores = b("Add", scores, bias)
    if attrs.get("unidirectional", 0):
        scores = b("Add", scores, _causal_bias(b, scores, fill))
    context = b("MatMul", b("Softmax", scores, axis=-1), _heads(b, v, heads, (0, 2, 1, 3)))
    return b("Reshape", b("Transpose", context, perm=(0, 2, 1, 3)), _i64(b, [0, 0, -1]))


def _multi_head_attention(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """(query, key, value, bias, key_padding_mask, attention_bias, ...) with separate 3-D q, k, v;
    scale defaults to 1/sqrt(head size)."""
    ins = ins + [None] * 10
    q, k, v, bias = ins[:4]
    if k is None or v is None:
        _refuse("MultiHeadAttention", name, "packed query/key/value (no separate key and value)")
    for i, what in ((6, "past_key"), (7, "past_value"), (8, "past_sequence_length"), (9, "cache_indirection")):
        if ins[i] is not None:
            _refuse("MultiHeadAttention", name, what)
    if any(o and o in im.used for o in outs[1:]):
        _refuse("MultiHeadAttention", name, "reading present_key/present_value/qk")
    if any(_rank(x) not in (3, None) for x in (q, k, v)):
        _refuse("MultiHeadAttention", name, "query, key or value of rank other than 3 (packed or BNSH)")
    b = _Build(im, name, outs[0])
    if bias is not None:
        q, k, v = (b("Add", x, part) for x, part in
                   zip((q, k, v), im.emit("Split", name, [bias, _split_sizes(b, q, k, v)],
                                          [f"{outs[0]}.bias_{p}" for p in "qkv"], {"axis": 0})))
    scale = b.const(attrs["scale"]) if attrs.get("scale") else _inverse_root_head_size(b, q, attrs["num_heads"])
    im.emit("Identity", name, [_attend(b, q, k, v, scale, ins[4], ins[5], attrs)], outs[:1])


def _last_dim(b: _Build, x: Value) -> Value:
    return b("Shape", x, start=-1)


def _split_sizes(b: _Build, q: Value, k: Value, v: Value) -> Value:
    return b("Concat", _last_dim(b, q), _last_dim(b, k), _last_dim(b, v), axis=0)


def _inverse_root_head_size(b: _Build, q: Value, heads: int) -> Value:
    size = b("Div", b("Cast", _last_dim(b, q), to="f32"), b.const(heads))
    return b("Div", b.const(1), b("Sqrt", size))


def _embed_layer_norm(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """word[ids] + position[position_ids or 0..S-1] (+ segment[segment_ids]) -> LayerNormalization;
    mask_index is each row's count of mask ones (0 without a mask), embedding_sum the sum before normalising."""
    from .onnx import _layer_norm
    ids, segments, word, position, segment, gamma, beta, mask, positions = (ins + [None] * 9)[:9]
    outs = outs + [""] * 2
    b = _Build(im, name, outs[0])
    if positions is None:
        positions = b("Slice", position, _i64(b, [0]), b("Shape", ids, start=1, end=2), _i64(b, [0]))
    else:
        positions = b("Gather", position, positions, axis=0)
    total = b("Add", b("Gather", word, ids, axis=0), positions)
    if segment is not None:
        total = b("Add", total, b("Gather", segment, segments, axis=0))
    if outs[2]:
        total = im.emit("Identity", name, [total], outs[2:3])[0]
    _layer_norm(im, name, [total, gamma, beta], outs[:1], {"axis": -1, "epsilon": attrs.get("epsilon", 1e-12)})
    if not (outs[1] and outs[1] in im.used):
        return
    if mask is None:
        im.emit("ConstantOfShape", name, [b("Shape", ids, end=1)], outs[1:2], {"value": np.zeros(1, np.int32)})
    else:
        ones = b("ReduceSum", b("Cast", mask, to="f32"), _i64(b, [1]), keepdims=0)  # reductions run in f32
        im.emit("Cast", name, [ones], outs[1:2], {"to": "i32"})


def _rotary_embedding(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """(input, position_ids, cos_cache, sin_cache) as ai.onnx RotaryEmbedding (X, cos, sin, positions);
    a position_ids of one element is the offset of positions 0..S-1."""
    x, positions, cos, sin = ins[:4]
    if attrs.get("is_packed_batching", 0):
        _refuse("RotaryEmbedding", name, "is_packed_batching")
    if attrs.get("scale", 1.0) != 1.0:
        _refuse("RotaryEmbedding", name, "scale other than 1")
    b = _Build(im, name, outs[0])
    if _rank(positions) == 1:
        seq = b("Shape", x, start=-2, end=-1) if _rank(x) == 4 else b("Shape", x, start=1, end=2)
        steps = b("Range", b.const(0), b("Cast", b("Squeeze", seq), to="f32"), b.const(1))
        row = b("Unsqueeze", b("Add", b("Cast", steps, to="i64"), positions), _i64(b, [0]))
        positions = b("Expand", row, b("Concat", b("Shape", x, end=1), seq, axis=0))
    kept = {k: attrs[k] for k in ("interleaved", "rotary_embedding_dim") if k in attrs}
    heads = attrs.get("num_heads", 0) or _heads_from_cache(name, x, cos)
    im.emit("RotaryEmbedding", name, [x, cos, sin, positions], outs[:1], dict(kept, num_heads=heads))


def _heads_from_cache(name: str, x: Value, cos: Value) -> int:
    """A 3-D input without num_heads rotates heads of twice the cache's width, as onnxruntime reads it."""
    if _rank(x) == 4:
        return 0
    if cos.const is None or x.type is None:
        _refuse("RotaryEmbedding", name, "a 3-D input without num_heads unless cos_cache is an initializer "
                                         "and the input's shape is known")
    return x.type.shape[-1] // (2 * cos.const.shape[-1])


ATTENTION_MAPPERS = {"Attention": _attention, "EmbedLayerNormalization": _embed_layer_norm,
                     "MultiHeadAttention": _multi_head_attention, "RotaryEmbedding": _rotary_embedding}
