"""Reductions and normalisations: ReduceSum/Mean/Max/Min/Prod, ArgMax/ArgMin, Softmax/LogSoftmax,
LayerNormalization."""
from __future__ import annotations

import numpy as np
import llvmlite.ir as ir

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.ops_nn import arg_axis, layer_norm_param, reduce_axes
from ...ir.registry import norm_axis
from ..llvm import mathfn
from ..llvm.emit import F32, I64, MEM_TYPES, Fn
from .context import Context
from .loops import contiguous, serial_nest, unravel

FAST = ("reassoc", "contract")  # lets LLVM vectorise the sums


def _fadd(f: Fn, a: ir.Value, b: ir.Value) -> ir.Value:
    return f.b.fadd(a, b, flags=FAST)


# op -> (start value, combine); Max and Min give NaN for a slice holding one, as numpy does.
REDUCERS = {
    "ReduceSum": (0.0, _fadd), "ReduceMean": (0.0, _fadd), "ReduceMax": (float("-inf"), mathfn.fmax),
    "ReduceMin": (float("inf"), mathfn.fmin), "ReduceProd": (1.0, lambda f, a, b: f.b.fmul(a, b, flags=FAST)),
}


def emit_reduce(ctx: Context, f: Fn, node: Node) -> None:
    """Tasks own the leading non-reduced dims; inside, out[...] = out[...] (op) x[...] over the rest."""
    x, y = node.inputs[0], node.outputs[0]
    if x.type.dtype != "f32":
        raise CompileError(f"{node.op} node {node.name}: only f32 is supported")
    shape, axes = x.type.shape, set(reduce_axes(node))
    lead = next((d for d in range(len(shape)) if d in axes), len(shape))
    out_shape = tuple(1 if d in axes else s for d, s in enumerate(shape))
    out_strides = tuple(0 if d in axes else s for d, s in enumerate(contiguous(out_shape)))
    in_strides = contiguous(shape)
    rest = shape[lead:]
    count = int(np.prod([shape[d] for d in axes], dtype=np.int64)) or 1
    slice_size = int(np.prod([s for d, s in enumerate(shape) if d >= lead and d not in axes],
                             dtype=np.int64))
    start, combine = REDUCERS[node.op]

    def task(t: Fn, flat: ir.Value) -> None:
        idx = unravel(t, flat, shape[:lead])
        xo = t.madd(*zip(idx, in_strides[:lead]))
        yo = t.madd(*zip(idx, out_strides[:lead]))
        xp, yp = ctx.ptr(t, x), ctx.ptr(t, y)
        with t.loop(slice_size) as j:
            t.b.store(t.const_f(start, F32), t.gep(yp, t.b.add(yo, j)))

        def acc(offs: list[ir.Value]) -> None:
            p = t.gep(yp, offs[1])
            t.b.store(combine(t, t.b.load(p, typ=F32), t.b.load(t.gep(xp, offs[0]), typ=F32)), p)

        serial_nest(t, rest, [(xo, in_strides[lead:]), (yo, out_strides[lead:])], acc)
        if node.op == "ReduceMean" and count > 1:
            with t.loop(slice_size) as j:
                p = t.gep(yp, t.b.add(yo, j))
                t.b.store(t.b.fmul(t.b.load(p, typ=F32), t.const_f(1.0 / count, F32)), p)

    n = int(np.prod(shape[:lead], dtype=np.int64))
    ctx.parallel(f, "reduce", n, x.type.numel, task)


def _rows(shape: tuple[int, ...], axis: int, to_end: bool) -> tuple[int, int, int]:
    """(outer, n, inner) view of a tensor normalised over `axis` (or axis.. end)."""
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    if to_end:
        return outer, int(np.prod(shape[axis:], dtype=np.int64)), 1
    return outer, shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))


def _better(f: Fn, op: str, last: bool, v: ir.Value, best: ir.Value, dtype: str) -> ir.Value:
    """Whether v replaces the best so far in an ArgMax/ArgMin scan: strictly (ties keep the first),
    or with `last` also on ties. Ordered, so a NaN never wins unless it came first (as onnxruntime)."""
    cmp = {("ArgMax", False): ">", ("ArgMax", True): ">=", ("ArgMin", False): "<", ("ArgMin", True): "<="}
    sign = cmp[op, last]
    return f.b.fcmp_ordered(sign, v, best) if dtype == "f32" else f.b.icmp_signed(sign, v, best)


def emit_arg_reduce(ctx: Context, f: Fn, node: Node) -> None:
    """One task per (outer, inner) position scans the axis."""
    x, y = node.inputs[0], node.outputs[0]
    outer, n, inner = _rows(x.type.shape, arg_axis(node), False)
    dtype, last = x.type.dtype, bool(node.attr("select_last_index", 0))
    ty = MEM_TYPES[dtype]

    def task(t: Fn, row: ir.Value) -> None:
        b = t.b
        base = t.madd((b.udiv(row, t.i64(inner)), n * inner), (b.urem(row, t.i64(inner)), 1))
        xp = ctx.ptr(t, x)
        best, arg = t.pro.alloca(ty), t.pro.alloca(I64)
        b.store(b.load(t.gep(xp, base, ty), typ=ty), best)
        b.store(t.i64(0), arg)
        with t.loop(n, 1) as j:
            v = b.load(t.gep(xp, b.add(base, b.mul(j, t.i64(inner))), ty), typ=ty)
            take = _better(t, node.op, last, v, b.load(best, typ=ty), dtype)
            b.store(b.select(take, v, b.load(best, typ=ty)), best)
            b.store(b.select(take, j, b.load(arg, typ=I64)), arg)
        b.store(b.load(arg, typ=I64), t.gep(ctx.ptr(t, y), row, I64))

    ctx.parallel(f, "argreduce", outer * inner, x.type.numel, task)


def emit_softmax(ctx: Context, f: Fn, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    outer, n, inner = _rows(x.type.shape, norm_axis(node, node.attr("axis", -1), x.type.rank), False)
    log = node.op == "LogSoftmax"
    # LLVM 20's vectorizer asserts (its two cost models disagree) on these loops for some row
    # lengths (60, 72, 76, 92, ...); a fixed width skips the choice. Rows under LLVM's tiny-trip-count
    # threshold (16) never crashed, and a hint there only earns a "not vectorized" remark on stderr.
    vw = ctx.variant.vector_width if n > 16 else None

    def task(t: Fn, row: ir.Value) -> None:
        b = t.b
        base = t.madd((b.udiv(row, t.i64(inner)), n * inner), (b.urem(row, t.i64(inner)), 1))
        xp, yp = ctx.ptr(t, x), ctx.ptr(t, y)
        at = lambda p, j: t.gep(p, b.add(base, b.mul(j, t.i64(inner))))  # noqa: E731
        mx, total = t.pro.alloca(F32), t.pro.alloca(F32)
        b.store(t.const_f(float("-inf"), F32), mx)
        with t.loop(n, vector_width=vw) as j:
            # maximum, not compare+select: LLVM vectorises maximum reductions. Not maxnum either:
            # LLVM 20 vectorises a maxnum reduction with a NaN check that skips the remainder
            # iterations of short rows (10 of them: the last two were left out of the max).
            v = b.load(at(xp, j), typ=F32)
            b.store(t.intrinsic("llvm.maximum.f32", F32, [b.load(mx, typ=F32), v]), mx)
        m = b.load(mx, typ=F32)
        b.store(t.const_f(0.0, F32), total)
        with t.loop(n, vector_width=vw) as j:
            e = mathfn.exp(t, b.fsub(b.load(at(xp, j), typ=F32), m))
            b.store(e, at(yp, j))
            b.store(_fadd(t, b.load(total, typ=F32), e), total)
        s = b.load(total, typ=F32)
        if log:
            shift = b.fadd(m, mathfn.log(t, s))
            with t.loop(n, vector_width=vw) as j:
                b.store(b.fsub(b.load(at(xp, j), typ=F32), shift), at(yp, j))
        else:
            inv = b.fdiv(t.const_f(1.0, F32), s)
            with t.loop(n, vector_width=vw) as j:
                b.store(b.fmul(b.load(at(yp, j), typ=F32), inv), at(yp, j))

    ctx.parallel(f, "softmax", outer * inner, 8 * x.type.numel, task)


def emit_layer_norm(ctx: Context, f: Fn, node: Node) -> None:
    x, y = node.inputs[0], node.outputs[0]
    axis = norm_axis(node, node.attr("axis", -1), x.type.rank)
    outer, n, _ = _rows(x.type.shape, axis, True)
    eps = float(node.attr("epsilon", 1e-5))
    params = [layer_norm_param(node, i, x.type.shape[axis:], d) for i, d in ((1, 1.0), (2, 0.0))]

    def task(t: Fn, row: ir.Value) -> None:
        b = t.b
        base = b.mul(row, t.i64(n))
        xp, yp = ctx.ptr(t, x), ctx.ptr(t, y)
        sp, bp = (ctx.weight(t, f"{node.name}.{k}", p) if isinstance(p, np.ndarray) else ctx.ptr(t, p)
                  for k, p in zip(("scale", "bias"), params))
        acc = t.pro.alloca(F32)

        def mean_of(value) -> ir.Value:
            b.store(t.const_f(0.0, F32), acc)
            with t.loop(n) as j:
                b.store(_fadd(t, b.load(acc, typ=F32), value(j)), acc)
            return b.fmul(b.load(acc, typ=F32), t.const_f(1.0 / n, F32))

        xj = lambda j: b.load(t.gep(xp, b.add(base, j)), typ=F32)  # noqa: E731
        mean = mean_of(xj)
        var = mean_of(lambda j: (lambda d: b.fmul(d, d))(b.fsub(xj(j), mean)))
        rstd = b.fdiv(t.const_f(1.0, F32), t.intrinsic("llvm.sqrt.f32", F32, [
            b.fadd(var, t.const_f(eps, F32))]))
        with t.loop(n) as j:
            v = b.fmul(b.fsub(xj(j), mean), rstd)
            v = t.fmuladd(v, b.load(t.gep(sp, j), typ=F32), b.load(t.gep(bp, j), typ=F32))
            b.store(v, t.gep(yp, b.add(base, j)))

    ctx.parallel(f, "layernorm", outer, 8 * x.type.numel, task)
