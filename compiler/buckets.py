"""Shape buckets: several static variants of one model compiled into one artifact, one per entry of
model(shapes = [{"ids": [1, 16]}, {"ids": [1, 64]}]) or, as the special case of the leading batch dim,
model(batch_sizes = [1, 8, 32]). The launcher runs the smallest bucket an input fits (runtime/buckets.c):
it pads an input's leading dim with zero rows, and its other dims only when the input has a pad value
(model(pad_values)), and cuts every output dim that follows a padded input dim back."""
from __future__ import annotations

from math import prod
from typing import Mapping, Sequence

from .errors import CompileError
from .ir.graph import Graph

SHAPES_PLATFORMS = frozenset({"cpu"})  # where the general shapes form compiles (every platform takes batch_sizes)

Shapes = Mapping[str, Sequence[int]]


def check_platform(platform: str, attr: str) -> None:
    if platform not in SHAPES_PLATFORMS:
        raise CompileError(f"{attr}: the {platform} platform compiles only batch_sizes buckets ({attr} "
                           f"compiles for {', '.join(sorted(SHAPES_PLATFORMS))})")


def check_sizes(sizes: Sequence[int]) -> tuple[int, ...]:
    """The batch sizes, smallest first; a one-line error for a list the launcher could not choose from."""
    problem = size_problem(list(sizes))
    if problem:
        raise CompileError(f"batch_sizes {list(sizes)}: {problem}")
    return tuple(sorted(sizes))


def size_problem(sizes: list) -> str:
    """Why `sizes` is no valid batch_sizes list, or ""."""
    if not sizes:
        return "needs at least one batch size"
    bad = [s for s in sizes if not isinstance(s, int) or isinstance(s, bool) or s < 1]
    if bad:
        return f"{bad[0]!r} is not a positive int"
    twice = sorted({s for s in sizes if sizes.count(s) > 1})
    if twice:
        return f"{twice[0]} is given twice"
    return ""


def shapes_problem(entries: Sequence[Shapes]) -> str:
    """Why `entries` is no valid shapes list (model(shapes)), or ""."""
    if not entries:
        return "needs at least one entry"
    seen = [_key(e) for e in entries]
    for i, key in enumerate(seen):
        if key in seen[:i]:
            return f"entries {seen.index(key)} and {i} give the same shapes"
    return ""


def sorted_shapes(entries: Sequence[Shapes]) -> list[dict[str, tuple[int, ...]]]:
    """The entries smallest first: by the element count of all their inputs, ties in the order given."""
    normal = [{name: tuple(shape) for name, shape in e.items()} for e in entries]
    return sorted(normal, key=lambda e: sum(prod(s) for s in e.values()))


def _key(entry: Shapes) -> tuple:
    return tuple(sorted((name, tuple(shape)) for name, shape in entry.items()))


def shapes_at(input_shapes: Shapes, batch: int) -> dict[str, tuple[int, ...]]:
    """input_shapes with each shape's leading dim set to this bucket's batch."""
    return {name: (batch, *shape[1:]) for name, shape in input_shapes.items()}


def check_inputs(graph: Graph, batch: int) -> None:
    for v in graph.inputs:
        shape = v.type.shape
        if not shape or shape[0] != batch:
            raise CompileError(f"batch_sizes: input {v.name} of {graph.source} has shape {list(shape)} at batch "
                               f"{batch}: its leading dim is fixed to another value, so it has no batch dim "
                               "to bucket")


def check_pad_values(pad_values: Mapping[str, float], graph: Graph) -> None:
    names = [v.name for v in graph.inputs]
    unknown = [n for n in pad_values if n not in names]
    if unknown:
        raise CompileError(f"pad_values names {unknown[0]}, which is not an input of {graph.source} "
                           f"(inputs: {', '.join(names)})")


def follows(inputs: Sequence[Sequence[Sequence[int]]], outputs: Sequence[Sequence[Sequence[int]]],
            paddable: Sequence[Sequence[bool]], output_names: Sequence[str], source: str) -> list[list]:
    """For every output dim, the [input, dim] it follows (takes the value of in every bucket), or None.
    `inputs[b][i]`/`outputs[b][o]` are bucket b's shapes; `paddable[i][d]` says whether the launcher may
    pad input i's dim d. A dim that varies between buckets must follow a paddable input dim when any is."""
    result = []
    for o, name in enumerate(output_names):
        dims = []
        for d in range(len(outputs[0][o])):
            values = [out[o][d] for out in outputs]
            dims.append(_followed(inputs, paddable, values, d == 0) if d == 0 or len(set(values)) > 1
                        or len(outputs) == 1 else None)
            if dims[-1] is None and len(set(values)) > 1 and any(any(p) for p in paddable):
                raise CompileError(f"output {name} of {source}: dim {d} is {values} in the buckets and follows "
                                   "no input dim, so a padded input could not be cut back from it")
        result.append(dims)
    return result


def check_rows_cut(follows_: Sequence[Sequence], output_names: Sequence[str], platform: str, source: str) -> None:
    """The accelerator launchers cut a padded batch back from every output's leading dim: each must follow
    an input's leading dim, and no other dim may follow a padded one."""
    for name, dims in zip(output_names, follows_):
        if not dims or dims[0] is None or dims[0][1] != 0 or any(f is not None for f in dims[1:]):
            raise CompileError(f"batch_sizes on {platform}: output {name} of {source} does not lead with the "
                               "batch dim alone, so a padded batch could not be cut back from it (the cpu "
                               "platform can)")


def _followed(inputs, paddable, values: list[int], leading: bool) -> list[int] | None:
    """The first paddable input dim whose value equals `values` in every bucket; the leading (batch) dim
    is only ever followed by the inputs' leading dim."""
    for i, shape in enumerate(inputs[0]):
        for d in range(len(shape)):
            if paddable[i][d] and (d == 0) == leading and [b[i][d] for b in inputs] == values:
                return [i, d]
    return None


def entry(batch: int, inputs: list[dict], outputs: list[dict], section: dict) -> dict:
    """A bucket's record in the manifest's `buckets` list: its shapes and its backend's section."""
    return {"batch": batch, "inputs": inputs, "outputs": outputs, **section}
