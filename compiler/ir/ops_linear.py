"""ConvTranspose (and Einsum): rewritten into Conv, MatMul and data movement by
passes/decompose_linear.py, so their types live here and their arithmetic in those ops."""
from __future__ import annotations

from dataclasses import dataclass

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
    if nd > 2:
        raise fail(node, f"{nd}-D is not supported (kiln's Conv, which it becomes, is 1-D and 2-D)")
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
