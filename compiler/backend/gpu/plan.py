"""Device memory: one weights buffer (uploaded once) and one activations buffer holding the
inputs, the outputs and the scratch arena at offsets fixed at compile time. Every kernel takes
the two base pointers; a tensor is a `kir.Global` (buffer, byte offset, dtype)."""
from __future__ import annotations

import numpy as np

from ...ir.graph import Graph, Value
from ...ir.weights import WeightTable, align
from ..llvm.memplan import MemoryPlan, nbytes
from . import kir

WEIGHTS, ACTIVATIONS = 0, 1


class BufferPlan:
    def __init__(self, graph: Graph, weights: WeightTable | None = None) -> None:
        self.weights = weights if weights is not None else WeightTable()
        self.mem = MemoryPlan(graph, {}, self.weights)
        self.inputs, self.outputs, top = [], [], 0
        for v in graph.inputs:
            self.inputs.append(top)
            top = align(top + nbytes(v))
        for v in graph.outputs:
            self.outputs.append(top)
            top = align(top + nbytes(v))
        self.scratch = top
        self.activation_bytes = top + self.mem.scratch_bytes

    def buf(self, v: Value) -> kir.Global:
        loc = self.mem.loc(v)
        if loc.space == "weights":
            return kir.Global(WEIGHTS, loc.offset, v.type.dtype)
        base = {"input": self.inputs, "output": self.outputs}.get(loc.space)
        offset = base[loc.index] if base is not None else self.scratch + loc.offset
        return kir.Global(ACTIVATIONS, offset, v.type.dtype)

    def weight(self, name: str, data: np.ndarray) -> kir.Global:
        """A weight derived at build time (e.g. re-laid-out conv filters)."""
        return kir.Global(WEIGHTS, self.weights.add(name, data), "f32")

    def manifest(self) -> dict:
        return {"weights_bytes": self.weights.size, "activation_bytes": self.activation_bytes,
                "inputs": self.inputs, "outputs": self.outputs, "scratch_offset": self.scratch,
                "scratch_bytes": self.mem.scratch_bytes}
