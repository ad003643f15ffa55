"""The interface every backend implements: the compile driver hands it the graph after the passes it
names and a Target, and gets back Code (files, the weights the code reads, its manifest section)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from ..ir.graph import Graph
from ..ir.weights import WeightTable
from ..passes.pipeline import Pass


@dataclass(frozen=True)
class Target:
    """What one build is for."""
    name: str                       # the model's name (descriptor, MLIR module)
    platform: str                   # registry name: "cuda"
    archs: tuple[str, ...]          # "sm_80", "gfx942"; () for platforms without archs
    host: str                       # the launcher's host: "linux-amd64"
    input_names: tuple[str, ...]    # the model's input and output names as the ONNX file spells them
    output_names: tuple[str, ...]
    tools: dict[str, Path | None]   # toolchain programs by name; None = the pinned one
    profile: bool = False           # cpu: one function per node for JitModel.profile (not for shipping)
    overlap_llvm: bool = False      # cpu: the object files will be written, so LLVM starts on each
                                    # kernel while the next are generated (a JIT needs only the texts)
    precision: str = "highest"      # stablehlo: f32 dots and convolutions at full f32 precision or
                                    # the plugin's default (bf16 passes on TPU)
    batch: int = 1                  # the leading dim the inputs were fixed at
    buckets: tuple[int, ...] = ()   # every shape bucket's batch, smallest first, when this build is
                                    # one of several joined into one artifact (model(shapes, batch_sizes))
    bucket: int = 0                 # this build's index in buckets
    pad_values: tuple[float | None, ...] = ()   # buckets: per input, the value its non-leading dims are
                                                # padded with; None: only its leading dim pads (zero rows)
    follows: tuple[tuple[tuple[int, int] | None, ...], ...] = ()  # buckets: per output dim, the
                                                # (input, dim) it is cut back along, or None


class Code(Protocol):
    weights: WeightTable            # the weights the code reads, at their offsets
    section: dict                   # the backend's manifest keys (compiler/manifest.py)

    def files(self) -> dict[str, bytes]:
        """The code files by name (a backend may finish its code here: the CPU object is emitted only
        when written, and its digest joins the section)."""


class Backend(Protocol):
    name: str
    ops: frozenset[str]             # the IR ops it lowers
    archs: tuple[str, ...]          # the arch qualifiers it knows; () = it takes none
    passes: Sequence[tuple[str, Pass]]   # the pass list its graph goes through, in order

    def build(self, graph: Graph, target: Target, weights: WeightTable | None = None) -> Code:
        """`weights`: the table earlier shape buckets of the model filled, to share their tensors."""

    def join(self, buckets: list[Code]) -> Code:
        """Shape buckets built over one weights table as one artifact; the section is the first's."""
