"""The ordered pass list from imported graph to backend-ready graph."""
from __future__ import annotations

from typing import Callable, Sequence

from ..ir.graph import Graph
from .algebra import algebra
from .dce import dce
from .fuse import fuse
from .infer import infer
from .layout import layout
from .lower import lower
from .outputs import materialize_outputs

Pass = Callable[[Graph], Graph]

PIPELINE: list[tuple[str, Pass]] = [
    ("infer", infer),            # shapes, dtypes, constant folding (Shape, ConstantOfShape, ...)
    ("lower", lower),            # Gemm, BatchNormalization, bias, Split, Reduce*, Pad, LRN, views -> core ops
    ("fold", infer),
    ("algebra", algebra),        # constant Mul/Add chains; BN scales into conv/matmul weights
    ("refold", infer),
    ("layout", layout),          # conv/pool channels-last; sink and cancel transposes
    ("fuse", fuse),              # elementwise programs into their producers
    ("dce", dce),
    ("outputs", materialize_outputs),
]


def run_pipeline(graph: Graph, trace: Callable[[str, Graph], None] | None = None,
                 passes: Sequence[tuple[str, Pass]] = PIPELINE) -> Graph:
    for name, fn in passes:
        graph = fn(graph)
        if trace is not None:
            trace(name, graph)
    return graph
