"""Op definitions: each IR op knows its output types, its build-time value and its cost."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import CompileError
from .graph import Node, TensorType

InferFn = Callable[[Node], list[TensorType]]
EvalFn = Callable[[Node, list[np.ndarray]], list[np.ndarray]]
FlopsFn = Callable[[Node], int]


@dataclass(frozen=True)
class OpDef:
    infer: InferFn
    evaluate: EvalFn | None = None
    flops: FlopsFn | None = None
    # Evaluated from input types alone (Shape): folds even when inputs are not constant.
    from_types: bool = False


OPS: dict[str, OpDef] = {}


def op(name: str, infer: InferFn, evaluate: EvalFn | None = None, flops: FlopsFn | None = None,
       from_types: bool = False) -> None:
    OPS[name] = OpDef(infer, evaluate, flops, from_types)


def fail(node: Node, what: str) -> CompileError:
    return CompileError(f"{node.op} node {node.name}: {what}")


def const_input(node: Node, i: int, what: str) -> np.ndarray | None:
    """The build-time value of optional input i; an error if it is present but not constant."""
    if i >= len(node.inputs) or node.inputs[i] is None:
        return None
    v = node.inputs[i]
    if v.const is None:
        raise fail(node, f"{what} must be known at build time (shapes are static)")
    return v.const


def norm_axis(node: Node, axis: int, rank: int) -> int:
    if not -rank <= axis < max(rank, 1):
        raise fail(node, f"axis {axis} out of range for rank {rank}")
    return axis % rank if rank else 0


def broadcast_shapes(node: Node, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*shapes))
    except ValueError:
        raise fail(node, f"shapes {' and '.join(map(str, shapes))} do not broadcast") from None


def in_type(node: Node, i: int) -> TensorType:
    return node.inputs[i].type
