"""Static memory: where every tensor lives (inputs, outputs, weights or one scratch arena with
offsets fixed at compile time)."""
from __future__ import annotations

from dataclasses import dataclass

from ...ir.graph import Graph, Node, Value
from ...ir.weights import WeightTable, align
from ...passes.outputs import alias_root
from .emit import ELEM_BYTES


@dataclass(frozen=True)
class Loc:
    space: str      # "input" | "output" | "weights" | "scratch"
    index: int      # input/output position; 0 otherwise
    offset: int     # bytes


def nbytes(v: Value) -> int:
    return v.type.numel * ELEM_BYTES[v.type.dtype]


class MemoryPlan:
    def __init__(self, graph: Graph, temp_bytes: dict[Node, int], weights: WeightTable) -> None:
        self.weights = weights
        self.locs: dict[Value, Loc] = {v: Loc("input", i, 0) for i, v in enumerate(graph.inputs)}
        for j, v in enumerate(graph.outputs):
            self.locs[alias_root(v)] = Loc("output", j, 0)
        self.temps: dict[Node, Loc] = {}
        self.scratch_bytes = self._allocate(graph, temp_bytes)

    def loc(self, v: Value) -> Loc:
        root = alias_root(v)
        if root not in self.locs and root.const is not None:
            self.locs[root] = Loc("weights", 0, self.weights.add(root.name, root.const))
        return self.locs[root]

    def _allocate(self, graph: Graph, temp_bytes: dict[Node, int]) -> int:
        last_use: dict[Value, int] = {}
        for i, node in enumerate(graph.nodes):
            for v in node.inputs:
                if v is not None:
                    last_use[alias_root(v)] = i
        requests = []  # (start, end, bytes, key)
        for i, node in enumerate(graph.nodes):
            if node.op != "Reshape":
                for v in node.outputs:
                    if v not in self.locs:
                        requests.append((i, last_use.get(v, i), nbytes(v), v))
            if temp_bytes.get(node):
                requests.append((i, i, temp_bytes[node], node))
        live: list[tuple[int, int, int]] = []  # (offset, size, end)
        top = 0
        for start, end, size, key in requests:
            live = [blk for blk in live if blk[2] >= start]
            offset = 0
            for o, s, _ in sorted(live):
                if offset + align(size) <= o:
                    break
                offset = max(offset, align(o + s))
            live.append((offset, size, end))
            top = max(top, offset + size)
            loc = Loc("scratch", 0, offset)
            if isinstance(key, Node):
                self.temps[key] = loc
            else:
                self.locs[key] = loc
        return align(top)
