"""The indexing ops in IR ops every backend has: the flat position each index names is computed
with integer Mul/Add (a negative index first moved up by its dim with a Where); GatherElements and
GatherND read them with one Gather of the flattened data, OneHot compares with a Where, and the
scatters apply their updates one by one with Wheres. Exact for every dtype."""
from __future__ import annotations

import numpy as np

from ..ir.graph import DTYPES, Graph, Node, Patch, Value
from ..ir.ops_index import compress_indices, gather_nd_split, one_hot_depth, scatter_targets, tensor_scatter_axis
from ..ir.registry import norm_axis
from .chain import Chain


def _i64(c: Chain, v: Value) -> Value:
    return v if v.type.dtype == "i64" else c.add("Cast", [v], to="i64")


def _wrapped(c: Chain, idx: Value, size: Value) -> Value:
    """idx, or idx + size where it is negative (both of size's dtype)."""
    negative = c.add("Less", [idx, c.graph.const("zero", np.zeros((), size.const.dtype))])
    return c.add("Where", [negative, c.add("Add", [idx, size]), idx])


def _strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(int(np.prod(shape[i + 1:], dtype=np.int64)) for i in range(len(shape)))


def _element_positions(c: Chain, idx: Value, shape: tuple[int, ...], axis: int) -> Value:
    """The flat position in data of `shape` that each index names along `axis` (GatherElements'
    and ScatterElements' addressing)."""
    strides = _strides(shape)
    wrapped = _wrapped(c, _i64(c, idx), c.graph.const("dim", np.int64(shape[axis])))
    grid = np.indices(idx.type.shape, np.int64)
    others = sum((grid[d] * strides[d] for d in range(len(shape)) if d != axis), np.zeros((), np.int64))
    return c.add("Add", [c.add("Mul", [wrapped, c.graph.const("stride", np.int64(strides[axis]))]),
                         c.graph.const("offsets", np.broadcast_to(others, idx.type.shape))])


def _tuple_rows(c: Chain, idx: Value, indexed: tuple[int, ...], b: int) -> Value:
    """The row each index tuple (idx's last axis) names in data seen as [batch * prod(indexed),
    rest]: its batch's first row plus the sum of its components times their strides."""
    tuples, last = idx.type.shape[:-1], idx.type.rank - 1
    batch = (np.ravel_multi_index(tuple(np.indices(tuples, np.int64)[:b]), tuples[:b]) if b
             else np.zeros(tuples, np.int64))
    idx = _i64(c, idx)
    rows: Value = c.graph.const("batch_rows", batch * int(np.prod(indexed, dtype=np.int64)))
    for j, (size, stride) in enumerate(zip(indexed, _strides(indexed))):
        part = c.add("Gather", [idx, c.graph.const("component", np.int64(j))], axis=last)
        part = _wrapped(c, part, c.graph.const("dim", np.int64(size)))
        rows = c.add("Add", [rows, c.add("Mul", [part, c.graph.const("stride", np.int64(stride))])])
    return rows


def gather_elements(graph: Graph, node: Node) -> Patch | None:
    if node.op != "GatherElements":
        return None
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    c = Chain(graph, node)
    flat = _element_positions(c, idx, data.type.shape, norm_axis(node, node.attr("axis", 0), data.type.rank))
    c.add("Gather", [c.add("Reshape", [data], shape=(data.type.numel,)), flat], y, axis=0)
    return Patch(c.nodes)


def gather_nd(graph: Graph, node: Node) -> Patch | None:
    if node.op != "GatherND":
        return None
    data, idx, y = node.inputs[0], node.inputs[1], node.outputs[0]
    b, k = gather_nd_split(node)
    rows = int(np.prod(data.type.shape[:b + k], dtype=np.int64))
    c = Chain(graph, node)
    flat = _tuple_rows(c, idx, data.type.shape[b:b + k], b)
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
    c, dtype = Chain(graph, node), DTYPES[idx.type.dtype]
    wrapped = _wrapped(c, idx, graph.const("depth", np.array(depth, dtype)))
    spread = c.add("Reshape", [wrapped], shape=idx.type.shape[:axis] + (1,) + idx.type.shape[axis:])
    positions = np.arange(depth, dtype=dtype).reshape([-1 if d == axis else 1 for d in range(rank)])
    hit = c.add("Equal", [spread, graph.const("positions", positions)])
    flat_values = c.add("Reshape", [values], shape=(2,))
    off, on = (c.add("Gather", [flat_values, graph.const("which", np.int64(i))], axis=0) for i in (0, 1))
    c.add("Where", [hit, on, off], y)
    return Patch(c.nodes)


COMBINE = {"add": "Add", "mul": "Mul", "max": "Max", "min": "Min"}


def scatter(graph: Graph, node: Node) -> Patch | None:
    """Data as [rows, width]; the updates [count, width] are applied one by one, in order, each
    as Where(row == its target row, combine(data, update), data): exact for every dtype, with
    onnx's order (the last of duplicate indices wins; reductions accumulate in index order)."""
    if node.op not in ("ScatterElements", "ScatterND"):
        return None
    data, idx, upd = node.inputs[:3]
    count, width = scatter_targets(node)
    rows, c = data.type.numel // width, Chain(graph, node)
    if node.op == "ScatterND":
        targets = _tuple_rows(c, idx, data.type.shape[:idx.type.shape[-1]], 0)
    else:
        targets = _element_positions(c, idx, data.type.shape, norm_axis(node, node.attr("axis", 0), data.type.rank))
    targets = c.add("Reshape", [targets], shape=(count,))
    updates = c.add("Reshape", [upd], shape=(count, width))
    row_ids = graph.const("rows", np.arange(rows, dtype=np.int64).reshape(rows, 1))
    out, combine = c.add("Reshape", [data], shape=(rows, width)), COMBINE.get(node.attr("reduction", "none"))
    for u in range(count):
        hit = c.add("Equal", [c.add("Gather", [targets, graph.const("update", np.int64(u))], axis=0), row_ids])
        value = c.add("Gather", [updates, graph.const("update", np.array([u], np.int64))], axis=0)
        out = c.add("Where", [hit, c.add(combine, [out, value]) if combine else value, out])
    c.add("Reshape", [out], node.outputs[0], shape=data.type.shape)
    return Patch(c.nodes)


def compress(graph: Graph, node: Node) -> Patch | None:
    """A Gather of the positions the build-time condition keeps."""
    if node.op != "Compress":
        return None
    keep, axis = compress_indices(node)
    c, x = Chain(graph, node), node.inputs[0]
    if axis is None:
        x = c.add("Reshape", [x], shape=(x.type.numel,))
    c.add("Gather", [x, graph.const("kept", keep)], node.outputs[0], axis=axis or 0)
    return Patch(c.nodes)


def tensor_scatter(graph: Graph, node: Node) -> Patch | None:
    """A KV-cache write: cache position j of batch b takes update[j - write_indices[b]] (mod the
    cache length when circular) where that lies in the update, by a GatherElements and a Where."""
    if node.op != "TensorScatter":
        return None
    past, upd, y = node.inputs[0], node.inputs[1], node.outputs[0]
    axis, c = tensor_scatter_axis(node), Chain(graph, node)
    batch, length, rank = past.type.shape[0], past.type.shape[axis], past.type.rank
    starts = node.inputs[2] if len(node.inputs) > 2 and node.inputs[2] is not None else \
        graph.const("write_indices", np.zeros(batch, np.int64))
    positions = np.arange(length, dtype=np.int64).reshape([-1 if d == axis else 1 for d in range(rank)])
    first = c.add("Reshape", [_i64(c, starts)], shape=(batch,) + (1,) * (rank - 1))
    source = c.add("Sub", [graph.const("positions", positions), first])
    if node.attr("mode", "linear") == "circular":
        source = c.add("Mod", [source, graph.const("length", np.int64(length))])
    zero = graph.const("zero", np.int64(0))
    hit = c.add("And", [c.add("GreaterOrEqual", [source, zero]),
                        c.add("Less", [source, graph.const("update_length", np.int64(upd.type.shape[axis]))])])
    source = c.add("Expand", [c.add("Where", [hit, source, zero]), graph.const("shape", np.array(past.type.shape))])
    written = c.add("GatherElements", [upd, source], axis=axis)
    c.add("Where", [hit, written, past], y)
    return Patch(c.nodes)


RULES = [tensor_scatter, gather_elements, gather_nd, one_hot, scatter, compress]
