"""Compute-heavy and normalisation ops: Conv, pooling, MatMul/Gemm, reductions, norms, LRN."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Node, TensorType, Value
from .registry import const_input, fail, norm_axis, op


@dataclass(frozen=True)
class Window:
    """Sliding-window geometry of a Conv or pooling node, per spatial dimension."""

    size: tuple[int, ...]       # input spatial extent
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    pads_begin: tuple[int, ...]
    pads_end: tuple[int, ...]
    out: tuple[int, ...]


def channels_last(node: Node) -> bool:
    return node.attr("layout", "NCHW") == "NHWC"


def spatial(node: Node, shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[1:-1] if channels_last(node) else shape[2:]


def window(node: Node) -> Window:
    x = node.inputs[0].type.shape
    size = spatial(node, x)
    nd = len(size)
    if node.op == "Conv":
        kernel = tuple(node.inputs[1].type.shape[2:])
    else:
        kernel = tuple(node.attr("kernel_shape", ()))
    if len(kernel) != nd or nd == 0:
        raise fail(node, f"kernel shape {list(kernel)} does not fit input {list(x)}")
    strides = tuple(node.attr("strides") or (1,) * nd)
    dil = tuple(node.attr("dilations") or (1,) * nd)
    pads = tuple(node.attr("pads") or (0,) * (2 * nd))
    ceil = node.attr("ceil_mode", 0)
    auto = node.attr("auto_pad", "NOTSET")
    eff = [(k - 1) * d + 1 for k, d in zip(kernel, dil)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        out = tuple(-(-s // st) for s, st in zip(size, strides))
        total = [max(0, (o - 1) * st + e - s) for o, st, e, s in zip(out, strides, eff, size)]
        small = [t // 2 for t in total]
        begin = small if auto == "SAME_UPPER" else [t - h for t, h in zip(total, small)]
        pads = tuple(begin) + tuple(t - b for t, b in zip(total, begin))
    elif auto == "VALID":
        pads = (0,) * (2 * nd)
    pb, pe = pads[:nd], pads[nd:]
    out = []
    for s, e, st, b, en in zip(size, eff, strides, pb, pe):
        span = s + b + en - e
        if span < 0:
            raise fail(node, f"kernel {list(kernel)} larger than padded input {list(size)}")
        o = (-(-span // st) if ceil else span // st) + 1
        if ceil and (o - 1) * st >= s + b:
            o -= 1
        out.append(o)
    return Window(size, kernel, strides, dil, tuple(pb), tuple(pe), tuple(out))


Pair = tuple[int, int]


def spatial_2d(node: Node) -> tuple[Window, Pair, Pair, Pair, Pair, Pair, Pair, Pair]:
    """Window geometry with 1-D pooling/conv treated as height 1: the window, then (H, W) of
    size, kernel, strides, dilations, pads_begin, pads_end and out."""
    w = window(node)
    if len(w.size) == 2:
        return w, w.size, w.kernel, w.strides, w.dilations, w.pads_begin, w.pads_end, w.out
    if len(w.size) == 1:
        one = lambda t, d=1: (d,) + tuple(t)  # noqa: E731
        return (w, one(w.size), one(w.kernel), one(w.strides), one(w.dilations),
                one(w.pads_begin, 0), one(w.pads_end, 0), one(w.out))
    raise fail(node, f"{len(w.size)}-D windows are not supported")


def _with_spatial(node: Node, x: tuple[int, ...], channels: int, out: tuple[int, ...]) -> tuple:
    if channels_last(node):
        return (x[0], *out, channels)
    return (x[0], channels, *out)


def _conv(node: Node) -> list[TensorType]:
    x, w = node.inputs[0].type, node.inputs[1].type
    g = node.attr("group", 1)
    cin = x.shape[-1] if channels_last(node) else x.shape[1]
    if w.rank != x.rank or cin != w.shape[1] * g or w.shape[0] % g:
        raise fail(node, f"weights {w} do not fit input {x} with group={g}")
    bias = node.inputs[2] if len(node.inputs) > 2 and "program" not in node.attrs else None
    if bias is not None and bias.type.shape != (w.shape[0],):
        raise fail(node, f"bias {bias.type} does not match {w.shape[0]} output channels")
    return [TensorType("f32", _with_spatial(node, x.shape, w.shape[0], window(node).out))]


def _conv_flops(node: Node) -> int:
    w = node.inputs[1].type.shape
    return 2 * node.outputs[0].type.numel * int(np.prod(w[1:]))


def _pool(node: Node) -> list[TensorType]:
    """MaxPool's optional second output: each maximum's flat index into the input (i64)."""
    dtype = node.inputs[0].type.dtype
    if dtype != "f32" and not (node.op == "MaxPool" and dtype in ("u8", "i8")):
        raise fail(node, f"expects f32 input, got {dtype}")
    x = node.inputs[0].type.shape
    c = x[-1] if channels_last(node) else x[1]
    y = TensorType(dtype, _with_spatial(node, x, c, window(node).out))
    if node.op == "MaxPool" and len(node.outputs) > 1:
        if node.attr("storage_order", 0) not in (0, 1):
            raise fail(node, f"storage_order {node.attr('storage_order')} is not 0 or 1")
        return [y, TensorType("i64", y.shape)]
    return [y]


def _matmul_shapes(node: Node, a: tuple, b: tuple) -> tuple[int, ...]:
    a2 = (1,) + a if len(a) == 1 else a
    b2 = b + (1,) if len(b) == 1 else b
    if a2[-1] != b2[-2]:
        raise fail(node, f"inner dimensions differ: {list(a)} x {list(b)}")
    try:
        batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    except ValueError:
        raise fail(node, f"batch dimensions do not broadcast: {list(a)} x {list(b)}") from None
    out = tuple(batch) + (a2[-2], b2[-1])
    if len(a) == 1:
        out = out[:-2] + out[-1:]
    if len(b) == 1:
        out = out[:-1]
    return tuple(int(d) for d in out)


def _matmul(node: Node) -> list[TensorType]:
    return [TensorType("f32", _matmul_shapes(node, node.inputs[0].type.shape,
                                             node.inputs[1].type.shape))]


def _matmul_flops(node: Node) -> int:
    return 2 * node.outputs[0].type.numel * node.inputs[0].type.shape[-1]


def _gemm(node: Node) -> list[TensorType]:
    a, b = node.inputs[0].type.shape, node.inputs[1].type.shape
    if len(a) != 2 or len(b) != 2:
        raise fail(node, f"Gemm needs 2-D inputs, got {list(a)} and {list(b)}")
    a = a[::-1] if node.attr("transA", 0) else a
    b = b[::-1] if node.attr("transB", 0) else b
    return [TensorType("f32", _matmul_shapes(node, a, b))]


def _gemm_flops(node: Node) -> int:
    a = node.inputs[0].type.shape
    return 2 * node.outputs[0].type.numel * (a[0] if node.attr("transA", 0) else a[1])


def reduce_axes(node: Node) -> tuple[int, ...]:
    rank = node.inputs[0].type.rank
    if "axes_norm" in node.attrs:
        return node.attrs["axes_norm"]
    if node.attr("global_pool"):
        return tuple(range(2, rank))
    axes = const_input(node, 1, "axes")
    axes = node.attr("axes") if axes is None else axes
    if axes is None or len(np.ravel(axes)) == 0:
        return () if node.attr("noop_with_empty_axes", 0) else tuple(range(rank))
    return tuple(sorted({norm_axis(node, int(a), rank) for a in np.ravel(axes)}))


def _reduce(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    axes = reduce_axes(node)
    keep = node.attr("keepdims", 1)
    shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape) if keep or i not in axes)
    return [TensorType(x.dtype, shape)]


REDUCE = {
    "ReduceMean": np.mean, "ReduceSum": np.sum,
    "ReduceMax": lambda x, **kw: np.max(x, initial=_lowest(x.dtype), **kw),   # initial: of an empty set too
    "ReduceMin": lambda x, **kw: np.min(x, initial=_highest(x.dtype), **kw),
    "ReduceProd": np.prod,
    "ReduceL1": lambda x, **kw: np.sum(np.abs(x), **kw),
    "ReduceL2": lambda x, **kw: np.sqrt(np.sum(x * x, **kw)),
    "ReduceSumSquare": lambda x, **kw: np.sum(x * x, **kw),
    "ReduceLogSum": lambda x, **kw: np.log(np.sum(x, **kw)),
    "ReduceLogSumExp": lambda x, **kw: np.log(np.sum(np.exp(x), **kw)),
}


def _lowest(dtype: np.dtype):
    return -np.inf if dtype.kind == "f" else False if dtype.kind == "b" else np.iinfo(dtype).min


def _highest(dtype: np.dtype):
    return np.inf if dtype.kind == "f" else True if dtype.kind == "b" else np.iinfo(dtype).max


def _eval_reduce(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        out = REDUCE[node.op](xs[0], axis=reduce_axes(node), keepdims=bool(node.attr("keepdims", 1)))
    return [np.asarray(out, xs[0].dtype)]


def arg_axis(node: Node) -> int:
    return norm_axis(node, node.attr("axis", 0), node.inputs[0].type.rank)


def _arg_reduce(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    axis = arg_axis(node)
    if x.dtype == "bool":
        raise fail(node, "expects a number input, got bool")
    keep = node.attr("keepdims", 1)
    shape = tuple(1 if i == axis else d for i, d in enumerate(x.shape) if keep or i != axis)
    return [TensorType("i64", shape)]


def _eval_arg_reduce(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    """First (or with select_last_index, last) position of the extremum along the axis."""
    axis, x = arg_axis(node), xs[0]
    pick = np.argmax if node.op == "ArgMax" else np.argmin
    if node.attr("select_last_index", 0):
        index = x.shape[axis] - 1 - pick(np.flip(x, axis), axis=axis)
    else:
        index = pick(x, axis=axis)
    return [np.expand_dims(index, axis) if node.attr("keepdims", 1) else index]


def _same_as_input(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if x.dtype != "f32":
        raise fail(node, f"expects f32 input, got {x.dtype}")
    norm_axis(node, node.attr("axis", -1), x.rank)
    return [x]


def _layer_norm(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    axis = norm_axis(node, node.attr("axis", -1), x.rank)
    for v in node.inputs[1:]:
        if v is not None:
            try:
                np.broadcast_shapes(v.type.shape, x.shape[axis:])
            except ValueError:
                raise fail(node, f"scale/bias {v.type} do not fit {x}") from None
    return [x]


def layer_norm_param(node: Node, i: int, shape: tuple[int, ...], default: float) -> np.ndarray | Value:
    """Scale (i=1) or bias (i=2) of LayerNormalization broadcast to the normalised shape: an array
    when known at build time, else the runtime value, which must have that shape."""
    v = node.inputs[i] if len(node.inputs) > i else None
    if v is None:
        return np.full(shape, default, np.float32)
    if v.const is not None:
        return np.ascontiguousarray(np.broadcast_to(v.const, shape), np.float32)
    if v.type.shape != shape:
        raise fail(node, f"runtime scale/bias must have shape {list(shape)}")
    return v


def lrn_params(node: Node) -> tuple[int, float, float, float]:
    """size, alpha, beta, bias (ONNX's defaults)."""
    return (int(node.attrs["size"]), float(node.attr("alpha", 1e-4)), float(node.attr("beta", 0.75)),
            float(node.attr("bias", 1.0)))


def _lrn(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if x.dtype != "f32" or x.rank < 2:
        raise fail(node, f"expects an f32 input of rank 2 or more, got {x}")
    if "size" not in node.attrs or node.attrs["size"] < 1:
        raise fail(node, "needs a positive size")
    return [x]


def _eval_lrn(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    """x / (bias + alpha / size * sum of x^2 over the channels c - (size-1)//2 .. c + size//2)^beta."""
    size, alpha, beta, bias = lrn_params(node)
    x = xs[0]
    pad = [(0, 0)] * x.ndim
    pad[1] = ((size - 1) // 2, size // 2)
    sq = np.pad(x * x, pad)
    total = sum(sq[:, k:k + x.shape[1]] for k in range(size))
    return [x / (bias + alpha / size * total) ** beta]


def _batch_norm(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    for v in node.inputs[1:5]:
        if v.type.shape != (x.shape[1],):
            raise fail(node, f"parameter {v.name} has shape {list(v.type.shape)}, expected [{x.shape[1]}]")
    return [x]


def _softmax(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    x = xs[0]
    axis = node.attr("axis", -1)
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    s = e / e.sum(axis=axis, keepdims=True)
    return [np.log(s) if node.op == "LogSoftmax" else s]


op("Conv", _conv, flops=_conv_flops)
op("MaxPool", _pool, flops=lambda n: n.outputs[0].type.numel * int(np.prod(window(n).kernel)))
op("AveragePool", _pool, flops=lambda n: n.outputs[0].type.numel * int(np.prod(window(n).kernel)))
op("MatMul", _matmul, lambda n, xs: [np.matmul(xs[0], xs[1])], _matmul_flops)
op("Gemm", _gemm, flops=_gemm_flops)
for _name in REDUCE:
    op(_name, _reduce, _eval_reduce, lambda n: n.inputs[0].type.numel)
op("ArgMax", _arg_reduce, _eval_arg_reduce, lambda n: n.inputs[0].type.numel)
op("ArgMin", _arg_reduce, _eval_arg_reduce, lambda n: n.inputs[0].type.numel)
op("Softmax", _same_as_input, _softmax, lambda n: 5 * n.outputs[0].type.numel)
op("LogSoftmax", _same_as_input, _softmax, lambda n: 6 * n.outputs[0].type.numel)
op("LayerNormalization", _layer_norm, flops=lambda n: 8 * n.outputs[0].type.numel)


def group_count(node: Node) -> int:
    """InstanceNormalization as GroupNormalization with one group per channel."""
    x = node.inputs[0].type
    if x.rank < 3:
        raise fail(node, f"needs an input of rank 3 or more (N, C, ...), got rank {x.rank}")
    groups = x.shape[1] if node.op == "InstanceNormalization" else int(node.attrs.get("num_groups", 0))
    if groups <= 0 or x.shape[1] % groups:
        raise fail(node, f"num_groups {groups} must divide the {x.shape[1]} channels")
    return groups


def _group_norm(node: Node) -> list[TensorType]:
    group_count(node)
    return [node.inputs[0].type]


# Decomposed into reductions and elementwise ops for every backend (passes/decompose.py).
op("InstanceNormalization", _group_norm, flops=lambda n: 8 * n.outputs[0].type.numel)
op("GroupNormalization", _group_norm, flops=lambda n: 8 * n.outputs[0].type.numel)
op("LRN", _lrn, _eval_lrn, lambda n: (lrn_params(n)[0] + 4) * n.outputs[0].type.numel)
op("BatchNormalization", _batch_norm, flops=lambda n: 2 * n.outputs[0].type.numel)


@dataclass(frozen=True)
class AttentionShape:
    batch: int
    q_heads: int
    kv_heads: int
    q_seq: int
    past_seq: int
    kv_seq: int  # new keys/values, without the past
    head: int
    v_head: int
    three_d: bool  # Q, K, V as [batch, seq, heads * head]

    @property
    def total_seq(self) -> int:
        return self.past_seq + self.kv_seq


def attention_shape(node: Node) -> AttentionShape:
    q, k, v = (node.inputs[i].type for i in range(3))
    for window in ("left_window_size", "right_window_size"):
        if node.attr(window, -1) < -1:
            raise fail(node, f"{window} must be -1 or nonnegative, got {node.attr(window, -1)}")
    if q.rank == 3:
        q_heads, kv_heads = int(node.attrs.get("q_num_heads", 0)), int(node.attrs.get("kv_num_heads", 0))
        if q_heads <= 0 or kv_heads <= 0 or q.shape[2] % q_heads or k.shape[2] % kv_heads:
            raise fail(node, "3-D inputs need q_num_heads and kv_num_heads dividing their hidden sizes")
        shape = (q.shape[0], q_heads, kv_heads, q.shape[1], k.shape[1], q.shape[2] // q_heads, v.shape[2] // kv_heads)
    elif q.rank == 4:
        shape = (q.shape[0], q.shape[1], k.shape[1], q.shape[2], k.shape[2], q.shape[3], v.shape[3])
    else:
        raise fail(node, f"Q must be 3-D or 4-D, got rank {q.rank}")
    batch, q_heads, kv_heads, q_seq, kv_seq, head, v_head = shape
    if q_heads % kv_heads:
        raise fail(node, f"{q_heads} query heads are not a multiple of {kv_heads} key/value heads")
    past = node.inputs[4] if len(node.inputs) > 4 else None
    lengths = attention_kv_lengths(node)
    if lengths is not None and (past is not None or lengths.type.shape != (batch,)):
        raise fail(node, f"nonpad_kv_seqlen must be [{batch}] and excludes past_key/past_value")
    return AttentionShape(batch, q_heads, kv_heads, q_seq, past.type.shape[2] if past is not None else 0, kv_seq,
                          head, v_head, q.rank == 3)


def attention_kv_lengths(node: Node) -> Value | None:
    """nonpad_kv_seqlen: the valid key/value length of each batch entry (an external cache)."""
    return node.inputs[6] if len(node.inputs) > 6 else None


def _attention(node: Node) -> list[TensorType]:
    s, dtype = attention_shape(node), node.inputs[0].type.dtype
    y = (s.batch, s.q_seq, s.q_heads * s.v_head) if s.three_d else (s.batch, s.q_heads, s.q_seq, s.v_head)
    return [TensorType(dtype, shape) for shape in (
        y, (s.batch, s.kv_heads, s.total_seq, s.head), (s.batch, s.kv_heads, s.total_seq, s.v_head),
        (s.batch, s.q_heads, s.q_seq, s.total_seq))][:len(node.outputs)]


# Decomposed into matrix products, a softmax and elementwise ops (passes/decompose.py).
def _attention_flops(node: Node) -> int:
    s = attention_shape(node)
    return 2 * s.batch * s.q_heads * s.q_seq * s.total_seq * (s.head + s.v_head)


op("Attention", _attention, flops=_attention_flops)
