"""`Fused` nodes: one strided loop nest evaluating the node's program per output element."""
from __future__ import annotations

from ...ir.graph import Node
from ..llvm import program
from ..llvm.emit import MEM_TYPES, Fn
from .context import Context
from .loops import contiguous, nest


def scalar_const(v) -> float | None:
    if v.const is not None and v.const.size == 1:
        return v.const.reshape(()).item()
    return None


def emit_fused(ctx: Context, f: Fn, node: Node) -> None:
    y = node.outputs[0]
    shape = y.type.shape
    operands = [(0, contiguous(shape))]
    live = []  # inputs read from memory (not inlined scalars)
    for k, (v, view) in enumerate(zip(node.inputs, node.attrs["views"])):
        if scalar_const(v) is None:
            operands.append(view.strides(v.type.shape))
            live.append(k)
    dtypes = [v.type.dtype for v in node.inputs]

    def element(t: Fn, offs) -> None:
        regs = {}
        for k, off in zip(live, offs[1:]):
            ptr = t.gep(ctx.ptr(t, node.inputs[k]), off, MEM_TYPES[dtypes[k]])
            regs[k] = program.from_memory(t, t.b.load(ptr, typ=MEM_TYPES[dtypes[k]]), dtypes[k])

        def load(k: int):
            if k in regs:
                return regs[k], dtypes[k]
            c = scalar_const(node.inputs[k])
            ty = program.register_type(dtypes[k], MEM_TYPES["f32"])
            return (t.const_f(c, ty) if dtypes[k] == "f32" else t.const_i(int(c), ty)), dtypes[k]

        value, dtype = program.run(t, node.attrs["program"], load,
                                   lambda k: scalar_const(node.inputs[k]))
        out = t.gep(ctx.ptr(t, y), offs[0], MEM_TYPES[y.type.dtype])
        t.b.store(program.to_memory(t, value, dtype), out)

    nest(ctx, f, "fused", shape, operands, len(node.attrs["program"]), element)
