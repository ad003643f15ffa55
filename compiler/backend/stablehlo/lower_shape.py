"""Data-movement ops as StableHLO; shape-carrying inputs were read at build time."""
from __future__ import annotations

from ...errors import CompileError
from ...ir.graph import Node, TensorType
from ...ir.ops_shape import perm_of, slice_params, split_sizes
from ...ir.registry import norm_axis
from .emitter import Emitter, Ref, i64_array, tensor_type
from .lower_elementwise import Lowering


def _reshape(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [em.reshape(xs[0], node.outputs[0].type.shape)]


def _transpose(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [em.op("transpose", [xs[0]], node.outputs[0].type, f"permutation = {i64_array(perm_of(node))}")]


def _concat(em: Emitter, node: Node, xs: list) -> list[Ref]:
    axis = norm_axis(node, node.attrs["axis"], xs[0].type.rank)
    return [em.op("concatenate", xs, node.outputs[0].type, f"dimension = {axis} : i64")]


def slice_range(em: Emitter, x: Ref, first: list[int], step: list[int], length: list[int]) -> Ref:
    """x[first::step][:length] per dimension; negative steps read reversed."""
    shape = x.type.shape
    reversed_dims = [i for i, s in enumerate(step) if s < 0]
    if reversed_dims:
        x = em.op("reverse", [x], x.type, f"dimensions = {i64_array(reversed_dims)}")
        first = [d - 1 - f if s < 0 else f for d, f, s in zip(shape, first, step)]
        step = [abs(s) for s in step]
    limit = [f + s * (n - 1) + 1 if n else f for f, s, n in zip(first, step, length)]
    out = TensorType(x.type.dtype, tuple(length))
    attrs = (f"start_indices = {i64_array(first)}, limit_indices = {i64_array(limit)}, "
             f"strides = {i64_array(step)}")
    return em.op("slice", [x], out, attrs)


def _slice(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [slice_range(em, xs[0], *slice_params(node))]


def _split(em: Emitter, node: Node, xs: list) -> list[Ref]:
    x = xs[0]
    axis = norm_axis(node, node.attr("axis", 0), x.type.rank)
    parts, start = [], 0
    for size in split_sizes(node):
        first = [start if i == axis else 0 for i in range(x.type.rank)]
        length = [size if i == axis else d for i, d in enumerate(x.type.shape)]
        parts.append(slice_range(em, x, first, [1] * x.type.rank, length))
        start += size
    return parts


def _gather(em: Emitter, node: Node, xs: list) -> list[Ref]:
    data, idx = xs[0], em.convert(xs[1], "i64")
    axis = norm_axis(node, node.attr("axis", 0), data.type.rank)
    size = em.full(data.type.shape[axis], "i64", idx.type.shape)
    negative = em.compare(idx, em.full(0, "i64", idx.type.shape), "LT")
    idx = em.op("select", [negative, em.binary("add", idx, size), idx], idx.type)
    out = node.outputs[0].type
    nidx = idx.type.rank
    offset_dims = list(range(axis)) + list(range(axis + nidx, out.rank))
    slice_sizes = [1 if i == axis else d for i, d in enumerate(data.type.shape)]
    dims = (f"#stablehlo.gather<offset_dims = [{', '.join(map(str, offset_dims))}], "
            f"collapsed_slice_dims = [{axis}], start_index_map = [{axis}], index_vector_dim = {nidx}>")
    attrs = f"dimension_numbers = {dims}, slice_sizes = {i64_array(slice_sizes)}, indices_are_sorted = false"
    return [em.op("gather", [data, idx], out, attrs)]


def _scatter_flat(em: Emitter, node: Node, xs: list) -> list[Ref]:
    """Positions outside the output write nothing (XLA skips out-of-bounds updates)."""
    values, positions = xs
    y = node.outputs[0].type
    t = tensor_type(TensorType(y.dtype, ()))
    old, new = em.fresh("a"), em.fresh("b")
    region = f'{{\n  ^bb0({old}: {t}, {new}: {t}):\n    "stablehlo.return"({new}) : ({t}) -> ()\n  }}'
    dims = ("#stablehlo.scatter<inserted_window_dims = [0], scatter_dims_to_operand_dims = [0], "
            "index_vector_dim = 1>")
    attrs = f"scatter_dimension_numbers = {dims}, indices_are_sorted = false, unique_indices = false"
    where = em.reshape(positions, positions.type.shape + (1,))
    return [em.op("scatter", [em.full(0, y.dtype, y.shape), where, values], y, attrs, region)]


def _expand(em: Emitter, node: Node, xs: list) -> list[Ref]:
    return [em.broadcast(xs[0], node.outputs[0].type.shape)]


def _folded(em: Emitter, node: Node, xs: list) -> list[Ref]:
    raise CompileError(f"{node.op} node {node.name}: its input must be known at build time")


LOWERINGS: dict[str, Lowering] = {
    "Reshape": _reshape, "Flatten": _reshape, "Squeeze": _reshape, "Unsqueeze": _reshape,
    "Transpose": _transpose, "Concat": _concat, "Slice": _slice, "Split": _split, "Gather": _gather,
    "ScatterFlat": _scatter_flat,
    "Expand": _expand, "ConstantOfShape": _folded,
}
