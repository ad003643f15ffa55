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
from ...platforms import bucket_file
from ..base import Target
from .module import LOWERINGS, build_program

PROGRAM_FILE = "model.mlir"


@dataclass
class ProgramCode:
    weights: WeightTable
    section: dict
    programs: dict[str, str]    # the MLIR text by file name: one, or one per shape bucket

    def files(self) -> dict[str, bytes]:
        return {name: text.encode() for name, text in self.programs.items()}


class StableHloBackend:
    name = "stablehlo"
    ops = frozenset(LOWERINGS)
    archs: tuple[str, ...] = ()
    passes = (("infer", infer), ("decompose", decompose), ("dce", dce))

    def build(self, graph: Graph, target: Target, weights: WeightTable | None = None) -> ProgramCode:
        """The program's arguments are the weights first, then the model inputs (the manifest's
        "arguments" names them in order); weights use the CPU platform's 64-byte aligned file.
        `weights`: the table earlier shape buckets of the model filled, to share their tensors."""
        program = build_program(graph, target.name, target.precision)
        table = weights if weights is not None else WeightTable()
        names = [table.store(weight, data) for weight, data in program.weights]
        file = bucket_file(PROGRAM_FILE, target.batch, target.buckets)
        section = {
            "program": {"file": file, "format": "mlir",
                        "sha256": hashlib.sha256(program.text.encode()).hexdigest()},
            "arguments": [{"kind": "weight", "name": w} for w in names]
                         + [{"kind": "input", "name": n} for n in target.input_names],
            "flops": graph_flops(graph),
        }
        return ProgramCode(table, section, {file: program.text})

    def join(self, buckets: list[ProgramCode]) -> ProgramCode:
        """Shape buckets built over one weights table (the programs take the weights as arguments, so
        each tensor is stored once), one program file each; the top-level section is the first's."""
        programs = {name: text for b in buckets for name, text in b.programs.items()}
        return ProgramCode(buckets[0].weights, dict(buckets[0].section), programs)


STABLEHLO = StableHloBackend()
