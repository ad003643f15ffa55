"""Shape/dtype inference with constant folding, node by node in topological order."""
from __future__ import annotations

import numpy as np

from ..errors import CompileError
from ..ir.graph import DTYPES, Graph, Node
from ..ir.ops import OPS

# Folding a node whose result is larger than this would bloat the weights with broadcast copies.
MAX_FOLDED_ELEMENTS = 1 << 24


def infer(graph: Graph) -> Graph:
    used = {v for n in graph.nodes for v in n.inputs if v is not None} | set(graph.outputs)
    kept: list[Node] = []
    for node in graph.nodes:
        if node.op not in OPS:
            raise CompileError(f"unsupported operator {node.op} at node {node.name} ({graph.source})")
        for v in node.inputs:
            if v is not None and v.type is None:
                raise CompileError(f"node {node.name} reads {v.name} before it is computed")
        opdef = OPS[node.op]
        types = opdef.infer(node)
        for extra in node.outputs[len(types):]:
            if extra in used:
                raise CompileError(f"{node.op} node {node.name}: output {extra.name} is not supported")
        node.outputs = node.outputs[:len(types)]
        for v, t in zip(node.outputs, types):
            v.type = t
        if all(v.type.numel == 0 for v in node.outputs):
            _fold_empty(node)
        elif opdef.evaluate and _foldable(node, opdef.from_types):
            _fold(node)
        else:
            kept.append(node)
    graph.nodes = kept
    return graph


def _foldable(node: Node, from_types: bool) -> bool:
    if any(v.type.numel > MAX_FOLDED_ELEMENTS for v in node.outputs):
        return False
    return from_types or all(v is None or v.const is not None for v in node.inputs)


def _fold(node: Node) -> None:
    args = [v.const if v is not None else None for v in node.inputs]
    try:
        results = OPS[node.op].evaluate(node, args)
    except (ValueError, IndexError, TypeError, FloatingPointError) as e:
        raise CompileError(f"{node.op} node {node.name}: cannot evaluate constant inputs: {e}") \
            from None
    for v, r in zip(node.outputs, results):
        r = np.asarray(r)
        if r.shape != v.type.shape:
            r = r.reshape(v.type.shape)
        v.set_const(r.astype(np.float32) if v.type.dtype == "f32" else r)
        v.producer = None


def _fold_empty(node: Node) -> None:
    """Outputs with no elements are known whatever the inputs are."""
    for v in node.outputs:
        v.set_const(np.zeros(v.type.shape, DTYPES[v.type.dtype]))
        v.producer = None
