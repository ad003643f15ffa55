"""3x3 stride-1 convolution by Winograd F(2x2, 3x3): each 2x2 block of outputs comes from a
4x4 input patch with 16 multiplies per channel pair instead of 36, so the GEMM work drops
2.25x. Three steps over a scratch buffer:
- input transform: V[xi][tile][cin] = (B^T d B)[xi] of each tile's 4x4 patch (zeros outside);
- 16 GEMMs on the blocked driver: M[xi] = V[xi] (tiles x cin) U[xi] (cin x cout), where
  U = G g G^T is computed from the weights at build time and pre-packed;
- output transform: y = A^T M A per tile, with the node's fused epilogue per output pixel.
A large batch goes through the three steps a slice of images at a time, so the buffer stays
in cache between the steps instead of streaming V and M (16x the tiles) through memory.
The transforms are exact in real arithmetic; in f32 they change rounding by ~1e-6 relative."""
from __future__ import annotations

from dataclasses import replace

import llvmlite.ir as ir
import numpy as np

from ...ir.graph import Node
from ..llvm.emit import Fn
from .context import Context
from .k_depthwise import fused_epilogue
from .k_elementwise import scalar_const
from .k_gemm import NR, gemm
from .k_gemm_micro import Epilogue, pack_b
from .k_pool import in_range
from .loops import vector_blocks

G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], np.float64)
MIN_TILES = 32  # below this many 2x2 tiles the 16/9 larger transformed weights cost more than they save
SLICE_BYTES = 16 << 20  # V and M of a slice of the batch: half of L3, next to the layer's x, y and U


def winograd_fits(n: int, out: tuple[int, int], kernel, strides, dilations, groups: int, cin: int) -> bool:
    tiles = n * -(-out[0] // 2) * -(-out[1] // 2)
    return (tuple(kernel) == (3, 3) and tuple(strides) == (1, 1) and tuple(dilations) == (1, 1)
            and groups == 1 and cin >= 8 and tiles >= MIN_TILES)


def winograd_temp_bytes(n: int, out: tuple[int, int], cin: int, cout: int) -> int:
    return slice_images(n, out, cin, cout) * _image_bytes(out, cin, cout)


def slice_images(n: int, out: tuple[int, int], cin: int, cout: int) -> int:
    """Images per slice: the most that divide the batch and fit SLICE_BYTES, at least one."""
    fit = max(1, SLICE_BYTES // _image_bytes(out, cin, cout))
    return max(d for d in range(1, min(n, fit) + 1) if n % d == 0)


def _image_bytes(out: tuple[int, int], cin: int, cout: int) -> int:
    return 16 * -(-out[0] // 2) * -(-out[1] // 2) * (cin + cout) * 4


def transformed_weights(w: np.ndarray) -> np.ndarray:
    """[cout, cin, 3, 3] -> U [16, cin, cout], U[xi] = (G g G^T) at position xi."""
    u = np.einsum("ik,ockl,jl->ijco", G, w.astype(np.float64), G)
    return np.ascontiguousarray(u.reshape(16, w.shape[1], w.shape[0]), np.float32)


def _input_transform(t: Fn, d: list[list[ir.Value]]) -> list[ir.Value]:
    """B^T d B for a 4x4 patch of channel vectors, row-major."""
    b = t.b

    def bt(x: list[ir.Value]) -> list[ir.Value]:
        return [b.fsub(x[0], x[2]), b.fadd(x[1], x[2]), b.fsub(x[2], x[1]), b.fsub(x[1], x[3])]

    rows = [bt([d[i][j] for i in range(4)]) for j in range(4)]   # rows[j][i] = (B^T d)[i][j]
    return [v for i in range(4) for v in bt([rows[j][i] for j in range(4)])]


def _output_transform(t: Fn, m: list[ir.Value]) -> list[list[ir.Value]]:
    """A^T m A for a 4x4 block of channel vectors (row-major) -> 2x2."""
    b = t.b

    def at(x: list[ir.Value]) -> list[ir.Value]:
        return [b.fadd(b.fadd(x[0], x[1]), x[2]), b.fsub(b.fsub(x[1], x[2]), x[3])]

    cols = [at([m[4 * i + j] for i in range(4)]) for j in range(4)]   # cols[j][r] = (A^T m)[r][j]
    return [at([cols[j][r] for j in range(4)]) for r in range(2)]


def emit_winograd(ctx: Context, f: Fn, node: Node, size: tuple[int, int], pads: tuple[int, int],
                  out: tuple[int, int]) -> None:
    x, wv, y = node.inputs[0], node.inputs[1], node.outputs[0]
    n, cin, cout = x.type.shape[0], x.type.shape[-1], y.type.shape[-1]
    (H, W), (PH, PW), (OH, OW) = size, pads, out
    TH, TW = -(-OH // 2), -(-OW // 2)
    images = slice_images(n, out, cin, cout)
    count, tiles = n // images, images * TH * TW   # tiles of one slice: what the buffer holds
    data = ctx.derived(f"{wv.name}.winograd",
                       lambda: np.concatenate([pack_b(ui, NR) for ui in transformed_weights(wv.const)]))
    psize = data.size // 16
    v_off, m_off = 0, 16 * tiles * cin

    def tile_at(t: Fn, row: ir.Value, tw: ir.Value) -> ir.Value:
        """Index in the slice's buffer of tile tw of image row `row` (counted over the batch)."""
        return t.madd((t.b.urem(row, t.i64(images * TH)) if count > 1 else row, TW), (tw, 1))

    def xi_of(t: Fn, i: ir.Value) -> ir.Value:
        return t.b.urem(i, t.i64(16)) if count > 1 else i

    def input_row(t: Fn, row: ir.Value) -> None:
        b, vt = t.b, t.vec()
        img, th = b.udiv(row, t.i64(TH)), b.urem(row, t.i64(TH))
        xp = t.gep(ctx.ptr(t, x), b.mul(img, t.i64(H * W * cin)))
        vp = t.gep(ctx.temp(t, node), v_off)
        with t.loop(TW) as tw:
            tile = tile_at(t, row, tw)

            def block(ch0: ir.Value, active: int | None) -> None:
                d = [[None] * 4 for _ in range(4)]
                for i in range(4):
                    ih = t.madd((th, 2), (i - PH, 1))
                    for j in range(4):
                        iw = t.madd((tw, 2), (j - PW, 1))
                        ok = b.and_(in_range(t, ih, 0, H), in_range(t, iw, 0, W))
                        at = t.madd((b.select(ok, ih, t.i64(0)), W * cin), (b.select(ok, iw, t.i64(0)), cin),
                                    (ch0, 1))
                        d[i][j] = b.select(ok, t.load_vec(t.gep(xp, at), vt, active), t.const_f(0.0, vt))
                for xi, v in enumerate(_input_transform(t, d)):
                    t.store_vec(v, t.gep(vp, t.madd((tile, cin), (ch0, 1), (xi * tiles * cin, 1))), active)

            vector_blocks(t, cin, block)

    epi = Epilogue.of(node, 2)

    def output_row(t: Fn, row: ir.Value) -> None:
        b, vt = t.b, t.vec()
        img, th = b.udiv(row, t.i64(TH)), b.urem(row, t.i64(TH))
        mp, yp = t.gep(ctx.temp(t, node), m_off), ctx.ptr(t, y)
        operands = {k: t.gep(ctx.ptr(t, v), epi.operands[k][0])
                    for k, v in enumerate(node.inputs[2:]) if scalar_const(v) is None}
        with t.loop(TW) as tw:
            tile = tile_at(t, row, tw)

            def block(ch0: ir.Value, active: int | None) -> None:
                m = [t.load_vec(t.gep(mp, t.madd((tile, cout), (ch0, 1), (xi * tiles * cout, 1))), vt, active)
                     for xi in range(16)]
                for r, values in enumerate(_output_transform(t, m)):
                    oh = t.madd((th, 2), (r, 1))
                    for s, value in enumerate(values):
                        ow = t.madd((tw, 2), (s, 1))
                        inside = b.and_(b.icmp_signed("<", oh, t.i64(OH)), b.icmp_signed("<", ow, t.i64(OW)))
                        with t.if_then(inside):
                            pixel = t.madd((img, OH * OW), (oh, OW), (ow, 1))
                            value = fused_epilogue(t, node, epi, operands, pixel, ch0, value, active)
                            t.store_vec(value, t.gep(yp, t.madd((pixel, cout), (ch0, 1))), active)

            vector_blocks(t, cout, block)

    plain = replace(epi, plain=True)
    with ctx.slices(f, count):   # each step's tasks go image by image, the batch slowest
        ctx.parallel(f, "winograd_in", n * TH, 16 * n * TH * TW * cin * 2, input_row)
        gemm(ctx, f, plain, tiles, cout, cin, 16 * count,
             lambda t, i: t.gep(t.gep(ctx.temp(t, node), v_off), t.b.mul(xi_of(t, i), t.i64(tiles * cin))), cin,
             lambda t, i: t.gep(ctx.weight(t, f"{wv.name}.winograd", data), t.b.mul(xi_of(t, i), t.i64(psize))),
             True,
             lambda t, i: t.gep(t.gep(ctx.temp(t, node), m_off), t.b.mul(xi_of(t, i), t.i64(tiles * cout))), cout,
             lambda t, i: t.i64(0), lambda t, i: t.i64(0))
        ctx.parallel(f, "winograd_out", n * TH, 16 * n * TH * TW * cout * 2, output_row)
