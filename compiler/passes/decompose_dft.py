"""STFT as frames gathered at build-time positions, times the window, then a onesided DFT; DFT as a MatMul with a build-time cos/sin matrix: the signal axis moved next to the trailing
real/imaginary dim, both flattened into one, times [samples * parts, bins * 2]. Samples past
dft_length are gathered away first, so a NaN there does not reach the output."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch
from ..ir.ops_dft import dft_matrix, dft_shape, frame_indices, stft_shape
from .chain import Chain


def dft(graph: Graph, node: Node) -> Patch | None:
    if node.op != "DFT":
        return None
    x, y = node.inputs[0], node.outputs[0]
    s, rank, c = dft_shape(node), x.type.rank, Chain(graph, node)
    if s.kept < s.size:
        x = c.add("Gather", [x, graph.const("dft_kept", np.arange(s.kept, dtype=np.int64))], axis=s.axis)
    perm = tuple(d for d in range(rank - 1) if d != s.axis) + (s.axis, rank - 1)
    moved = c.add("Transpose", [x], perm=perm)
    outer = tuple(node.inputs[0].type.shape[d] for d in perm[:-2])
    flat = c.add("Reshape", [moved], shape=outer + (s.kept * node.inputs[0].type.shape[-1],))
    spectrum = c.add("MatMul", [flat, graph.const("dft_matrix", dft_matrix(node))])
    back = c.add("Reshape", [spectrum], shape=outer + (s.bins, s.parts))
    c.add("Transpose", [back], y, perm=tuple(int(i) for i in np.argsort(perm)))
    return Patch(c.nodes)


def stft(graph: Graph, node: Node) -> Patch | None:
    if node.op != "STFT":
        return None
    s, c = stft_shape(node), Chain(graph, node)
    frames = c.add("Gather", [node.inputs[0], graph.const("stft_frames", frame_indices(s))], axis=1)
    window = node.inputs[2] if len(node.inputs) > 2 else None
    if window is not None:
        frames = c.add("Mul", [frames, c.add("Reshape", [window], shape=(s.length, 1))])
    c.add("DFT", [frames], node.outputs[0], axis=2, onesided=node.attr("onesided", 1))
    return Patch(c.nodes)


RULES = [stft, dft]
