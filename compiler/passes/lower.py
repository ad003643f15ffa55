"""Canonicalisation: rewrite convenience ops into the small set the later passes and backends know."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, TensorType, Value
from ..ir.ops_shape import slice_params, split_sizes
from ..ir.registry import norm_axis
from .decompose_math import float_mod, int_pow, trig
from .decompose_quant import quant
from .infer import infer
from .decompose import (attention, bool_bitcast, cast_like, group_norm, lrn, mod, normalise, pad, reduction,
                        space_depth, tile, trilu)
from .decompose_dft import RULES as DFT_RULES
from .decompose_index import RULES as INDEX_RULES
from .decompose_linear import RULES as LINEAR_RULES
from .decompose_pool import RULES as POOL_RULES
from .decompose_qint import RULES as QINT_RULES
from .decompose_seq import RULES as SEQ_RULES
from .decompose_conv3d import RULES as CONV3D_RULES
from .decompose_unpool import RULES as UNPOOL_RULES
from .decompose_grid import affine_grid, grid_sample
from .decompose_resize import resize
from .decompose_rotary import rotary_embedding
from .decompose_roi import RULES as ROI_RULES
from .decompose_linalg import RULES as LINALG_RULES

ALIASES = {"Flatten", "Squeeze", "Unsqueeze", "Identity", "Reshape"}


def reshape(graph: Graph, name: str, x: Value, shape: tuple[int, ...]) -> tuple[Node, Value]:
    out = graph.value(f"{x.name}.reshaped", TensorType(x.type.dtype, tuple(shape)))
    if x.const is not None:
        return None, graph.const(f"{x.name}.reshaped", x.const.reshape(shape))
    return Node("Reshape", name, [x], [out], {"shape": tuple(shape)}), out


def _node(graph: Graph, op: str, name: str, inputs: list[Value | None], hint: str, **attrs) -> Node:
    return Node(op, name, inputs, [graph.value(hint)], attrs)


def _alias(graph: Graph, node: Node) -> Patch | None:
    same_cast = node.op == "Cast" and node.inputs[0].type.dtype == node.attrs["to"]
    if node.op not in ALIASES and not same_cast and not (node.op == "Concat" and len(node.inputs) == 1):
        return None
    if node.op == "Reshape" and len(node.inputs) == 1:
        return None
    out = node.outputs[0]
    return Patch([Node("Reshape", node.name, [node.inputs[0]], [out], {"shape": out.type.shape})])


def _gemm(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Gemm":
        return None
    a, b = node.inputs[0], node.inputs[1]
    c = node.inputs[2] if len(node.inputs) > 2 else None
    nodes = []
    if node.attr("transA", 0):
        nodes.append(_node(graph, "Transpose", node.name, [a], f"{a.name}.T", perm=(1, 0)))
        a = nodes[-1].outputs[0]
    if node.attr("transB", 0):
        nodes.append(_node(graph, "Transpose", node.name, [b], f"{b.name}.T", perm=(1, 0)))
        b = nodes[-1].outputs[0]
    last = node.outputs[0]
    steps = [("Mul", node.attr("alpha", 1.0))] if node.attr("alpha", 1.0) != 1.0 else []
    if c is not None and node.attr("beta", 1.0) != 0.0:
        if node.attr("beta", 1.0) != 1.0:
            nodes.append(_node(graph, "Mul", node.name, [c, graph.const("beta", np.float32(
                node.attr("beta", 1.0)))], f"{c.name}.scaled"))
            c = nodes[-1].outputs[0]
        steps.append(("Add", c))
    y = a
    for i, (op, arg) in enumerate([("MatMul", b)] + steps):
        arg = arg if isinstance(arg, Value) else graph.const("alpha", np.float32(arg))
        out = last if i == len(steps) else graph.value(f"{last.name}.{op.lower()}")
        nodes.append(Node(op, node.name, [y, arg], [out]))
        y = out
    return Patch(nodes)


def _batch_norm(graph: Graph, node: Node) -> Patch | None:
    if node.op != "BatchNormalization":
        return None
    x, scale, bias, mean, var = node.inputs[:5]
    eps = graph.const("epsilon", np.float32(node.attr("epsilon", 1e-5)))
    shape = (x.type.shape[1],) + (1,) * (x.type.rank - 2)
    n = [_node(graph, "Add", node.name, [var, eps], f"{node.name}.var_eps")]
    n.append(_node(graph, "Sqrt", node.name, [n[-1].outputs[0]], f"{node.name}.std"))
    n.append(_node(graph, "Div", node.name, [scale, n[-1].outputs[0]], f"{node.name}.scale"))
    s = n[-1].outputs[0]
    n.append(_node(graph, "Mul", node.name, [mean, s], f"{node.name}.mean_scaled"))
    n.append(_node(graph, "Sub", node.name, [bias, n[-1].outputs[0]], f"{node.name}.shift"))
    t = n[-1].outputs[0]
    shape_c = graph.const("bn_shape", np.array(shape, np.int64))
    n.append(_node(graph, "Reshape", node.name, [s, shape_c], f"{node.name}.scale_c"))
    n.append(_node(graph, "Reshape", node.name, [t, shape_c], f"{node.name}.shift_c"))
    n.append(_node(graph, "Mul", node.name, [x, n[-2].outputs[0]], f"{node.name}.scaled"))
    n.append(Node("Add", node.name, [n[-1].outputs[0], n[-2].outputs[0]], node.outputs))
    return Patch(n)


def _conv_bias(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Conv" or len(node.inputs) < 3 or node.inputs[2] is None:
        return None
    b = node.inputs[2]
    y = node.outputs[0]
    raw = graph.value(f"{y.name}.nobias")
    conv = Node("Conv", node.name, node.inputs[:2], [raw], dict(node.attrs))
    shape_c = graph.const("bias_shape", np.array((b.type.shape[0],) + (1,) * (y.type.rank - 2)))
    rb = _node(graph, "Reshape", node.name, [b, shape_c], f"{b.name}.c")
    return Patch([conv, rb, Node("Add", node.name, [raw, rb.outputs[0]], [y])])


def _matmul_vectors(graph: Graph, node: Node) -> Patch | None:
    if node.op != "MatMul" or min(v.type.rank for v in node.inputs) > 1:
        return None
    a, b = node.inputs
    nodes = []
    if a.type.rank == 1:
        n, a = reshape(graph, node.name, a, (1,) + a.type.shape)
        nodes += [n] if n else []
    if b.type.rank == 1:
        n, b = reshape(graph, node.name, b, b.type.shape + (1,))
        nodes += [n] if n else []
    y = node.outputs[0]
    full = graph.value(f"{y.name}.2d")
    nodes.append(Node("MatMul", node.name, [a, b], [full]))
    nodes.append(Node("Reshape", node.name, [full], [y], {"shape": y.type.shape}))
    return Patch(nodes)


def _split(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Split":
        return None
    x = node.inputs[0]
    axis = norm_axis(node, node.attr("axis", 0), x.type.rank)
    nodes, start = [], 0
    for out, size in zip(node.outputs, split_sizes(node)):
        args = [graph.const("starts", np.array([start])), graph.const("ends", np.array([start + size])),
                graph.const("axes", np.array([axis]))]
        nodes.append(Node("Slice", node.name, [x] + args, [out]))
        start += size
    return Patch(nodes)


def _normalise_attrs(graph: Graph, node: Node) -> Patch | None:
    """Fold build-time inputs of Slice into attributes so backends read one form."""
    if node.op == "Slice" and len(node.inputs) > 1:
        first, step, length = slice_params(node)
        return Patch([Node("Slice", node.name, node.inputs[:1], node.outputs,
                           {"first": tuple(first), "step": tuple(step), "length": tuple(length)})])
    return None


RULES = [pad, lrn, attention, reduction, cast_like, bool_bitcast, trilu, group_norm, space_depth, tile, float_mod, mod, trig, int_pow,
         quant, resize, affine_grid, grid_sample, _alias, _gemm, _batch_norm, _conv_bias, _matmul_vectors, _split,
         _normalise_attrs, normalise]
# The sequence ops first: their expansions hold ops the others rewrite.
# UNPOOL_RULES before the pools and scatters they emit; CONV3D_RULES after ConvTranspose becomes a Conv.
RULES = (SEQ_RULES + UNPOOL_RULES + POOL_RULES + INDEX_RULES + LINEAR_RULES + CONV3D_RULES + DFT_RULES + QINT_RULES
         + RULES + [rotary_embedding])
# RoiAlign, DeformConv and Det expand into reductions, Transposes and MatMuls the rules above rewrite.
RULES = ROI_RULES + LINALG_RULES + RULES


def lower(graph: Graph) -> Graph:
    for rule in RULES:
        if graph.rewrite(rule):
            infer(graph)
    return graph

