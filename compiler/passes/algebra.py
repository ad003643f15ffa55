"""Constant algebra: canonical operand order, Sub/Div by constants, merging constant Mul/Add
chains, and folding per-channel scales (e.g. BatchNormalization) into Conv/MatMul weights."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from .dce import dce

COMMUTATIVE = {"Add", "Mul", "Max", "Min"}


def _is_float_const(v: Value | None) -> bool:
    return v is not None and v.const is not None and v.const.dtype == np.float32


def _single_use(graph: Graph, v: Value) -> Node | None:
    """The producer of `v` if `v` has exactly one consumer and is not a graph output."""
    if v.producer is None or v in graph.outputs:
        return None
    uses = sum(1 for n in graph.nodes for i in n.inputs if i is v)
    return v.producer if uses == 1 else None


def _exact(node: Node) -> bool:
    """Arithmetic that must round as written (quantization matching onnxruntime's levels)."""
    return bool(node.attr("exact", 0))


def _canonical(graph: Graph, node: Node) -> Patch | None:
    x, c = (node.inputs + [None])[:2]
    if node.op in COMMUTATIVE and x is not None and x.const is not None and c.const is None:
        return Patch([Node(node.op, node.name, [c, x], node.outputs)])
    if node.op in ("Sub", "Div") and _is_float_const(c) and x.const is None and not _exact(node):
        inv = -c.const if node.op == "Sub" else (1.0 / c.const).astype(np.float32)
        op = "Add" if node.op == "Sub" else "Mul"
        return Patch([Node(op, node.name, [x, graph.const(f"{c.name}.inv", inv)], node.outputs)])
    return None


def _merge_chain(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("Add", "Mul") or not _is_float_const(node.inputs[1]) or _exact(node):
        return None
    inner = _single_use(graph, node.inputs[0])
    if inner is None or inner.op not in ("Add", "Mul") or not _is_float_const(inner.inputs[1]) or _exact(inner):
        return None
    c1, c2 = inner.inputs[1].const, node.inputs[1].const
    x, y = inner.inputs[0], node.outputs[0]
    if inner.op == node.op:
        both = c1 + c2 if node.op == "Add" else c1 * c2
        return Patch([Node(node.op, node.name, [x, graph.const(f"{y.name}.c", both)], [y])])
    if inner.op == "Add":  # (x + c1) * c2 == x * c2 + c1 * c2: moves the scale next to a producer
        scaled = graph.value(f"{y.name}.scaled", y.type)
        return Patch([Node("Mul", node.name, [x, graph.const(f"{y.name}.s", c2)], [scaled]),
                      Node("Add", node.name, [scaled, graph.const(f"{y.name}.b", c1 * c2)], [y])])
    return None


def _channel_scale(c: np.ndarray, rank: int, axis: int, channels: int) -> np.ndarray | None:
    """`c` as a vector over `axis` of a rank-`rank` output, or None if it varies elsewhere."""
    if c.ndim > rank:
        return None
    full = c.reshape((1,) * (rank - c.ndim) + c.shape)
    if any(d != 1 for i, d in enumerate(full.shape) if i != axis):
        return None
    return np.broadcast_to(full.reshape(-1), (channels,)).astype(np.float32)


def _scale_into_weights(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Mul" or not _is_float_const(node.inputs[1]) or _exact(node):
        return None
    prod = _single_use(graph, node.inputs[0])
    if prod is None or prod.op not in ("Conv", "MatMul") or prod.inputs[1].const is None:
        return None
    y, w = node.outputs[0], prod.inputs[1].const
    if prod.op == "Conv":
        s = _channel_scale(node.inputs[1].const, y.type.rank, 1, w.shape[0])
        w = None if s is None else w * s.reshape((-1,) + (1,) * (w.ndim - 1))
    else:
        s = _channel_scale(node.inputs[1].const, y.type.rank, y.type.rank - 1, w.shape[-1])
        w = None if s is None or w.ndim != 2 else w * s
    if w is None:
        return None
    scaled = graph.const(f"{prod.inputs[1].name}.scaled", w.astype(np.float32, copy=False))
    return Patch([Node(prod.op, prod.name, [prod.inputs[0], scaled], [y], dict(prod.attrs))])


def algebra(graph: Graph) -> Graph:
    for rule in (_canonical, _merge_chain, _scale_into_weights):
        while graph.rewrite(rule):
            dce(graph)
    return graph
