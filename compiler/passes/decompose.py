"""Ops every backend gets from others it already has: the Reduce family in terms of the five
reductions each implements (Sum, Mean, Max, Min, Prod) and elementwise ops; Pad as a Gather per
padded axis (the source positions of every mode are build-time constants) and, for constant
padding, a Where; LRN's sum over neighbouring channels as an average pooling of the squares;
CastLike as a Cast; Trilu as a Where with a constant mask; Instance/GroupNormalization as
reductions over each group; DepthToSpace/SpaceToDepth as reshape, transpose, reshape; Tile as a
Gather per repeated axis."""
from __future__ import annotations

import numpy as np

from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_elementwise import trilu_mask
from ..ir.ops_nn import attention_kv_lengths, attention_shape, group_count, lrn_params, reduce_axes
from ..ir.ops_shape import pad_amounts, pad_source, space_depth_shapes, tile_repeats
from .chain import Chain
from .decompose_grid import affine_grid, grid_sample
from .decompose_dft import RULES as DFT_RULES
from .decompose_index import RULES as INDEX_RULES
from .decompose_linear import RULES as LINEAR_RULES
from .decompose_math import float_mod, int_pow, trig
from .decompose_pool import RULES as POOL_RULES
from .decompose_qint import RULES as QINT_RULES
from .decompose_quant import quant
from .decompose_resize import resize
from .decompose_rotary import rotary_embedding
from .decompose_roi import RULES as ROI_RULES
from .decompose_linalg import RULES as LINALG_RULES
from .decompose_seq import RULES as SEQ_RULES
from .decompose_unpool import RULES as UNPOOL_RULES
from .infer import infer

PRIMITIVE = ("ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd")
# op -> (elementwise op before the sum, after it)
COMPOSITE = {"ReduceL1": ("Abs", None), "ReduceL2": ("Square", "Sqrt"), "ReduceSumSquare": ("Square", None),
             "ReduceLogSum": (None, "Log")}


def _log_sum_exp(c: Chain, x: Value, y: Value) -> None:
    """log(sum(exp(x - m))) + m with m the max, or 0 where the max is infinite (as onnxruntime:
    inf - inf would make NaN of an infinite result)."""
    m = c.reduce("ReduceMax", x, 1)
    infinite = c.add("Equal", [c.add("Abs", [m]), c.graph.const("inf", np.float32(np.inf))])
    m = c.add("Where", [infinite, c.graph.const("zero", np.float32(0)), m])
    total = c.reduce("ReduceSum", c.add("Exp", [c.add("Sub", [x, m])]), 1)
    c.add("Reshape", [c.add("Add", [c.add("Log", [total]), m])], y, shape=y.type.shape)


def pad(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Pad":
        return None
    x, y = node.inputs[0], node.outputs[0]
    value = node.inputs[2] if len(node.inputs) > 2 else None
    value = value or graph.const("zero", np.zeros((), DTYPES[x.type.dtype]))
    c = Chain(graph, node)
    for axis, (begin, end) in enumerate(zip(*pad_amounts(node))):
        if begin == end == 0:
            continue
        src, inside = pad_source(node, axis)
        x = c.add("Gather", [x, graph.const("pad_source", src.astype(np.int64))], axis=axis)
        if not inside.all() and node.attr("mode", "constant") == "constant":
            mask = inside.reshape([-1 if d == axis else 1 for d in range(y.type.rank)])
            x = c.add("Where", [graph.const("pad_inside", mask), x, value])
    c.add("Reshape", [x], y, shape=y.type.shape)
    return Patch(c.nodes)


def lrn(graph: Graph, node: Node) -> Patch | None:
    """x * (bias + alpha * mean of x^2 over the size channels around)^-beta, the mean taken by an
    average pooling (zeros past the edges count) of x^2 reshaped to [N, 1, C, rest]."""
    if node.op != "LRN":
        return None
    x, y = node.inputs[0], node.outputs[0]
    size, alpha, beta, bias = lrn_params(node)
    shape = x.type.shape
    c = Chain(graph, node)
    rest = int(np.prod(shape[2:], dtype=np.int64))
    square = c.add("Reshape", [c.add("Mul", [x, x])], shape=(shape[0], 1, shape[1], rest))
    mean = c.add("AveragePool", [square], kernel_shape=(size, 1), pads=((size - 1) // 2, 0, size // 2, 0),
                 count_include_pad=1)
    mean = c.add("Reshape", [mean], shape=shape)
    scale = c.add("Add", [c.add("Mul", [mean, graph.const("alpha", np.float32(alpha))]),
                          graph.const("bias", np.float32(bias))])
    c.add("Mul", [x, c.add("Pow", [scale, graph.const("beta", np.float32(-beta))])], y)
    return Patch(c.nodes)


def reduction(graph: Graph, node: Node) -> Patch | None:
    if node.op != "ReduceLogSumExp" and node.op not in COMPOSITE:
        return None
    x, y = node.inputs[0], node.outputs[0]
    c = Chain(graph, node)
    if node.op == "ReduceLogSumExp":
        _log_sum_exp(c, x, y)
        return Patch(c.nodes)
    pre, post = COMPOSITE[node.op]
    if pre:
        x = c.add("Mul", [x, x]) if pre == "Square" else c.add(pre, [x])
    total = c.reduce("ReduceSum", x, node.attr("keepdims", 1), None if post else y)
    if post:
        c.add(post, [total], y)
    return Patch(c.nodes)


def normalise(graph: Graph, node: Node) -> Patch | None:
    """Axes from inputs or attributes into one attribute; a reduction over no axes is a copy."""
    if node.op not in PRIMITIVE:
        return None
    axes = reduce_axes(node)
    if not axes:
        return Patch([Node("Reshape", node.name, node.inputs[:1], node.outputs,
                           {"shape": node.outputs[0].type.shape})])
    if "axes_norm" in node.attrs:
        return None
    return Patch([Node(node.op, node.name, node.inputs[:1], node.outputs, dict(node.attrs, axes_norm=axes))])


def cast_like(graph: Graph, node: Node) -> Patch | None:
    if node.op != "CastLike":
        return None
    return Patch([Node("Cast", node.name, node.inputs[:1], node.outputs, {"to": node.inputs[1].type.dtype})])


def bool_bitcast(graph: Graph, node: Node) -> Patch | None:
    """A bool is stored as a byte holding 0 or 1, so its bits read as an 8-bit integer are its Cast."""
    if node.op != "BitCast" or node.inputs[0].type.dtype != "bool":
        return None
    return Patch([Node("Cast", node.name, node.inputs[:1], node.outputs, {"to": node.attrs["to"]})])


def trilu(graph: Graph, node: Node) -> Patch | None:
    """Where(mask, x, 0): zeroes NaN and infinities too, which a multiply by 0 would not."""
    if node.op != "Trilu":
        return None
    x = node.inputs[0]
    mask = graph.const(f"{node.name}.mask", trilu_mask(node))
    zero = graph.const(f"{node.name}.zero", np.zeros((), DTYPES[x.type.dtype]))
    return Patch([Node("Where", node.name, [mask, x, zero], node.outputs)])


def group_norm(graph: Graph, node: Node) -> Patch | None:
    """(x - mean) / sqrt(var + epsilon) over each group of channels (with its spatial dims), then
    scale and bias per channel."""
    if node.op not in ("InstanceNormalization", "GroupNormalization"):
        return None
    x, scale, bias = node.inputs[:3]
    n, channels = x.type.shape[:2]
    groups, c = group_count(node), Chain(graph, node)
    grouped = c.add("Reshape", [x], shape=(n, groups, x.type.numel // (n * groups)))
    mean = c.add("ReduceMean", [grouped], axes_norm=(2,), keepdims=1)
    centred = c.add("Sub", [grouped, mean])
    var = c.add("ReduceMean", [c.add("Mul", [centred, centred])], axes_norm=(2,), keepdims=1)
    std = c.add("Sqrt", [c.add("Add", [var, graph.const("epsilon", np.float32(node.attr("epsilon", 1e-5)))])])
    normed = c.add("Reshape", [c.add("Div", [centred, std])], shape=x.type.shape)
    per_channel = (channels,) + (1,) * (x.type.rank - 2)
    scale, bias = (_per_channel(c, v, channels, groups, per_channel) for v in (scale, bias))
    c.add("Add", [c.add("Mul", [normed, scale]), bias], node.outputs[0])
    return Patch(c.nodes)


def _per_channel(c: Chain, v: Value, channels: int, groups: int, shape: tuple[int, ...]) -> Value:
    """A [C] (or, GroupNormalization-18's, [G]) vector shaped to broadcast over [N, C, ...]."""
    if v.type.numel == groups != channels:
        v = c.add("Gather", [v, c.graph.const("group_of", np.arange(channels) // (channels // groups))], axis=0)
    return c.add("Reshape", [v], shape=shape)


def space_depth(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("DepthToSpace", "SpaceToDepth"):
        return None
    first, perm, _ = space_depth_shapes(node)
    c = Chain(graph, node)
    moved = c.add("Transpose", [c.add("Reshape", node.inputs[:1], shape=first)], perm=perm)
    c.add("Reshape", [moved], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def tile(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Tile":
        return None
    x, c = node.inputs[0], Chain(graph, node)
    for axis, (size, times) in enumerate(zip(x.type.shape, tile_repeats(node))):
        if times != 1:
            x = c.add("Gather", [x, graph.const("tile_source", np.arange(size * times) % max(size, 1))], axis=axis)
    c.add("Reshape", [x], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def attention(graph: Graph, node: Node) -> Patch | None:
    """softmax(softcap(Q K^T * scale) + bias) V over heads, as onnx's reference computes it: GQA
    repeats each key/value head for its group of query heads; past keys/values are prepended (and
    returned as present); the bias is attn_mask (bool: 0 where true, else -inf) plus the causal
    mask and sliding window, aligned bottom-right by the past length (or per batch entry by
    nonpad_kv_seqlen, which also masks the keys past it); a row the bias masks entirely gives 0."""
    if node.op != "Attention":
        return None
    s, c = attention_shape(node), Chain(graph, node)
    q, k, v = (_heads_first(c, node.inputs[i], s, heads) for i, heads in ((0, s.q_heads), (1, s.kv_heads),
                                                                            (2, s.kv_heads)))
    outs = node.outputs + [None] * (4 - len(node.outputs))
    k, v = (_with_past(c, node, i, x, out) for i, x, out in ((4, k, outs[1]), (5, v, outs[2])))
    if s.q_heads != s.kv_heads:
        group = graph.const("kv_head_of", np.arange(s.q_heads) // (s.q_heads // s.kv_heads))
        k, v = (c.add("Gather", [x, group], axis=1) for x in (k, v))
    scale = node.attr("scale", None)
    scores = c.add("MatMul", [q, c.add("Transpose", [k], perm=(0, 1, 3, 2))])
    scores = c.add("Mul", [scores, graph.const("scale", np.float32(scale if scale else 1 / np.sqrt(s.head)))])
    if node.attr("softcap", 0.0) > 0:
        cap = graph.const("softcap", np.float32(node.attr("softcap", 0.0)))
        scores = c.add("Mul", [c.add("Tanh", [c.add("Div", [scores, cap])]), cap])
    stages = [scores, scores]
    bias = _attention_bias(c, node, s)
    if bias is not None:
        scores = c.add("Add", [scores, bias])
    stages.append(scores)
    weights = c.add("Softmax", [scores], axis=-1)
    if bias is not None:
        row_max = c.add("ReduceMax", [bias], axes=(-1,), keepdims=1)
        masked_row = c.add("Equal", [row_max, graph.const("minus_inf", np.float32(-np.inf))])
        weights = c.add("Where", [masked_row, graph.const("zero", np.float32(0)), weights])
    stages.append(weights)
    if outs[3] is not None:
        c.add("Reshape", [stages[node.attr("qk_matmul_output_mode", 0)]], outs[3], shape=outs[3].type.shape)
    y = c.add("MatMul", [weights, v])
    if s.three_d:
        y = c.add("Transpose", [y], perm=(0, 2, 1, 3))
    c.add("Reshape", [y], outs[0], shape=outs[0].type.shape)
    return Patch(c.nodes)


def _heads_first(c: Chain, x: Value, s, heads: int) -> Value:
    """[batch, heads, seq, head]: a 3-D [batch, seq, heads * head] input split into heads."""
    if not s.three_d:
        return x
    batch, seq, hidden = x.type.shape
    return c.add("Transpose", [c.add("Reshape", [x], shape=(batch, seq, heads, hidden // heads))], perm=(0, 2, 1, 3))


def _with_past(c: Chain, node: Node, i: int, x: Value, present: Value | None) -> Value:
    past = node.inputs[i] if len(node.inputs) > i else None
    if past is not None:
        x = c.add("Concat", [past, x], axis=2)
    if present is not None:
        c.add("Reshape", [x], present, shape=present.type.shape)
    return x


def _attention_bias(c: Chain, node: Node, s) -> Value | None:
    """attn_mask as an additive bias (a shorter one padded with -inf) plus the causal and sliding
    window band and the padding past each batch entry's valid keys (nonpad_kv_seqlen)."""
    mask, bias = node.inputs[3] if len(node.inputs) > 3 else None, None
    minus_inf, zero = c.graph.const("minus_inf", np.float32(-np.inf)), c.graph.const("zero", np.float32(0))
    if mask is not None:
        bias = c.add("Where", [mask, zero, minus_inf]) if mask.type.dtype == "bool" else mask
        short = s.total_seq - mask.type.shape[-1]
        if short > 0:
            fill = c.graph.const("mask_pad", np.full(mask.type.shape[:-1] + (short,), -np.inf, np.float32))
            bias = c.add("Concat", [bias, fill], axis=mask.type.rank - 1)
    lengths = attention_kv_lengths(node)
    if lengths is not None:
        lengths = c.add("Reshape", [c.add("Cast", [lengths], to="f32")], shape=(s.batch, 1, 1, 1))
        keys = c.graph.const("key_index", np.arange(s.total_seq, dtype=np.float32))
        bias = _add_bias(c, bias, c.add("Where", [c.add("Less", [keys, lengths]), zero, minus_inf]))
    band = _attention_band(node)
    if band is not None:
        bias = _add_bias(c, bias, _band_bias(c, _query_key_distance(c, s, lengths), *band))
    return bias


def _attention_band(node: Node) -> tuple[int | None, int | None] | None:
    """Bounds on i - j (query position minus key position) the causal mask and the sliding window
    allow, None for an unbounded side; None when neither applies."""
    left, right = node.attr("left_window_size", -1), node.attr("right_window_size", -1)
    low = 0 if node.attr("is_causal", 0) else None
    if right >= 0:
        low = -right if low is None else max(low, -right)
    high = left if left >= 0 else None
    return None if low is None and high is None else (low, high)


def _query_key_distance(c: Chain, s, lengths: Value | None) -> np.ndarray | Value:
    """i - j with queries aligned bottom-right: by the past length, or per batch entry by its valid
    key length (nonpad_kv_seqlen - q_seq; negative when the queries outnumber the keys)."""
    distance = np.arange(s.q_seq)[:, None] - np.arange(s.total_seq)[None, :]
    if lengths is None:
        return (distance + s.past_seq).astype(np.float32)
    offset = c.add("Sub", [lengths, c.graph.const("q_seq", np.float32(s.q_seq))])
    return c.add("Add", [c.graph.const("distance", distance.astype(np.float32)), offset])


def _band_bias(c: Chain, distance: np.ndarray | Value, low: int | None, high: int | None) -> Value:
    """0 where low <= distance <= high, else -inf."""
    if isinstance(distance, np.ndarray):
        allowed = (distance >= (-np.inf if low is None else low)) & (distance <= (np.inf if high is None else high))
        return c.graph.const("band", np.where(allowed, np.float32(0), np.float32(-np.inf)))
    checks = [c.add(op, [distance, c.graph.const("band_bound", np.float32(bound))])
              for op, bound in (("GreaterOrEqual", low), ("LessOrEqual", high)) if bound is not None]
    allowed = checks[0] if len(checks) == 1 else c.add("And", checks)
    zero, minus_inf = c.graph.const("zero", np.float32(0)), c.graph.const("minus_inf", np.float32(-np.inf))
    return c.add("Where", [allowed, zero, minus_inf])


def _add_bias(c: Chain, bias: Value | None, more: Value) -> Value:
    return more if bias is None else c.add("Add", [bias, more])


def mod(graph: Graph, node: Node) -> Patch | None:
    """Integer a - b * (a / b) with C's truncating division (fmod = 1: the dividend's sign); for
    fmod = 0, a nonzero remainder whose sign differs from the divisor's moves by b (Python's %)."""
    if node.op != "Mod":
        return None
    a, b = node.inputs
    c = Chain(graph, node)
    rem = c.add("Sub", [a, c.add("Mul", [b, c.add("Div", [a, b])])])
    if node.attr("fmod", 0):
        c.add("Reshape", [rem], node.outputs[0], shape=node.outputs[0].type.shape)
        return Patch(c.nodes)
    zero = graph.const("zero", np.zeros((), DTYPES[a.type.dtype]))
    signs_differ = c.add("Xor", [c.add("Less", [rem, zero]), c.add("Less", [b, zero])])
    moves = c.add("And", [c.add("Not", [c.add("Equal", [rem, zero])]), signs_differ])
    c.add("Where", [moves, c.add("Add", [rem, b]), rem], node.outputs[0])
    return Patch(c.nodes)


RULES = [pad, lrn, attention, reduction, normalise, cast_like, bool_bitcast, trilu, group_norm, space_depth, tile, float_mod, mod,
         trig, int_pow, quant, resize, affine_grid, grid_sample]
RULES = UNPOOL_RULES + POOL_RULES + INDEX_RULES + LINEAR_RULES + DFT_RULES + QINT_RULES + RULES + [rotary_embedding]
RULES = ROI_RULES + LINALG_RULES + RULES


def decompose(graph: Graph) -> Graph:
    """The pass for backends that skip `lower` (StableHLO)."""
    for rule in SEQ_RULES + RULES:
        if graph.rewrite(rule):
            infer(graph)
    return graph
