"""The GEMM micro-kernel: an mr x (vectors * width) tile of C held in vector registers,
updated by one broadcast A element times one row of B per k step (explicit vector IR), with
the node's fused epilogue applied to the registers before the single store."""
from __future__ import annotations

from dataclasses import dataclass

import llvmlite.ir as ir
import numpy as np

from ...ir.graph import Node
from ..llvm import program
from ..llvm.emit import F32, I1, I32, I64, PTR, VOID, Fn
from .context import Context
from .k_elementwise import scalar_const
from .loops import unravel

MR = 6  # rows per tile; 6 x 4 zmm accumulators leave registers for B and the broadcast

# ctx, a, lda, b, ldb, c, ldc, k, first, last, row0, col0
ARGS = (PTR, PTR, I64, PTR, I64, PTR, I64, I64, I1, I1, I64, I64)


@dataclass(frozen=True)
class Epilogue:
    """Where the fused operands are: element strides over the output's row dims and last dim."""

    node: Node
    n_args: int
    row_dims: tuple[int, ...]           # output shape without the last dim
    operands: tuple[tuple[int, tuple[int, ...], int], ...]  # (offset, row-dim strides, col stride)
    plain: bool = False                 # a GEMM inside the node's kernel: no epilogue here

    @property
    def program(self) -> tuple:
        return () if self.plain else self.node.attrs.get("program", ())

    @staticmethod
    def of(node: Node, n_args: int) -> "Epilogue":
        shape = node.outputs[0].type.shape
        ops = []
        for v, view in zip(node.inputs[n_args:], node.attrs.get("views", ())):
            off, strides = view.strides(v.type.shape)
            ops.append((off, strides[:-1], strides[-1]))
        return Epilogue(node, n_args, shape[:-1], tuple(ops))


def micro_kernel(ctx: Context, epi: Epilogue, mr: int, cols: int, masked_b: bool,
                 taps: tuple[tuple[int, int], ...] = ((0, 0),), prefetch: int = 0, inline: bool = True
                 ) -> ir.Function:
    """C[mr, cols] (+)= A[mr, k] B[k, cols]; then the epilogue when `last`.

    With several taps (implicit-GEMM convolution) the product is summed over them: tap
    (a_off, b_off) multiplies A shifted by a_off elements with B shifted by b_off, each over
    k steps, all in the same registers. A non-zero `prefetch` brings the B row that many
    floats ahead into L2 while this one is used (for B streaming from memory)."""
    key = ("ukernel", id(epi.node), epi.plain, mr, cols, masked_b, taps, prefetch, inline)
    if key in ctx.cache:
        return ctx.cache[key]
    vw = ctx.variant.vector_width
    nv = -(-cols // vw)
    tail = cols - (nv - 1) * vw  # active lanes of the last vector
    f = Fn(ctx.module, ctx.name(f"ukernel_{mr}x{cols}"), ctx.variant, ARGS)
    if not inline:
        f.fn.attributes.add("noinline")
    _, a, lda, bp, ldb, c, ldc, k, first, last, row0, col0 = f.args
    for arg in (a, bp, c):
        arg.add_attribute("noalias")
    vt = f.vec()
    b = f.b
    acc = [[f.pro.alloca(vt) for _ in range(nv)] for _ in range(mr)]
    lanes = lambda j: tail if j == nv - 1 else None  # noqa: E731
    crow = [f.gep(c, b.mul(f.i64(r), ldc)) if r else c for r in range(mr)]
    with f.if_else(first) as (then, other):
        with then:
            for r in range(mr):
                for j in range(nv):
                    b.store(f.const_f(0.0, vt), acc[r][j])
        with other:
            for r in range(mr):
                for j in range(nv):
                    b.store(f.load_vec(f.gep(crow[r], j * vw), vt, lanes(j)), acc[r][j])
    for a_off, b_off in taps:
        arow = [f.gep(a, b.add(b.mul(f.i64(r), lda), f.i64(a_off))) for r in range(mr)]
        btap = f.gep(bp, b_off)
        with f.loop(k) as kk:
            brow = f.gep(btap, b.mul(kk, ldb))
            bv = [f.load_vec(f.gep(brow, j * vw), vt, lanes(j) if masked_b else None)
                  for j in range(nv)]
            if prefetch:
                for j in range(0, cols, 16):
                    f.intrinsic("llvm.prefetch.p0", VOID, [f.gep(brow, prefetch + j), ir.Constant(I32, 0),
                                                           ir.Constant(I32, 2), ir.Constant(I32, 1)])
            for r in range(mr):
                av = f.splat(b.load(f.gep(arow[r], kk), typ=F32), vt)
                for j in range(nv):
                    prod = (f.fmuladd(av, bv[j], b.load(acc[r][j], typ=vt)) if ctx.variant.fma else
                            b.fadd(b.fmul(av, bv[j]), b.load(acc[r][j], typ=vt)))
                    b.store(prod, acc[r][j])
    if epi.program:
        with f.if_then(last):
            _epilogue(ctx, f, epi, acc, row0, col0, nv, tail)
    for r in range(mr):
        for j in range(nv):
            f.store_vec(b.load(acc[r][j], typ=vt), f.gep(crow[r], j * vw), lanes(j))
    f.finish()
    ctx.cache[key] = f.fn
    return f.fn


def _epilogue(ctx: Context, f: Fn, epi: Epilogue, acc, row0, col0, nv: int, tail: int) -> None:
    b, vt, vw = f.b, f.vec(), ctx.variant.vector_width
    inputs = epi.node.inputs
    bases = {}
    for k, (off, _, _) in enumerate(epi.operands):
        v = inputs[epi.n_args + k]
        if scalar_const(v) is None:
            bases[k] = f.gep(ctx.ptr(f, v), off)
    for r in range(len(acc)):
        idx = unravel(f, b.add(row0, f.i64(r)), epi.row_dims)
        row_off = {k: f.madd(*zip(idx, epi.operands[k][1])) for k in bases}
        for j in range(nv):
            col = b.add(col0, f.i64(j * vw))
            active = tail if j == nv - 1 else None

            def load(i: int, col=col, active=active, row_off=row_off):
                k = i - epi.n_args
                cval = scalar_const(inputs[i])
                if cval is not None:
                    return f.const_f(cval, vt), "f32"
                _, _, cs = epi.operands[k]
                if cs == 0:
                    return f.splat(b.load(f.gep(bases[k], row_off[k]), typ=F32), vt), "f32"
                return f.load_vec(f.gep(bases[k], b.add(row_off[k], col)), vt, active), "f32"

            val, _ = program.run(f, epi.program, load,
                                 lambda i: scalar_const(inputs[i]), (b.load(acc[r][j], typ=vt), "f32"))
            b.store(val, acc[r][j])


def pack_b(w: np.ndarray, panel: int = 64, pad_to: int = 16) -> np.ndarray:
    """[K, N] -> panels of `panel` columns, each K rows of its (padded) width, concatenated."""
    k, n = w.shape
    parts = []
    for p0 in range(0, n, panel):
        width = min(panel, n - p0)
        padded = -(-width // pad_to) * pad_to
        part = np.zeros((k, padded), np.float32)
        part[:, :width] = w[:, p0:p0 + width]
        parts.append(part.ravel())
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)
