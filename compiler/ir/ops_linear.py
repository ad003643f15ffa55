"""ConvTranspose and Einsum: rewritten into Conv, MatMul and data movement by
passes/decompose_linear.py, so their types live here and their arithmetic in those ops."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Node, TensorType
from .registry import fail, op


@dataclass(frozen=True)
class Deconv:
    """Per spatial dim: stride, dilation, effective kernel size, pads (negative: extend) and output size."""
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    kernels: tuple[int, ...]
    begin: tuple[int, ...]
    end: tuple[int, ...]
    out: tuple[int, ...]


def _pads(auto: str, full: int, size: int, given: tuple[int, int], shape: int | None, stride: int) -> tuple[int, int]:
    """(begin, end) as onnx's reference: SAME_* splits what exceeds output_shape (default size *
    stride), the upper half of an odd total at the end for SAME_UPPER; otherwise the given pads,
    with output_shape moving the end."""
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = full - (shape if shape is not None else size * stride)
        small, big = total // 2, total - total // 2
        return (small, big) if auto == "SAME_UPPER" else (big, small)
    if auto == "VALID":
        given = (0, 0)
    if shape is None:
        return given
    return given[0], full - given[0] - shape


def deconv(node: Node) -> Deconv:
    x, w = node.inputs[0].type, node.inputs[1].type
    nd, g = x.rank - 2, node.attr("group", 1)
    if nd < 1 or w.rank != x.rank or x.shape[1] != w.shape[0] or w.shape[0] % g:
        raise fail(node, f"weights {w} do not fit input {x} with group={g}")
    if node.inputs[1].const is None:
        raise fail(node, "weights must be constant (kiln's Conv, which it becomes, needs them at build time)")
    strides = tuple(node.attr("strides") or (1,) * nd)
    dil = tuple(node.attr("dilations") or (1,) * nd)
    pads = tuple(node.attr("pads") or (0,) * (2 * nd))
    extra = tuple(node.attr("output_padding") or (0,) * nd)
    shape = tuple(node.attr("output_shape") or ())[-nd:] if node.attr("output_shape") else (None,) * nd
    auto = node.attr("auto_pad", "NOTSET")
    if not len(strides) == len(dil) == len(extra) == nd or len(pads) != 2 * nd:
        raise fail(node, f"strides, dilations, output_padding or pads do not fit {nd} spatial dims")
    kernels = tuple((k - 1) * d + 1 for k, d in zip(w.shape[2:], dil))
    full = [s * (n - 1) + e + k for s, n, e, k in zip(strides, x.shape[2:], extra, kernels)]
    split = [_pads(auto, f, n, (pads[i], pads[i + nd]), shape[i], s)
             for i, (f, n, s) in enumerate(zip(full, x.shape[2:], strides))]
    out = tuple(f - b - e for f, (b, e) in zip(full, split))
    if min(out) < 1:
        raise fail(node, f"pads {list(pads)} leave an empty output")
    return Deconv(strides, dil, kernels, tuple(b for b, _ in split), tuple(e for _, e in split), out)


def _conv_transpose(node: Node) -> list[TensorType]:
    x, w = node.inputs[0].type, node.inputs[1].type
    channels = w.shape[1] * node.attr("group", 1)
    bias = node.inputs[2] if len(node.inputs) > 2 else None
    if bias is not None and bias.type.shape != (channels,):
        raise fail(node, f"bias {bias.type} does not match {channels} output channels")
    return [TensorType("f32", (x.shape[0], channels) + deconv(node).out)]


op("ConvTranspose", _conv_transpose)


@dataclass(frozen=True)
class Equation:
    """An Einsum equation with its ellipses spelled out: one label per dim of each input, the
    output's labels, and every label's size."""
    inputs: tuple[str, ...]
    output: str
    sizes: dict[str, int]


LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _spell_out(node: Node, term: str, rank: int | None, dots: str) -> str:
    if "..." not in term:
        return term
    if rank is not None:
        dots = dots[len(dots) - (rank - len(term) + 3):] if rank - len(term) + 3 > 0 else ""
    return term.replace("...", dots)


def equation(node: Node) -> Equation:
    """Labels are letters; '...' stands for the same trailing-aligned dims in every term (onnx:
    broadcast), written as labels no term uses; without '->' the output is the labels used once,
    sorted, after the ellipsis dims."""
    text = node.attr("equation", "").replace(" ", "")
    lhs, arrow, rhs = text.partition("->")
    terms = lhs.split(",")
    shapes = [v.type.shape for v in node.inputs]
    if len(terms) != len(shapes) or any(ch not in LETTERS + ".,->" for ch in text):
        raise fail(node, f"equation {text!r} does not fit {len(shapes)} inputs")
    free = [ch for ch in LETTERS if ch not in text]
    widest = max((len(s) - len(t) + 3 for t, s in zip(terms, shapes) if "..." in t), default=0)
    dots = "".join(free[:widest])
    inputs = tuple(_spell_out(node, t, len(s), dots) for t, s in zip(terms, shapes))
    if not arrow:
        once = sorted((ch for ch in set(lhs) if ch in LETTERS and lhs.count(ch) == 1), key=LETTERS.index)
        rhs = "..." + "".join(once) if "..." in lhs else "".join(once)
    output = _spell_out(node, rhs, None, dots)
    sizes: dict[str, int] = {}
    for term, shape in zip(inputs, shapes):
        if len(term) != len(shape):
            raise fail(node, f"term {term!r} of equation {text!r} does not fit a rank-{len(shape)} input")
        for ch, d in zip(term, shape):
            if sizes.setdefault(ch, d) != d and 1 not in (sizes[ch], d):
                raise fail(node, f"label {ch!r} of equation {text!r} has sizes {sizes[ch]} and {d}")
            sizes[ch] = max(sizes[ch], d)
    if any(ch not in sizes for ch in output) or len(set(output)) != len(output):
        raise fail(node, f"output {rhs!r} of equation {text!r} names a label twice or one no input has")
    return Equation(inputs, output, sizes)


def _einsum(node: Node) -> list[TensorType]:
    if any(v.type.dtype != "f32" for v in node.inputs):
        raise fail(node, "only f32 inputs are supported")
    eq = equation(node)
    return [TensorType("f32", tuple(eq.sizes[ch] for ch in eq.output))]


def _eval_einsum(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    eq = equation(node)
    return [np.einsum(",".join(eq.inputs) + "->" + eq.output, *xs)]


op("Einsum", _einsum, _eval_einsum)
