"""RotaryEmbedding as Gathers along the feature axis, products and a Concat: each head's rotated
features split into x1, x2 (halves, or even/odd features when interleaved), then
(cos x1 - sin x2, sin x1 + cos x2) put back in the same places, the rest passed through."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_rotary import RotaryShape, rotary_shape
from .chain import Chain


def rotary_embedding(graph: Graph, node: Node) -> Patch | None:
    if node.op != "RotaryEmbedding":
        return None
    s, c = rotary_shape(node), Chain(graph, node)
    x = node.inputs[0]
    if not s.heads_first:
        x = c.add("Reshape", [x], shape=(s.batch, s.seq, s.heads, s.head))
    cos, sin = (_angles(c, node, i, s) for i in (1, 2))
    first, second = _rotated_features(s, bool(node.attr("interleaved", 0)))
    x1, x2 = (c.add("Gather", [x, graph.const("rotary_features", f)], axis=3) for f in (first, second))
    real = c.add("Sub", [c.add("Mul", [cos, x1]), c.add("Mul", [sin, x2])])
    imag = c.add("Add", [c.add("Mul", [sin, x1]), c.add("Mul", [cos, x2])])
    parts = [real, imag]
    if s.rotary < s.head:
        parts.append(c.add("Gather", [x, graph.const("kept_features", np.arange(s.rotary, s.head))], axis=3))
    y = c.add("Concat", parts, axis=3)
    # Concat put each feature at the index listed for it: gather them back in order.
    order = np.argsort(np.concatenate([first, second, np.arange(s.rotary, s.head)]))
    if not np.array_equal(order, np.arange(s.head)):
        y = c.add("Gather", [y, graph.const("feature_order", order)], axis=3)
    c.add("Reshape", [y], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def _rotated_features(s: RotaryShape, interleaved: bool) -> tuple[np.ndarray, np.ndarray]:
    """The indices of x1 and x2 in each head."""
    half = s.rotary // 2
    if interleaved:
        return np.arange(0, s.rotary, 2), np.arange(1, s.rotary, 2)
    return np.arange(half), np.arange(half, s.rotary)


def _angles(c: Chain, node: Node, i: int, s: RotaryShape) -> Value:
    """cos_cache or sin_cache as [batch, seq, half], looked up by position_ids when given, shaped
    to broadcast over the heads axis of the (4-D) input."""
    cache = node.inputs[i]
    positions = node.inputs[3] if len(node.inputs) > 3 else None
    if positions is not None:
        cache = c.add("Gather", [cache, positions], axis=0)
    shape = (s.batch, 1, s.seq, s.rotary // 2) if s.heads_first else (s.batch, s.seq, 1, s.rotary // 2)
    return c.add("Reshape", [cache], shape=shape)
