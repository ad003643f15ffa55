"""Graph IR: typed values, nodes in topological order, and patch-based rewriting."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

DTYPES = {"f32": np.float32, "i64": np.int64, "i32": np.int32, "i8": np.int8, "u8": np.uint8, "bool": np.bool_}
NP_TO_DTYPE = {np.dtype(v): k for k, v in DTYPES.items()}


@dataclass(frozen=True)
class TensorType:
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def rank(self) -> int:
        return len(self.shape)

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


class Value:
    """A tensor flowing along graph edges; `const` holds its data when known at build time."""

    def __init__(self, name: str, type: TensorType | None = None, const: np.ndarray | None = None):
        self.name = name
        self.type = type
        self.const = const
        self.producer: Node | None = None
        if const is not None:
            self.set_const(const)

    def set_const(self, data: np.ndarray) -> None:
        data = np.array(data, order="C")  # not ascontiguousarray: it makes 0-d arrays 1-d
        if data.dtype not in NP_TO_DTYPE:
            data = data.astype(np.float32 if data.dtype.kind == "f" else np.int64)
        self.const = data
        self.type = TensorType(NP_TO_DTYPE[data.dtype], tuple(int(d) for d in data.shape))

    def __repr__(self) -> str:
        return f"%{self.name}:{self.type}"


@dataclass(eq=False)
class Node:
    op: str
    name: str
    inputs: list[Value | None]
    outputs: list[Value]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for out in self.outputs:
            out.producer = self

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    def __repr__(self) -> str:
        return f"{self.op}({self.name})"


@dataclass(eq=False)
class Patch:
    """A local rewrite: new nodes inserted where the rewritten node was, and value replacements."""

    nodes: list[Node] = field(default_factory=list)
    replace: dict[Value, Value] = field(default_factory=dict)

    @staticmethod
    def swap(old: Value, new: Value, *nodes: Node) -> "Patch":
        return Patch(list(nodes), {old: new})


class Graph:
    def __init__(self, source: str, inputs: list[Value], outputs: list[Value], nodes: list[Node]):
        self.source = source
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.converted_from: int | None = None  # the ONNX opset the model was converted from
        self.fixed_inputs: dict[str, np.ndarray] = {}  # inputs given values at build time (input_values)
        self._names: set[str] = {v.name for n in nodes for v in n.inputs + n.outputs if v}
        self._names.update(v.name for v in inputs)

    def fresh(self, hint: str) -> str:
        """A value or node name not used yet, derived from `hint` (deterministic)."""
        name, i = hint, 1
        while name in self._names:
            name, i = f"{hint}.{i}", i + 1
        self._names.add(name)
        return name

    def value(self, hint: str, type: TensorType | None = None) -> Value:
        return Value(self.fresh(hint), type)

    def const(self, hint: str, data: np.ndarray) -> Value:
        return Value(self.fresh(hint), const=np.asarray(data))

    def consumers(self) -> dict[Value, list[Node]]:
        uses: dict[Value, list[Node]] = {}
        for node in self.nodes:
            for v in node.inputs:
                if v is not None:
                    uses.setdefault(v, []).append(node)
        return uses

    def apply(self, node: Node, patch: Patch) -> None:
        """Insert the patch's nodes at `node`'s position and redirect uses of replaced values.

        A patch that produces one of `node`'s own output values supersedes `node`, which goes."""
        at = self.nodes.index(node)
        produced = {o for n in patch.nodes for o in n.outputs}
        superseded = any(o in produced for o in node.outputs)
        self.nodes[at:at + superseded] = patch.nodes
        self.replace(patch.replace)

    def replace(self, mapping: dict[Value, Value]) -> None:
        if not mapping:
            return
        for n in self.nodes:
            n.inputs = [mapping.get(v, v) if v is not None else None for v in n.inputs]
        self.outputs = [mapping.get(v, v) for v in self.outputs]

    def rewrite(self, rule) -> bool:
        """Apply `rule(graph, node) -> Patch | None` to every node once, in order."""
        changed = False
        for node in list(self.nodes):
            if node not in self.nodes:
                continue
            patch = rule(self, node)
            if patch is not None:
                self.apply(node, patch)
                changed = True
        return changed

    def live_values(self) -> Iterable[Value]:
        for n in self.nodes:
            yield from n.outputs
