"""Layout choice: convolutions and pooling run channels-last (NHWC), which suits GEMM-based
conv and channel-vectorised depthwise/pool kernels; the inserted transposes are then sunk
through elementwise ops and reductions and cancelled pairwise."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, TensorType, Value
from ..ir.ops_elementwise import ELEMENTWISE
from ..ir.ops_shape import perm_of
from .dce import dce
from .infer import infer

WINDOWED = {"Conv", "MaxPool", "AveragePool"}


def _transpose(graph: Graph, name: str, x: Value, perm: tuple[int, ...], out: Value | None = None
               ) -> Node:
    shape = tuple(x.type.shape[p] for p in perm)
    out = out or graph.value(f"{x.name}.t", TensorType(x.type.dtype, shape))
    return Node("Transpose", name, [x], [out], {"perm": perm})


def _to_nhwc(graph: Graph, node: Node) -> Patch | None:
    rank = node.inputs[0].type.rank
    if node.op not in WINDOWED or node.attr("layout", "NCHW") != "NCHW" or rank not in (3, 4):
        return None
    to_last = (0,) + tuple(range(2, rank)) + (1,)
    to_first = (0, rank - 1) + tuple(range(1, rank - 1))
    t_in = _transpose(graph, node.name, node.inputs[0], to_last)
    y = node.outputs[0]
    y_nhwc = graph.value(f"{y.name}.nhwc")
    op = Node(node.op, node.name, [t_in.outputs[0]] + node.inputs[1:], [y_nhwc],
              dict(node.attrs, layout="NHWC"))
    y_nhwc.type = TensorType(y.type.dtype, tuple(y.type.shape[p] for p in to_last))
    return Patch([t_in, op, _transpose(graph, node.name, y_nhwc, to_first, y)])


def _perm(node: Node | None) -> tuple[int, ...] | None:
    return perm_of(node) if node is not None and node.op == "Transpose" else None


def _cancel(graph: Graph, node: Node) -> Patch | None:
    p2 = _perm(node)
    p1 = _perm(node.inputs[0].producer) if p2 else None
    if p1 is None:
        return None
    x = node.inputs[0].producer.inputs[0]
    q = tuple(p1[i] for i in p2)
    if q == tuple(range(len(q))):
        return Patch(replace={node.outputs[0]: x})
    return Patch([_transpose(graph, node.name, x, q, node.outputs[0])])


def _unit_moves(graph: Graph, node: Node) -> Patch | None:
    """A transpose that only moves size-1 dimensions keeps the memory order: an alias."""
    p = _perm(node)
    if p is None:
        return None
    shape = node.inputs[0].type.shape
    if [i for i in p if shape[i] != 1] != sorted(i for i in p if shape[i] != 1):
        return None
    y = node.outputs[0]
    return Patch([Node("Reshape", node.name, node.inputs, [y], {"shape": y.type.shape})])


def _sink(graph: Graph, node: Node) -> Patch | None:
    """op(T_p(x), c) == T_p(op(x, T_p^-1(c))) for elementwise ops and keepdims reductions."""
    y = node.outputs[0]
    reduce = node.op in ("ReduceMean", "ReduceSum") and node.attr("keepdims", 1)
    if node.op not in ELEMENTWISE and not reduce:
        return None
    perms = {_perm(v.producer) for v in node.inputs if v.const is None}
    if len(perms) != 1 or None in perms:
        return None
    p = perms.pop()
    if len(p) != y.type.rank:
        return None
    inv = tuple(int(i) for i in np.argsort(p))
    inputs = []
    for v in node.inputs:
        if v.const is None:
            inputs.append(v.producer.inputs[0])
        else:
            c = v.const.reshape((1,) * (len(p) - v.const.ndim) + v.const.shape)
            inputs.append(graph.const(f"{v.name}.t", np.transpose(c, inv)))
    attrs = dict(node.attrs)
    if reduce:
        attrs["axes_norm"] = tuple(sorted(p[a] for a in node.attrs["axes_norm"]))
    inner = graph.value(f"{y.name}.inner")
    return Patch([Node(node.op, node.name, inputs, [inner], attrs),
                  Node("Transpose", node.name, [inner], [y], {"perm": p})])


def layout(graph: Graph) -> Graph:
    graph.rewrite(_to_nhwc)
    changed = True
    while changed:
        changed = False
        for rule in (_cancel, _sink, _unit_moves):
            if graph.rewrite(rule):
                infer(dce(graph))
                changed = True
    return graph
