"""Shape buckets (model(batch_sizes = [1, 8, 32])): several static variants of one model, one per
leading batch dim, compiled into one artifact. The launcher runs the smallest bucket an input fits,
zero-padding the batch up to it and cutting the outputs back (runtime/buckets.c), so every input and
output must lead with the batch dim."""
from __future__ import annotations

from typing import Sequence

from .errors import CompileError
from .ir.graph import Graph

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


def shapes_at(input_shapes: dict[str, tuple[int, ...]], batch: int) -> dict[str, tuple[int, ...]]:
    """input_shapes with each shape's leading dim set to this bucket's batch."""
    return {name: (batch, *shape[1:]) for name, shape in input_shapes.items()}


def check_inputs(graph: Graph, batch: int) -> None:
    for v in graph.inputs:
        shape = v.type.shape
        if not shape or shape[0] != batch:
            raise CompileError(f"batch_sizes: input {v.name} of {graph.source} has shape {list(shape)} at batch "
                               f"{batch}: its leading dim is fixed to another value, so it has no batch dim "
                               "to bucket")


def check_outputs(graph: Graph, batch: int, names: Sequence[str]) -> None:
    for v, name in zip(graph.outputs, names):
        shape = v.type.shape
        if not shape or shape[0] != batch:
            raise CompileError(f"batch_sizes: output {name} of {graph.source} has shape {list(shape)} at batch "
                               f"{batch}: it does not lead with the batch dim, so a padded batch could not "
                               "be cut back from it")


def entry(batch: int, inputs: list[dict], outputs: list[dict], section: dict) -> dict:
    """A bucket's record in the manifest's `buckets` list: its shapes and its backend's section."""
    return {"batch": batch, "inputs": inputs, "outputs": outputs, **section}

