"""MaxPool's Indices, MaxUnpool, ReverseSequence and bool ReduceMax/ReduceMin in ops every
backend has.

Indices: the input flattened per channel with a -inf slot appended is gathered into one row per
kernel tap ([N, C, taps, positions], padding reads the -inf slot); ArgMax over the taps picks the
first maximum in scan order, as onnxruntime's strict `>` does, and a build-time table turns
(tap, position) into the storage-order index, offset by the channel's start.

MaxUnpool: ScatterFlat, zeros of the output's size with the input written at the flat indices.

ReverseSequence: batch and time flattened into rows, then one Gather of rows whose indices are
computed from sequence_lens (folded at build time when it is a constant).

bool ReduceMax/ReduceMin (Or/And): the f32 reduction of the input cast to 0/1, cast back."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_nn import window
from ..ir.ops_unpool import pool_taps, reverse_axes, unpool
from .chain import Chain


def _i64(values) -> np.ndarray:
    return np.asarray(values, np.int64)


def maxpool_indices(graph: Graph, node: Node) -> Patch | None:
    if node.op != "MaxPool" or len(node.outputs) < 2:
        return None
    x, (y, indices) = node.inputs[0], node.outputs[:2]
    w, (n, ch) = window(node), x.type.shape[:2]
    taps, stored = pool_taps(w, node.attr("storage_order", 0))
    size = int(np.prod(w.size))
    c = Chain(graph, node)
    c.nodes.append(Node("MaxPool", node.name, [x], [y], {k: v for k, v in node.attrs.items() if k != "storage_order"}))
    pick = _first_max(c, x, taps, size)
    local = c.add("Gather", [graph.const("pool_index", stored.ravel()), pick], axis=0)
    start = graph.const("channel_start", (np.arange(n * ch, dtype=np.int64) * size).reshape(n, ch, 1))
    c.add("Reshape", [c.add("Add", [local, start])], indices, shape=indices.type.shape)
    return Patch(c.nodes)


def _first_max(c: Chain, x: Value, taps: np.ndarray, size: int) -> Value:
    """[N, C, positions]: tap * positions + position of each window's first maximum."""
    (n, ch), (kernel, positions) = x.type.shape[:2], taps.shape
    flat = c.add("Reshape", [x], shape=(n, ch, size))
    padded = c.add("Concat", [flat, c.graph.const("pool_padding", np.full((n, ch, 1), -np.inf, np.float32))], axis=2)
    patches = c.add("Gather", [padded, c.graph.const("pool_taps", taps.ravel())], axis=2)
    tap = c.add("ArgMax", [c.add("Reshape", [patches], shape=(n, ch, kernel, positions))], axis=2, keepdims=0)
    return c.add("Add", [c.add("Mul", [tap, c.graph.const("positions", _i64(positions))]),
                         c.graph.const("position", np.arange(positions, dtype=np.int64))])


def max_unpool(graph: Graph, node: Node) -> Patch | None:
    if node.op != "MaxUnpool":
        return None
    c = Chain(graph, node)
    flat = [c.add("Reshape", [v], shape=(v.type.numel,)) for v in node.inputs[:2]]
    placed = c.add("ScatterFlat", flat, size=int(np.prod(unpool(node).out)))
    c.add("Reshape", [placed], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def reverse_sequence(graph: Graph, node: Node) -> Patch | None:
    """Row (b, t) reads row (b, lens[b] - 1 - t) for t < lens[b], else itself."""
    if node.op != "ReverseSequence":
        return None
    x, lens = node.inputs[:2]
    batch_axis, _ = reverse_axes(node)
    batch, steps = x.type.shape[batch_axis], x.type.shape[1 - batch_axis]
    c = Chain(graph, node)
    # [batch, 1] against [1, steps] in the (batch, time) order, [1, batch] against [steps, 1] otherwise
    lead = (batch, 1) if batch_axis == 0 else (1, batch)
    times = graph.const("time", np.arange(steps, dtype=np.int64).reshape((1, steps) if batch_axis == 0 else (steps, 1)))
    # clamped to [0, steps] so that no row index leaves the tensor, whatever the input holds
    lens = c.add("Min", [c.add("Max", [lens, graph.const("zero", _i64(0))]), graph.const("steps", _i64(steps))])
    lens = c.add("Reshape", [lens], shape=lead)
    flipped = c.add("Sub", [c.add("Sub", [lens, graph.const("one", _i64(1))]), times])
    source = c.add("Where", [c.add("Less", [times, lens]), flipped, times])
    batch_stride, time_stride = (steps, 1) if batch_axis == 0 else (1, batch)
    row_start = graph.const("row_start", np.arange(batch, dtype=np.int64).reshape(lead) * batch_stride)
    rows = c.add("Add", [c.add("Mul", [source, graph.const("time_stride", _i64(time_stride))]), row_start])
    flat = c.add("Reshape", [x], shape=(batch * steps,) + x.type.shape[2:])
    gathered = c.add("Gather", [flat, c.add("Reshape", [rows], shape=(batch * steps,))], axis=0)
    c.add("Reshape", [gathered], node.outputs[0], shape=x.type.shape)
    return Patch(c.nodes)


def bool_extremum(graph: Graph, node: Node) -> Patch | None:
    if node.op not in ("ReduceMax", "ReduceMin") or node.inputs[0].type.dtype != "bool":
        return None
    c = Chain(graph, node)
    as_f32 = c.add("Cast", node.inputs[:1], to="f32")
    c.nodes.append(Node(node.op, node.name, [as_f32] + node.inputs[1:], [graph.value(f"{node.name}.f32")],
                        dict(node.attrs)))
    c.add("Cast", [c.nodes[-1].outputs[0]], node.outputs[0], to="bool")
    return Patch(c.nodes)


RULES = [maxpool_indices, max_unpool, reverse_sequence, bool_extremum]
