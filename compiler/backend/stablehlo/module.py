"""The whole graph as one StableHLO module: `@main(weights..., inputs...) -> outputs`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import CompileError
from ...ir.graph import Graph, Node, Value
from .emitter import Emitter, Ref, tensor_type
from .lower_elementwise import LOWERINGS as ELEMENTWISE
from .lower_nn import LOWERINGS as NN
from .lower_shape import LOWERINGS as SHAPE

LOWERINGS = {**ELEMENTWISE, **NN, **SHAPE}

# Ops whose later inputs carry shapes, axes or sizes (read at build time): how many lead
# inputs are tensors the program computes with.
DATA_INPUTS = {"Reshape": 1, "Squeeze": 1, "Unsqueeze": 1, "Slice": 1, "Split": 1, "Expand": 1,
               "ReduceMean": 1, "ReduceSum": 1, "ConstantOfShape": 0}


@dataclass
class Program:
    text: str
    weights: list[tuple[str, np.ndarray]]   # argument order, before the inputs
    inputs: list[str]


def is_weight(v: Value) -> bool:
    """Tensors become arguments; scalars and boolean masks stay inline constants."""
    return v.type.numel > 1 and v.type.dtype != "bool"


def _lower(em: Emitter, node: Node) -> None:
    if node.op not in LOWERINGS:
        raise CompileError(f"{node.op} node {node.name}: not supported by the StableHLO backend")
    count = DATA_INPUTS.get(node.op, len(node.inputs))
    args = [em.value(v) if v is not None else None for v in node.inputs[:count]]
    results = LOWERINGS[node.op](em, node, args)
    for value, ref in zip(node.outputs, results):
        if ref.type != value.type:
            raise CompileError(f"{node.op} node {node.name}: lowered to {ref.type}, expected {value.type}")
        em.env[value] = ref


def _signature(name: str, em: Emitter, inputs: list[Ref], outputs: list[Ref]) -> str:
    params = [f"{ref.name}: {tensor_type(ref.type)}" for _, ref in em.weights]
    params += [f"{ref.name}: {tensor_type(ref.type)}" for ref in inputs]
    results = ", ".join(tensor_type(r.type) for r in outputs)
    return f"func.func public @main({', '.join(params)}) -> ({results})"


def build_program(graph: Graph, name: str, precision: str = "highest") -> Program:
    em = Emitter(is_weight, precision)
    inputs = [Ref(f"%in{i}", v.type) for i, v in enumerate(graph.inputs)]
    em.env.update(zip(graph.inputs, inputs))
    for node in graph.nodes:
        _lower(em, node)
    outputs = [em.value(v) for v in graph.outputs]
    ret = ", ".join(r.name for r in outputs)
    types = ", ".join(tensor_type(r.type) for r in outputs)
    body = "\n".join("    " + line for line in em.lines)
    text = (f"module @{_identifier(name)} {{\n  {_signature(name, em, inputs, outputs)} {{\n{body}\n"
            f'    "func.return"({ret}) : ({types}) -> ()\n  }}\n}}\n')
    weights = [(v.name, v.const) for v, _ in em.weights]
    return Program(text, weights, [v.name for v in graph.inputs])


def _identifier(name: str) -> str:
    return "".join(c if c.isalnum() or c == "_" else "_" for c in name) or "model"
