"""Data movement that is not a view: Concat (copies into output slices), Gather and ScatterFlat."""
from __future__ import annotations

import llvmlite.ir as ir

from ...ir.graph import Node
from ...ir.registry import norm_axis
from ..llvm.emit import I64, MEM_TYPES, Fn
from .context import Context
from .loops import contiguous, nest


def emit_concat(ctx: Context, f: Fn, node: Node) -> None:
    y = node.outputs[0]
    axis = norm_axis(node, node.attrs["axis"], y.type.rank)
    ystrides = contiguous(y.type.shape)
    ty = MEM_TYPES[y.type.dtype]
    start = 0
    for v in node.inputs:
        shape = v.type.shape

        def copy(t: Fn, offs: list[ir.Value], v=v) -> None:
            val = t.b.load(t.gep(ctx.ptr(t, v), offs[1], ty), typ=ty)
            t.b.store(val, t.gep(ctx.ptr(t, y), offs[0], ty))

        nest(ctx, f, "concat", shape, [(start * ystrides[axis], ystrides), (0, contiguous(shape))],
             0, copy)
        start += shape[axis]


def emit_gather(ctx: Context, f: Fn, node: Node) -> None:
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = norm_axis(node, node.attr("axis", 0), data.type.rank)
    ds, dims = contiguous(data.type.shape), data.type.shape[axis]
    ni = idx.type.rank
    post = data.type.rank - axis - 1
    data_strides = ds[:axis] + (0,) * ni + ds[axis + 1:]
    idx_strides = (0,) * axis + contiguous(idx.type.shape) + (0,) * post
    ty, ity = MEM_TYPES[y.type.dtype], MEM_TYPES[idx.type.dtype]

    def pick(t: Fn, offs: list[ir.Value]) -> None:
        b = t.b
        i = b.load(t.gep(ctx.ptr(t, idx), offs[2], ity), typ=ity)
        i = b.sext(i, I64) if ity != I64 else i
        i = b.select(b.icmp_signed("<", i, t.i64(0)), b.add(i, t.i64(dims)), i)
        i = b.select(b.icmp_signed("<", i, t.i64(0)), t.i64(0), i)
        i = b.select(b.icmp_signed(">=", i, t.i64(dims)), t.i64(dims - 1), i)
        src = b.add(offs[1], b.mul(i, t.i64(ds[axis])))
        b.store(b.load(t.gep(ctx.ptr(t, data), src, ty), typ=ty), t.gep(ctx.ptr(t, y), offs[0], ty))

    nest(ctx, f, "gather", y.type.shape,
         [(0, contiguous(y.type.shape)), (0, data_strides), (0, idx_strides)], 0, pick)


def emit_scatter_flat(ctx: Context, f: Fn, node: Node) -> None:
    """Zeros, then each value stored at its position (positions outside the output store nothing)."""
    values, positions, y = node.inputs[0], node.inputs[1], node.outputs[0]
    ty, size = MEM_TYPES[y.type.dtype], y.type.numel

    def zero(t: Fn, offs: list[ir.Value]) -> None:
        t.b.store(ir.Constant(ty, 0), t.gep(ctx.ptr(t, y), offs[0], ty))

    def place(t: Fn, offs: list[ir.Value]) -> None:
        b = t.b
        p = b.load(t.gep(ctx.ptr(t, positions), offs[0], I64), typ=I64)
        with b.if_then(b.icmp_unsigned("<", p, t.i64(size))):  # unsigned: negative positions too
            b.store(b.load(t.gep(ctx.ptr(t, values), offs[0], ty), typ=ty), t.gep(ctx.ptr(t, y), p, ty))

    nest(ctx, f, "scatter_zero", y.type.shape, [(0, contiguous(y.type.shape))], 0, zero)
    nest(ctx, f, "scatter", values.type.shape, [(0, contiguous(values.type.shape))], 0, place)
