"""GatherElements, GatherND and OneHot in IR ops every backend has: the flat position each output
element reads is computed with integer Mul/Add (a negative index first moved up by its dim with a
Where), and one Gather along axis 0 of the flattened data reads them. Exact for every dtype."""
from __future__ import annotations

import numpy as np

from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_index import gather_nd_split, one_hot_depth
from ..ir.registry import norm_axis
from .decompose import _Chain


def _i64(c: _Chain, v: Value) -> Value:
    return v if v.type.dtype == "i64" else c.add("Cast", [v], to="i64")


def _wrapped(c: _Chain, idx: Value, size: Value) -> Value:
    """idx, or idx + size where it is negative (both of size's dtype)."""
    negative = c.add("Less", [idx, c.graph.const("zero", np.zeros((), size.const.dtype))])
    return c.add("Where", [negative, c.add("Add", [idx, size]), idx])


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


def gather_elements(graph: Graph, node: Node) -> Patch | None:
    if node.op != "GatherElements":
        return None
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis = norm_axis(node, node.attr("axis", 0), data.type.rank)
    c, strides = _Chain(graph, node), _strides(data.type.shape)
    wrapped = _wrapped(c, _i64(c, idx), graph.const("dim", np.int64(data.type.shape[axis])))
    grid = np.indices(idx.type.shape, np.int64)
    others = sum((grid[d] * strides[d] for d in range(data.type.rank) if d != axis), np.zeros((), np.int64))
    flat = c.add("Add", [c.add("Mul", [wrapped, graph.const("stride", np.int64(strides[axis]))]),
                         graph.const("offsets", np.broadcast_to(others, idx.type.shape))])
    c.add("Gather", [c.add("Reshape", [data], shape=(data.type.numel,)), flat], y, axis=0)
    return Patch(c.nodes)


def gather_nd(graph: Graph, node: Node) -> Patch | None:
    """Data as [batch * indexed positions, rest]; each index tuple's flat row is its batch's
    first row plus the sum of its components times their strides."""
    if node.op != "GatherND":
        return None
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    b, k = gather_nd_split(node)
    indexed, tuples, last = data.type.shape[b:b + k], idx.type.shape[:-1], idx.type.rank - 1
    rows = int(np.prod(data.type.shape[:b + k], dtype=np.int64))
    batch = (np.ravel_multi_index(tuple(np.indices(tuples, np.int64)[:b]), tuples[:b]) if b
             else np.zeros(tuples, np.int64))
    c = _Chain(graph, node)
    idx = _i64(c, idx)
    flat: Value = graph.const("batch_rows", batch * int(np.prod(indexed, dtype=np.int64)))
    for j, (size, stride) in enumerate(zip(indexed, _strides(indexed))):
        part = c.add("Gather", [idx, graph.const("component", np.int64(j))], axis=last)
        part = _wrapped(c, part, graph.const("dim", np.int64(size)))
        flat = c.add("Add", [flat, c.add("Mul", [part, graph.const("stride", np.int64(stride))])])
    table = c.add("Reshape", [data], shape=(rows, data.type.numel // rows))
    c.add("Reshape", [c.add("Gather", [table, flat], axis=0)], y, shape=y.type.shape)
    return Patch(c.nodes)


def one_hot(graph: Graph, node: Node) -> Patch | None:
    """Where(index == position along the new axis, on, off), compared in the indices' dtype:
    indices out of range, and (as onnx's reference) float ones that are not whole, match nothing."""
    if node.op != "OneHot":
        return None
    idx, values, y = node.inputs[0], node.inputs[2], node.outputs[0]
    depth, rank = one_hot_depth(node), y.type.rank
    axis = norm_axis(node, node.attr("axis", -1), rank)
    c, dtype = _Chain(graph, node), DTYPES[idx.type.dtype]
    wrapped = _wrapped(c, idx, graph.const("depth", np.array(depth, dtype)))
    spread = c.add("Reshape", [wrapped], shape=idx.type.shape[:axis] + (1,) + idx.type.shape[axis:])
    positions = np.arange(depth, dtype=dtype).reshape([-1 if d == axis else 1 for d in range(rank)])
    hit = c.add("Equal", [spread, graph.const("positions", positions)])
    flat_values = c.add("Reshape", [values], shape=(2,))
    off, on = (c.add("Gather", [flat_values, graph.const("which", np.int64(i))], axis=0) for i in (0, 1))
    c.add("Where", [hit, on, off], y)
    return Patch(c.nodes)


RULES = [gather_elements, gather_nd, one_hot]
