"""RoiAlign and DeformConv as ops every backend already lowers. Both read each sample point's four
neighbours with Gathers at flat indices computed at run time (the rois and offsets are inputs),
then weigh them bilinearly with the reference's own arithmetic (floor, clamp, four weights), so
this matches onnx's loop as a kernel would, at the same four reads per sample, without a kernel
family per backend. RoiAlign then
averages or maxes each bin's samples; DeformConv multiplies its sampled columns by the weights
(one MatMul per conv group)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from ..ir.ops_roi import DeformPlan, RoiPlan, deform_plan, roi_plan
from .chain import Chain


@dataclass(frozen=True)
class Tap:
    """One neighbour along one axis: its index (float, within the axis), its bilinear weight, and
    where given, a mask that is false where the unclamped index fell outside the axis (read as 0)."""
    index: Value
    weight: Value
    inside: Value | None = None


def _f(c: Chain, v: float) -> Value:
    return c.graph.const("roi_const", np.float32(v))


def bilinear(c: Chain, table: Value, base: Value, ys: list[Tap], xs: list[Tap], width: int,
             shape: tuple[int, ...]) -> list[Value]:
    """The weighted neighbours, each [*shape, C]: `table` ([rows, C]) read at row
    base + y * width + x, for every pair of taps along y and x (broadcasting to `shape`)."""
    terms = []
    for y in ys:
        for x in xs:
            flat = c.add("Add", [c.add("Mul", [y.index, _f(c, width)]), x.index])
            flat = c.add("Add", [c.add("Cast", [flat], to="i64"), base])
            pixels = c.add("Gather", [table, flat], axis=0)
            weight = c.add("Mul", [y.weight, x.weight])
            term = c.add("Mul", [pixels, c.add("Reshape", [weight], shape=shape + (1,))])
            inside = [t.inside for t in (y, x) if t.inside is not None]
            if inside:
                mask = inside[0] if len(inside) == 1 else c.add("And", inside)
                term = c.add("Where", [c.add("Reshape", [mask], shape=shape + (1,)), term, _f(c, 0)])
            terms.append(term)
    return terms


def _pixel_table(c: Chain, x: Value, groups: int = 1) -> Value:
    """[N, C, H, W] as [N * groups * H * W, C / groups]: a row per pixel of each channel group."""
    n, channels, h, w = x.type.shape
    split = c.add("Reshape", [x], shape=(n, groups, channels // groups, h, w))
    rows = c.add("Transpose", [split], perm=(0, 1, 3, 4, 2))
    return c.add("Reshape", [rows], shape=(n * groups * h * w, channels // groups))


# -- RoiAlign -----------------------------------------------------------------------------------
def roi_align(graph: Graph, node: Node) -> Patch | None:
    if node.op != "RoiAlign":
        return None
    plan = roi_plan(node)
    x, rois, batch = node.inputs
    _, _, h, w = x.type.shape
    count = rois.type.shape[0]
    c = Chain(graph, node)
    ys = _roi_taps(c, rois, 1, h, plan.out[0], plan.samples[0], plan)
    xs = _roi_taps(c, rois, 0, w, plan.out[1], plan.samples[1], plan)
    along_y, along_x = plan.out[0] * plan.samples[0], plan.out[1] * plan.samples[1]
    ys = [Tap(c.add("Reshape", [t.index], shape=(count, along_y, 1)),
              c.add("Reshape", [t.weight], shape=(count, along_y, 1))) for t in ys]
    xs = [Tap(c.add("Reshape", [t.index], shape=(count, 1, along_x)),
              c.add("Reshape", [t.weight], shape=(count, 1, along_x))) for t in xs]
    base = c.add("Mul", [c.add("Cast", [batch], to="i64"), graph.const("roi_plane", np.int64(h * w))])
    base = c.add("Reshape", [base], shape=(count, 1, 1))
    terms = bilinear(c, _pixel_table(c, x), base, ys, xs, w, (count, along_y, along_x))
    combine, reduce = ("Add", "ReduceMean") if plan.mode == "avg" else ("Max", "ReduceMax")
    acc = terms[0]
    for t in terms[1:]:
        acc = c.add(combine, [acc, t])
    bins = c.add("Reshape", [acc], shape=(count, plan.out[0], plan.samples[0], plan.out[1], plan.samples[1],
                                          x.type.shape[1]))
    pooled = c.add(reduce, [bins], axes_norm=(2, 4), keepdims=0)
    c.add("Transpose", [pooled], node.outputs[0], perm=(0, 3, 1, 2))
    return Patch(c.nodes)


def _column(c: Chain, rois: Value, k: int) -> Value:
    """[R, 1]: coordinate k (x1, y1, x2, y2) of every region."""
    return c.add("Gather", [rois, c.graph.const("roi_column", np.array([k], np.int64))], axis=1)


def _roi_taps(c: Chain, rois: Value, axis: int, size: int, bins: int, samples: int, plan: RoiPlan) -> list[Tap]:
    """The two neighbours of every sample point along one axis ([R, bins * samples]), as onnx's
    reference: points past [-1, size] weigh nothing, others clamp into the axis."""
    shift = _f(c, 0.5 if plan.half_pixel else 0.0)
    start, end = (c.add("Sub", [c.add("Mul", [_column(c, rois, k), _f(c, plan.scale)]), shift])
                  for k in (axis, axis + 2))
    extent = c.add("Sub", [end, start])
    if not plan.half_pixel:
        extent = c.add("Max", [extent, _f(c, 1.0)])
    bin_size = c.add("Mul", [extent, _f(c, 1.0 / bins)])
    steps = np.array([b + (s + 0.5) / samples for b in range(bins) for s in range(samples)], np.float32)
    v = c.add("Add", [start, c.add("Mul", [bin_size, c.graph.const("roi_steps", steps[None, :])])])
    inside = c.add("And", [c.add("GreaterOrEqual", [v, _f(c, -1.0)]), c.add("LessOrEqual", [v, _f(c, size)])])
    v = c.add("Max", [v, _f(c, 0.0)])
    low = c.add("Min", [c.add("Floor", [v]), _f(c, size - 1)])
    high = c.add("Min", [c.add("Add", [low, _f(c, 1.0)]), _f(c, size - 1)])
    frac = c.add("Sub", [c.add("Min", [v, _f(c, size - 1)]), low])
    keep = c.add("Cast", [inside], to="f32")
    return [Tap(low, c.add("Mul", [c.add("Sub", [_f(c, 1.0), frac]), keep])), Tap(high, c.add("Mul", [frac, keep]))]


# -- DeformConv -----------------------------------------------------------------------------------
def deform_conv(graph: Graph, node: Node) -> Patch | None:
    """Each input channel sampled at every kernel tap's offset position (zeros outside the image,
    as onnx's reference samples with GridSample), times the mask, then a MatMul per conv group."""
    if node.op != "DeformConv":
        return None
    plan = deform_plan(node)
    x, w, offset = node.inputs[:3]
    bias, mask = (node.inputs[i] if i < len(node.inputs) else None for i in (3, 4))
    n, channels, h, width = x.type.shape
    k, groups = plan.kernel[0] * plan.kernel[1], plan.offset_group
    shape = (n, groups, k) + plan.out
    c = Chain(graph, node)
    pairs = c.add("Reshape", [offset], shape=(n, groups, k, 2) + plan.out)
    ys, xs = (_deform_taps(c, pairs, plan, axis, size, shape) for axis, size in ((0, h), (1, width)))
    base = (np.arange(n * groups, dtype=np.int64) * h * width).reshape(n, groups, 1, 1, 1)
    terms = bilinear(c, _pixel_table(c, x, groups), graph.const("deform_base", base), ys, xs, width, shape)
    sampled = terms[0]
    for t in terms[1:]:
        sampled = c.add("Add", [sampled, t])
    if mask is not None:
        sampled = c.add("Mul", [sampled, c.add("Reshape", [mask], shape=shape + (1,))])
    columns = c.add("Transpose", [sampled], perm=(0, 1, 5, 2, 3, 4))
    out_channels, spatial = w.type.shape[0], plan.out[0] * plan.out[1]
    columns = c.add("Reshape", [columns], shape=(n, plan.group, channels // plan.group * k, spatial))
    weights = c.add("Reshape", [w], shape=(plan.group, out_channels // plan.group, channels // plan.group * k))
    y = c.add("MatMul", [weights, columns])
    if bias is None:
        c.add("Reshape", [y], node.outputs[0], shape=node.outputs[0].type.shape)
        return Patch(c.nodes)
    y = c.add("Reshape", [y], shape=node.outputs[0].type.shape)
    c.add("Add", [y, c.add("Reshape", [bias], shape=(1, out_channels, 1, 1))], node.outputs[0])
    return Patch(c.nodes)


def _deform_taps(c: Chain, pairs: Value, plan: DeformPlan, axis: int, size: int,
                 shape: tuple[int, ...]) -> list[Tap]:
    """Along one axis, the two neighbours of every tap's position ([N, groups, K, out H, out W]):
    the output position's window tap plus its offset; a neighbour outside the image reads 0."""
    taps = np.arange(plan.kernel[axis]) * plan.dilations[axis]
    starts = np.arange(plan.out[axis]) * plan.strides[axis] - plan.pads[axis]
    grid = taps[:, None] + starts[None, :]  # [kernel taps, out positions] along this axis
    grid = grid[:, None, :, None] if axis == 0 else grid[None, :, None, :]
    grid = np.broadcast_to(grid, plan.kernel + plan.out).reshape((1, 1, -1) + plan.out).astype(np.float32)
    moved = c.add("Gather", [pairs, c.graph.const("deform_axis", np.int64(axis))], axis=3)
    v = c.add("Add", [moved, c.graph.const("deform_grid", grid)])
    low = c.add("Floor", [v])
    frac = c.add("Sub", [v, low])
    high = c.add("Add", [low, _f(c, 1.0)])
    return [_inside(c, low, c.add("Sub", [_f(c, 1.0), frac]), size), _inside(c, high, frac, size)]


def _inside(c: Chain, index: Value, weight: Value, size: int) -> Tap:
    clamped = c.add("Min", [c.add("Max", [index, _f(c, 0.0)]), _f(c, size - 1)])
    return Tap(clamped, weight, c.add("Equal", [index, clamped]))


RULES = [roi_align, deform_conv]
