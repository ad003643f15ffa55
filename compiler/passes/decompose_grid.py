"""AffineGrid as a MatMul of the build-time base grid by each transposed theta; GridSample as
Gathers at indices computed from the grid at run time."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_grid import base_grid, grid_sample_mode
from .decompose_resize import _Nodes


def affine_grid(graph: Graph, node: Node) -> Patch | None:
    if node.op != "AffineGrid":
        return None
    c = _Nodes(graph, node)
    theta_t = c.add("Transpose", node.inputs[:1], perm=(0, 2, 1))
    grid = c.add("MatMul", [graph.const("base_grid", base_grid(node).astype(np.float32)), theta_t])
    c.add("Reshape", [grid], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def grid_sample(graph: Graph, node: Node) -> Patch | None:
    """Each output position reads its 1 (nearest), 2^k (linear) or 4^k (cubic) neighbours: a
    Gather from the input laid out as [N * spatial, C] at flat indices computed from the grid as
    onnx's reference does (denormalise; round half to even for nearest; clamp or reflect
    coordinates out of range; zeros padding reads 0 outside, the others the clamped or reflected
    pixel)."""
    if node.op != "GridSample":
        return None
    mode, padding = grid_sample_mode(node)
    x, grid = node.inputs
    spatial, rank = x.type.shape[2:], x.type.rank
    c = _Nodes(graph, node)
    # the grid's last axis lists coordinates innermost input axis first: (x, y[, z])
    coords = [_coordinate(c, node, grid, len(spatial) - 1 - a, size, mode, padding) for a, size in enumerate(spatial)]
    last = (0,) + tuple(range(2, rank)) + (1,)
    table = c.add("Reshape", [c.add("Transpose", [x], perm=last)],
                  shape=(int(np.prod(x.type.shape[:1] + spatial)), x.type.shape[1]))
    out = None
    for tap in _neighbours(c, coords, mode):
        pixels = _pixels(c, node, table, [index for index, _ in tap], padding, _borders(node))
        if tap[0][1] is not None:
            weight = tap[0][1]
            for _, w in tap[1:]:
                weight = c.add("Mul", [weight, w])
            pixels = c.add("Mul", [pixels, _column(c, node, weight)])
        out = pixels if out is None else c.add("Add", [out, pixels])
    c.add("Transpose", [out], node.outputs[0], perm=(0, rank - 1) + tuple(range(1, rank - 1)))
    return Patch(c.nodes)


def _f(c: _Nodes, v: float) -> Value:
    return c.graph.const("grid_const", np.float32(v))


def _floor(c: _Nodes, v: Value) -> Value:
    t = c.add("Cast", [c.add("Cast", [v], to="i64")], to="f32")
    return c.add("Where", [c.add("Less", [v, t]), c.add("Sub", [t, _f(c, 1)]), t])


def _round_half_even(c: _Nodes, v: Value) -> Value:
    r = _floor(c, c.add("Add", [v, _f(c, 0.5)]))
    tie = c.add("Equal", [c.add("Sub", [r, v]), _f(c, 0.5)])
    odd = c.add("Not", [c.add("Equal", [r, c.add("Mul", [_floor(c, c.add("Mul", [r, _f(c, 0.5)])), _f(c, 2)])])])
    return c.add("Where", [c.add("And", [tie, odd]), c.add("Sub", [r, _f(c, 1)]), r])


def _borders(node: Node) -> list[tuple[float, float]]:
    """Per spatial axis, the coordinates reflection mirrors at: pixel centres or outer edges."""
    align = node.attr("align_corners", 0)
    return [(0.0, size - 1.0) if align else (-0.5, size - 0.5) for size in node.inputs[0].type.shape[2:]]


def _coordinate(c: _Nodes, node: Node, grid: Value, i: int, size: int, mode: str, padding: str) -> Value:
    """The source coordinate along one input axis of every output position ([N, out spatial...])."""
    g = c.add("Gather", [grid, c.graph.const("grid_axis", np.int64(i))], axis=grid.type.rank - 1)
    g = c.add("Add", [g, _f(c, 1)])
    if node.attr("align_corners", 0):
        v = c.add("Mul", [g, _f(c, (size - 1) / 2)])
    else:
        v = c.add("Mul", [c.add("Sub", [c.add("Mul", [g, _f(c, size)]), _f(c, 1)]), _f(c, 0.5)])
    if mode == "nearest":
        v = _round_half_even(c, v)
    low, high = _borders(node)[node.inputs[0].type.rank - 3 - i]
    if padding == "border":  # only past the borders: cubic taps see a coordinate in [-0.5, 0) as it is
        outside = c.add("Or", [c.add("Less", [v, _f(c, low)]), c.add("Greater", [v, _f(c, high)])])
        v = c.add("Where", [outside, c.add("Min", [c.add("Max", [v, _f(c, 0)]), _f(c, size - 1)]), v])
    elif padding == "reflection":
        v = _reflect(c, v, low, high)
    return v


def _reflect(c: _Nodes, v: Value, low: float, high: float) -> Value:
    """Reflect by the nearer border until inside [low, high]."""
    below, above = c.add("Less", [v, _f(c, low)]), c.add("Greater", [v, _f(c, high)])
    past = c.add("Where", [below, c.add("Sub", [_f(c, low), v]), c.add("Sub", [v, _f(c, high)])])
    span = high - low
    k = _floor(c, c.add("Mul", [past, _f(c, 1 / span)]))
    r = c.add("Sub", [past, c.add("Mul", [k, _f(c, span)])])
    even = c.add("Equal", [k, c.add("Mul", [_floor(c, c.add("Mul", [k, _f(c, 0.5)])), _f(c, 2)])])
    from_low, from_high = c.add("Add", [_f(c, low), r]), c.add("Sub", [_f(c, high), r])
    reflected = c.add("Where", [c.add("Xor", [below, even]), from_high, from_low])
    return c.add("Where", [c.add("Or", [below, above]), reflected, v])


def _neighbours(c: _Nodes, coords: list[Value], mode: str) -> list[list[tuple[Value, Value | None]]]:
    """Per tap, (index, weight) along each spatial axis; weights None for nearest."""
    if mode == "nearest":
        return [[(v, None) for v in coords]]
    taps: list[list[tuple[Value, Value | None]]] = [[]]
    for v in coords:
        first = _floor(c, v)
        frac = c.add("Sub", [v, first])
        weights = _cubic_weights(c, frac) if mode == "cubic" else [c.add("Sub", [_f(c, 1), frac]), frac]
        start = -1 if mode == "cubic" else 0
        along = [(c.add("Add", [first, _f(c, start + k)]), weight) for k, weight in enumerate(weights)]
        taps = [tap + [p] for tap in taps for p in along]
    return taps


def _cubic_weights(c: _Nodes, t: Value) -> list[Value]:
    """Keys' cubic convolution (a = -0.75) at distances 1 + t, t, 1 - t and 2 - t."""
    a = -0.75
    one = _f(c, 1)

    def poly(coefficients: tuple[float, ...], x: Value) -> Value:
        acc = _f(c, coefficients[0])
        for k in coefficients[1:]:
            acc = c.add("Add", [c.add("Mul", [acc, x]), _f(c, k)])
        return acc

    near, far = (a + 2, -(a + 3), 0.0, 1.0), (a, -5 * a, 8 * a, -4 * a)
    s = c.add("Sub", [one, t])
    return [poly(far, c.add("Add", [t, one])), poly(near, t), poly(near, s), poly(far, c.add("Add", [s, one]))]


def _pixels(c: _Nodes, node: Node, table: Value, indices: list[Value], padding: str,
            borders: list[tuple[float, float]]) -> Value:
    """[N, out spatial..., C]: the pixels at `indices`, 0 outside the input for zeros padding."""
    shape = node.inputs[0].type.shape
    spatial = shape[2:]
    if padding == "reflection":
        indices = [_reflect(c, v, low, high) for v, (low, high) in zip(indices, borders)]
    strides = np.cumprod((1,) + spatial[:0:-1])[::-1]
    clamped = [c.add("Min", [c.add("Max", [v, _f(c, 0)]), _f(c, size - 1)]) for v, size in zip(indices, spatial)]
    flat = None
    for v, stride in zip(clamped, strides):
        term = c.add("Mul", [v, _f(c, float(stride))])
        flat = term if flat is None else c.add("Add", [flat, term])
    batch = (np.arange(shape[0]) * int(np.prod(spatial))).reshape((-1,) + (1,) * len(spatial))
    flat = c.add("Add", [c.add("Cast", [flat], to="i64"), c.graph.const("grid_batch", batch)])
    pixels = c.add("Gather", [table, flat], axis=0)
    if padding != "zeros":
        return pixels
    inside = None
    for v, kept in zip(indices, clamped):
        same = c.add("Equal", [v, kept])
        inside = same if inside is None else c.add("And", [inside, same])
    return c.add("Where", [_column(c, node, inside), pixels, c.graph.const("zero", np.float32(0))])


def _column(c: _Nodes, node: Node, v: Value) -> Value:
    """[N, out spatial...] as [N, out spatial..., 1], to broadcast over channels."""
    y = node.outputs[0].type.shape
    return c.add("Reshape", [v], shape=y[:1] + y[2:] + (1,))
