"""Conv, pooling, MatMul/Gemm, reductions and normalisations as StableHLO."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Node, TensorType
from ...ir.ops_nn import arg_axis, reduce_axes, window
from ...ir.registry import norm_axis
from .emitter import Emitter, Ref, i64_array
from .lower_elementwise import Lowering
from .lower_shape import slice_range


def _padding(begin, end) -> str:
    rows = ", ".join(f"[{b}, {e}]" for b, e in zip(begin, end))
    return f"dense<[{rows}]> : tensor<{len(begin)}x2xi64>"


def _conv(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x, w = xs[0], xs[1]
    win = window(node)
    spatial = ", ".join(str(i) for i in range(len(win.kernel)))
    dims = f"#stablehlo.conv<[b, f, {spatial}]x[o, i, {spatial}]->[b, f, {spatial}]>"
    attrs = (f"dimension_numbers = {dims}, window_strides = {i64_array(win.strides)}, "
             f"padding = {_padding(win.pads_begin, win.pads_end)}, "
             f"lhs_dilation = {i64_array([1] * len(win.kernel))}, rhs_dilation = {i64_array(win.dilations)}, "
             f"feature_group_count = {node.attr('group', 1)} : i64, batch_group_count = 1 : i64, "
             f"{em.precision_config()}")
    y = em.op("convolution", [x, w], node.outputs[0].type, attrs)
    if len(xs) > 2 and xs[2] is not None:
        y = em.binary("add", y, em.broadcast_dims(xs[2], y.type.shape, [1]))
    return [y]


def _pool_window(node: Node) -> str:
    """reduce_window attributes over all dimensions, the end padding widened so that ceil_mode's
    extra output positions exist."""
    win = window(node)
    eff = [(k - 1) * d + 1 for k, d in zip(win.kernel, win.dilations)]
    ends = [max(e, (o - 1) * s + k - n - b)
            for e, o, s, k, n, b in zip(win.pads_end, win.out, win.strides, eff, win.size, win.pads_begin)]
    attrs = (f"window_dimensions = {i64_array([1, 1, *win.kernel])}, "
             f"window_strides = {i64_array([1, 1, *win.strides])}, "
             f"window_dilations = {i64_array([1, 1, *win.dilations])}, "
             f"padding = {_padding([0, 0, *win.pads_begin], [0, 0, *ends])}")
    return attrs


def _reduce_window(em: Emitter, node: Node, x: Ref, region: str, init: float) -> Ref:
    attrs = _pool_window(node)
    start = em.constant(init, "f32")
    return em.op("reduce_window", [x, start], node.outputs[0].type, attrs, region)


def _max_pool(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [_reduce_window(em, node, xs[0], em.nan_extremum_region(), -np.inf)]


def _pool_counts(node: Node) -> np.ndarray:
    """How many input (or, with count_include_pad, input and pad) positions each window covers."""
    win = window(node)
    per_dim = []
    for n, k, s, d, b, e, o in zip(win.size, win.kernel, win.strides, win.dilations, win.pads_begin,
                                   win.pads_end, win.out):
        lo, hi = (-b, n + e) if node.attr("count_include_pad", 0) else (0, n)
        taps = np.arange(o)[:, None] * s - b + np.arange(k)[None, :] * d
        per_dim.append(((taps >= lo) & (taps < hi)).sum(axis=1))
    counts = per_dim[0]
    for c in per_dim[1:]:
        counts = np.multiply.outer(counts, c)
    return counts.astype(np.float32)


def _average_pool(em: Emitter, node: Node, xs: list) -> list[Ref]:
    total = _reduce_window(em, node, xs[0], em.scalar_region("add", "f32"), 0.0)
    counts = em.constant(_pool_counts(node), "f32")
    return [em.binary("divide", total, counts)]


def _dot(em: Emitter, a: Ref, b: Ref) -> Ref:
    """numpy matmul of a (rank >= 2) and b (rank >= 2) with broadcast batch dimensions."""
    if b.type.rank == 2:
        out = TensorType("f32", a.type.shape[:-1] + b.type.shape[1:])
        dims = (f"#stablehlo.dot<lhs_contracting_dimensions = [{a.type.rank - 1}], "
                f"rhs_contracting_dimensions = [0]>")
        return em.op("dot_general", [a, b], out, f"dot_dimension_numbers = {dims}, {em.precision_config()}")
    batch = tuple(np.broadcast_shapes(a.type.shape[:-2], b.type.shape[:-2]))
    a = em.broadcast(a, batch + a.type.shape[-2:])
    b = em.broadcast(b, batch + b.type.shape[-2:])
    nb = len(batch)
    ids = ", ".join(str(i) for i in range(nb))
    dims = (f"#stablehlo.dot<lhs_batching_dimensions = [{ids}], rhs_batching_dimensions = [{ids}], "
            f"lhs_contracting_dimensions = [{nb + 1}], rhs_contracting_dimensions = [{nb}]>")
    out = TensorType("f32", batch + (a.type.shape[-2], b.type.shape[-1]))
    return em.op("dot_general", [a, b], out, f"dot_dimension_numbers = {dims}, {em.precision_config()}")


def _matmul(em: Emitter, node: Node, xs: list) -> list[Ref]:
    a, b = xs
    a2 = em.reshape(a, (1,) + a.type.shape) if a.type.rank == 1 else a
    b2 = em.reshape(b, b.type.shape + (1,)) if b.type.rank == 1 else b
    return [em.reshape(_dot(em, a2, b2), node.outputs[0].type.shape)]


def _transpose2(em: Emitter, x: Ref) -> Ref:
    return em.op("transpose", [x], TensorType(x.type.dtype, x.type.shape[::-1]),
                 f"permutation = {i64_array([1, 0])}")


def _gemm(em: Emitter, node: Node, xs: list) -> list[Ref]:
    a = _transpose2(em, xs[0]) if node.attr("transA", 0) else xs[0]
    b = _transpose2(em, xs[1]) if node.attr("transB", 0) else xs[1]
    y = _dot(em, a, b)
    if node.attr("alpha", 1.0) != 1.0:
        y = em.binary("multiply", y, em.full(node.attr("alpha", 1.0), "f32", y.type.shape))
    if len(xs) > 2 and xs[2] is not None and node.attr("beta", 1.0) != 0.0:
        c = xs[2]
        if node.attr("beta", 1.0) != 1.0:
            c = em.binary("multiply", c, em.full(node.attr("beta", 1.0), "f32", c.type.shape))
        y = em.binary("add", y, c)
    return [y]


def _limit(dtype: str, op: str):
    """The start value of a max (or min) reduction: the lowest (highest) value of the dtype."""
    if dtype == "f32":
        return -np.inf if op == "maximum" else np.inf
    limits = np.iinfo(dtype.replace("i", "int"))
    return limits.min if op == "maximum" else limits.max


# op -> (StableHLO reduction op, start value)
REDUCERS = {"ReduceSum": ("add", 0), "ReduceMean": ("add", 0), "ReduceMax": ("maximum", -np.inf),
            "ReduceMin": ("minimum", np.inf), "ReduceProd": ("multiply", 1)}


def _reduce(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x, axes = xs[0], reduce_axes(node)
    if not axes:
        return [x]
    op, init = REDUCERS[node.op]
    nan_safe = op in ("maximum", "minimum") and x.type.dtype == "f32"
    init = _limit(x.type.dtype, op) if op in ("maximum", "minimum") else init
    y = em.reduce(x, axes, op, init, em.nan_extremum_region(op) if nan_safe else None)
    if node.op == "ReduceMean":
        count = int(np.prod([x.type.shape[a] for a in axes]))
        y = em.binary("divide", y, em.full(count, x.type.dtype, y.type.shape))
    return [em.reshape(y, node.outputs[0].type.shape)]


def _arg_reduce(em: Emitter, node: Node, xs: list) -> list[Ref]:
    """The first (or last) index holding the extremum of the values other than NaN, as the CPU
    backend's scan gives it; a NaN in a slice's first place wins that slice."""
    x, axis = xs[0], arg_axis(node)
    shape, n = x.type.shape, x.type.shape[axis]
    op = "maximum" if node.op == "ArgMax" else "minimum"
    values = x
    if x.type.dtype == "f32":
        nan = em.compare(x, x, "NE")
        values = em.op("select", [nan, em.full(_limit("f32", op), "f32", shape), x], x.type)
    extremum = em.reduce_keep(values, (axis,), op, _limit(x.type.dtype, op))
    iota = em.op("iota", [], TensorType("i64", shape), f"iota_dimension = {axis} : i64")
    last = node.attr("select_last_index", 0)
    none = -1 if last else n
    hits = em.op("select", [em.compare(x, extremum, "EQ"), iota, em.full(none, "i64", shape)], iota.type)
    index = em.reduce(hits, (axis,), "maximum" if last else "minimum", none)
    if x.type.dtype == "f32":
        ones = [1] * len(shape)
        first = slice_range(em, x, [0] * len(shape), ones, [1 if d == axis else s for d, s in enumerate(shape)])
        first = em.reshape(first, index.type.shape)
        index = em.op("select", [em.compare(first, first, "NE"), em.full(0, "i64", index.type.shape), index],
                      index.type)
    return [em.reshape(index, node.outputs[0].type.shape)]


def _softmax(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x = xs[0]
    axis = (norm_axis(node, node.attr("axis", -1), x.type.rank),)
    shifted = em.binary("subtract", x, em.reduce_keep(x, axis, "maximum", -np.inf))
    e = em.op("exponential", [shifted], x.type)
    total = em.reduce_keep(e, axis, "add", 0.0)
    if node.op == "LogSoftmax":
        return [em.binary("subtract", shifted, em.op("log", [total], x.type))]
    return [em.binary("divide", e, total)]


def _normalize(em: Emitter, x: Ref, axes: tuple[int, ...], eps: float) -> Ref:
    n = float(np.prod([x.type.shape[a] for a in axes]))
    mean = em.binary("divide", em.reduce_keep(x, axes, "add", 0.0), em.full(n, "f32", x.type.shape))
    centered = em.binary("subtract", x, mean)
    var = em.binary("divide", em.reduce_keep(em.binary("multiply", centered, centered), axes, "add", 0.0),
                    em.full(n, "f32", x.type.shape))
    scale = em.op("rsqrt", [em.binary("add", var, em.full(eps, "f32", x.type.shape))], x.type)
    return em.binary("multiply", centered, scale)


def _layer_norm(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x = xs[0]
    axis = norm_axis(node, node.attr("axis", -1), x.type.rank)
    y = _normalize(em, x, tuple(range(axis, x.type.rank)), node.attr("epsilon", 1e-5))
    y = em.binary("multiply", y, xs[1])
    return [em.binary("add", y, xs[2]) if len(xs) > 2 and xs[2] is not None else y]


def _batch_norm(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x, scale, bias, mean, var = xs[:5]
    shape = x.type.shape
    per_channel = [em.broadcast_dims(v, shape, [1]) for v in (scale, bias, mean, var)]
    scale, bias, mean, var = per_channel
    eps = em.full(node.attr("epsilon", 1e-5), "f32", shape)
    inv = em.op("rsqrt", [em.binary("add", var, eps)], x.type)
    y = em.binary("multiply", em.binary("subtract", x, mean), em.binary("multiply", inv, scale))
    return [em.binary("add", y, bias)]


LOWERINGS: dict[str, Lowering] = {
    "Conv": _conv, "MaxPool": _max_pool, "AveragePool": _average_pool, "MatMul": _matmul, "Gemm": _gemm,
    **{op: _reduce for op in REDUCERS}, "ArgMax": _arg_reduce, "ArgMin": _arg_reduce,
    "Softmax": _softmax, "LogSoftmax": _softmax,
    "LayerNormalization": _layer_norm, "BatchNormalization": _batch_norm,
}
