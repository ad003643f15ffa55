"""One thread per output element: fused elementwise programs (any dtype, operands read through
views), Concat and Gather; ScatterFlat: one per output element to zero it, then one per value."""
from __future__ import annotations

from ...ir.graph import Node
from ...ir.registry import norm_axis
from .kbase import Builder, dot, per_element, strides, unravel
from .kir import Apply, Cast, Const, If, Kernel, Load, Select, Store


def scalar_const(v) -> float | None:
    if v.const is not None and v.const.size == 1:
        return v.const.reshape(()).item()
    return None


def fused(b: Builder, node: Node) -> list[Kernel]:
    y = node.outputs[0]

    def body(i):
        idx = unravel(i, y.type.shape)
        operands, consts = [], []
        for v, view in zip(node.inputs, node.attrs["views"]):
            c = scalar_const(v)
            consts.append(c)
            if c is not None:
                operands.append(Const(float(c) if v.type.dtype == "f32" else int(c),
                                      v.type.dtype if v.type.dtype != "bool" else "bool"))
            else:
                offset, st = view.strides(v.type.shape)
                operands.append(Load(b.plan.buf(v), dot(idx, st, offset)))
        value = Apply(node.attrs["program"], tuple(operands), y.type.dtype, consts=tuple(consts))
        return [Store(b.plan.buf(y), i, value)]

    return [per_element(b, node, "elementwise", y.type.numel, body)]


def concat(b: Builder, node: Node) -> list[Kernel]:
    y = node.outputs[0]
    axis = norm_axis(node, node.attrs["axis"], y.type.rank)

    def body(i):
        idx = unravel(i, y.type.shape)
        stmts, start = [], 0
        for v in node.inputs:
            end = start + v.type.shape[axis]
            src = list(idx)
            src[axis] = idx[axis] - start
            stmts.append(If((idx[axis] >= start) & (idx[axis] < end),
                            (Store(b.plan.buf(y), i, Load(b.plan.buf(v), dot(src, strides(v.type.shape)))),)))
            start = end
        return stmts

    return [per_element(b, node, "concat", y.type.numel, body)]


def gather(b: Builder, node: Node) -> list[Kernel]:
    data, ind, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = norm_axis(node, node.attr("axis", 0), data.type.rank)
    dims, ni = data.type.shape[axis], ind.type.rank

    def body(i):
        idx = unravel(i, y.type.shape)
        k = Cast(Load(b.plan.buf(ind), dot(idx[axis:axis + ni], strides(ind.type.shape))), "i64")
        k = Select(k < 0, k + dims, k)
        k = Select(k < 0, Const(0), Select(k >= dims, Const(dims - 1), k))
        src = idx[:axis] + [k] + idx[axis + ni:]
        return [Store(b.plan.buf(y), i, Load(b.plan.buf(data), dot(src, strides(data.type.shape))))]

    return [per_element(b, node, "gather", y.type.numel, body)]


def scatter_flat(b: Builder, node: Node) -> list[Kernel]:
    values, positions, y = node.inputs[0], node.inputs[1], node.outputs[0]
    size = y.type.numel
    zero = Const(0.0 if y.type.dtype == "f32" else 0, y.type.dtype)

    def place(i):
        p = Load(b.plan.buf(positions), i)
        return [If((p >= 0) & (p < size), (Store(b.plan.buf(y), p, Load(b.plan.buf(values), i)),))]

    return [per_element(b, node, "scatter_zero", size, lambda i: [Store(b.plan.buf(y), i, zero)]),
            per_element(b, node, "scatter", values.type.numel, place)]
