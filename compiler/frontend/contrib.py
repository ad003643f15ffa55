"""onnxruntime's com.microsoft contrib ops that its transformer optimizer fuses into exported models,
built at import from IR ops every backend lowers (semantics as onnxruntime's contrib op docs)."""
from __future__ import annotations

from typing import Callable

from ..errors import CompileError
from ..ir.graph import Value
from .composites import _Build, _rms_norm
from .contrib_attention import ATTENTION_MAPPERS
from .contrib_quant import QUANT_MAPPERS

DOMAIN = "com.microsoft"


def _refuse(b: _Build, op: str, what: str) -> None:
    raise CompileError(f"{DOMAIN}.{op} node {b.name}: {what} is not supported")


def _sum(b: _Build, *terms: Value | None) -> Value:
    present = [t for t in terms if t is not None]
    total = present[0]
    for t in present[1:]:
        total = b("Add", total, t)
    return total


def _single(build: Callable[[_Build, list, dict], Value]) -> Callable:
    def mapper(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        b = _Build(im, name, outs[0])
        im.emit("Identity", name, [build(b, ins + [None] * 4, attrs)], outs[:1])
    return mapper


def _quick_gelu(b: _Build, ins: list, attrs: dict) -> Value:
    x = ins[0]
    return b("Mul", x, b("Sigmoid", b("Mul", x, b.const(attrs.get("alpha", 1.702)))))


def _fused_matmul(b: _Build, ins: list, attrs: dict) -> Value:
    """alpha * op(A) @ op(B), op transposing the last two dims."""
    if attrs.get("transBatchA", 0) or attrs.get("transBatchB", 0):
        _refuse(b, "FusedMatMul", "transBatchA/transBatchB")
    left = "...ji" if attrs.get("transA", 0) else "...ij"
    right = "...kj" if attrs.get("transB", 0) else "...jk"
    product = b("Einsum", ins[0], ins[1], equation=f"{left},{right}->...ik")
    alpha = attrs.get("alpha", 1.0)
    return product if alpha == 1.0 else b("Mul", product, b.const(alpha))


def _skip_sum(im, name: str, ins: list, out: str, bias: Value | None) -> Value:
    b = _Build(im, name, out)
    return b("Identity", _sum(b, ins[0], ins[1], bias), last=True)


def _skip_layer_norm(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """input + skip (+ bias) -> LayerNormalization over the last axis; outputs y, mean, inv_std_var,
    and the sum itself."""
    from .onnx import _layer_norm  # the ai.onnx mapper also computes the optional mean/inv_std_var
    ins, outs = ins + [None] * 3, outs + [""] * 3
    s = _skip_sum(im, name, ins, outs[3] or f"{outs[0]}.skipsum", ins[4])
    _layer_norm(im, name, [s, ins[2], ins[3]], outs[:3], {"axis": -1, "epsilon": attrs.get("epsilon", 1e-12)})


def _skip_simplified_norm(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """input + skip (+ bias) -> RMS normalisation over the last axis; outputs y, mean, inv_std_var
    and the sum (mean and inv_std_var are refused when read)."""
    ins, outs = ins + [None] * 2, outs + [""] * 3
    _refuse_stats(im, name, "SkipSimplifiedLayerNormalization", outs[1:3])
    s = _skip_sum(im, name, ins, outs[3] or f"{outs[0]}.skipsum", ins[3])
    b = _Build(im, name, outs[0])
    im.emit("Identity", name, [_rms_norm(b, [s, ins[2]], {"axis": -1, "epsilon": attrs.get("epsilon", 1e-12)})],
            outs[:1])


def _simplified_norm(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    _refuse_stats(im, name, "SimplifiedLayerNormalization", outs[1:2])
    b = _Build(im, name, outs[0])
    im.emit("Identity", name, [_rms_norm(b, ins[:2], attrs)], outs[:1])


def _refuse_stats(im, name: str, op: str, stats: list[str]) -> None:
    if any(o and o in im.used for o in stats):
        raise CompileError(f"{DOMAIN}.{op} node {name}: reading its mean/inv_std_var outputs is not supported")


CONTRIB_MAPPERS: dict[str, Callable] = {
    "Gelu": _single(lambda b, ins, a: b("Gelu", ins[0])),
    "FastGelu": _single(lambda b, ins, a: b("Gelu", _sum(b, ins[0], ins[1]), approximate="tanh")),
    "BiasGelu": _single(lambda b, ins, a: b("Gelu", _sum(b, ins[0], ins[1]))),
    "QuickGelu": _single(_quick_gelu),
    "BiasAdd": _single(lambda b, ins, a: _sum(b, ins[0], ins[1], ins[2])),
    "FusedMatMul": _single(_fused_matmul),
    "SkipLayerNormalization": _skip_layer_norm,
    "SkipSimplifiedLayerNormalization": _skip_simplified_norm,
    "SimplifiedLayerNormalization": _simplified_norm,
    **ATTENTION_MAPPERS,
    **QUANT_MAPPERS,
}
# onnxruntime registers this one in the ai.onnx domain although onnx has no such op.
ONNX_DOMAIN_EXTRAS: dict[str, Callable] = {"SimplifiedLayerNormalization": _simplified_norm}
