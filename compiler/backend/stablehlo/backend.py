"""The StableHLO Backend (tpu, cpu-xla): one MLIR module for a PJRT plugin. Its graph goes only through
shape inference, constant folding, the decompositions every backend shares (passes/decompose.py) and
DCE: XLA does the fusion and layout work itself."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ...ir.graph import Graph
from ...ir.stats import graph_flops
from ...ir.weights import WeightTable
from ...passes.dce import dce
from ...passes.infer import infer
from ...passes.decompose import decompose
from ..base import Target
from .module import LOWERINGS, build_program

PROGRAM_FILE = "model.mlir"


@dataclass
class ProgramCode:
    weights: WeightTable
    section: dict
    mlir: str

    def files(self) -> dict[str, bytes]:
        return {PROGRAM_FILE: self.mlir.encode()}


class StableHloBackend:
    name = "stablehlo"
    ops = frozenset(LOWERINGS)
    archs: tuple[str, ...] = ()
    passes = (("infer", infer), ("decompose", decompose), ("dce", dce))

    def build(self, graph: Graph, target: Target) -> ProgramCode:
        """The program's arguments are the weights first, then the model inputs (the manifest's
        "arguments" names them in order); weights use the CPU platform's 64-byte aligned file."""
        program = build_program(graph, target.name, target.precision)
        table = WeightTable()
        for weight, data in program.weights:
            table.add(weight, data)
        section = {
            "program": {"file": PROGRAM_FILE, "format": "mlir",
                        "sha256": hashlib.sha256(program.text.encode()).hexdigest()},
            "arguments": [{"kind": "weight", "name": w} for w, _ in program.weights]
                         + [{"kind": "input", "name": n} for n in target.input_names],
            "flops": graph_flops(graph),
        }
        return ProgramCode(table, section, program.text)


STABLEHLO = StableHloBackend()
