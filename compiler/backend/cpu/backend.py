"""The CPU Backend: every variant of the host in an entry module plus one module per distinct kernel,
optimised and compiled on the build machine's cores and joined into one model.o (linked into the
launcher) when written; the JIT harness optimises the same module texts for the machine it runs on."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

from ...artifacts import weight_records
from ...ir.graph import Graph, Node
from ...ir.stats import graph_flops
from ...ir.weights import WeightTable
from ...passes.pipeline import PIPELINE
from ..base import Target
from ..llvm.modules import Optimized, Stream
from . import aarch64, x86_64
from .codegen import EMITTERS, Kernel, add_descriptor, build_module
from .descriptor import TensorInfo, WeightInfo
from .objfile import data_layout, emit_object, machine, object_output
from .target import Host

HOSTS: dict[str, Host] = {h.name: h for h in (x86_64.HOST, aarch64.HOST)}
OBJECT_FILE = "model.o"


@dataclass
class CpuCode:
    host: Host
    modules: list[str]      # unoptimised module texts: the entry module, then each kernel's
    levels: list[int]       # each module's LLVM optimisation level
    kernels: list[Kernel]   # the kernel modules' functions, and the nodes calling each
    weights: WeightTable
    section: dict
    sites: dict[str, list[tuple[Node, str]]]   # variant -> exported call sites (profile builds)
    objects: Stream | None = None   # the kernels' then the entry's objects, under way since codegen

    def files(self, compiled: Sequence[Optimized] | None = None) -> dict[str, bytes]:
        if compiled is None and self.objects is not None:
            *kernels, entry = self.objects.results()
            compiled = [entry, *kernels]
        obj = emit_object(self.modules, [k.name for k in self.kernels], self.host, compiled, self.levels)
        self.section["object"] = {"file": OBJECT_FILE, "sha256": hashlib.sha256(obj).hexdigest()}
        return {OBJECT_FILE: obj}


class CpuBackend:
    name = "cpu"
    ops = frozenset({"Reshape", *EMITTERS})
    archs: tuple[str, ...] = ()
    passes = PIPELINE

    def build(self, graph: Graph, target: Target) -> CpuCode:
        host = HOSTS[target.host]
        objects = Stream(machine(host)) if target.overlap_llvm else None
        try:
            code = self._build(graph, target, host, objects)
        except BaseException:
            if objects is not None:
                objects.cancel()
            raise
        if objects is not None:
            objects.add(code.modules[0], code.levels[0], object_output([]))
        return code

    def _build(self, graph: Graph, target: Target, host: Host, objects: Stream | None) -> CpuCode:
        """The code; each new kernel's module handed to `objects` as soon as it is complete."""
        def made(kernel: Kernel) -> None:
            if objects is not None:
                objects.add(kernel.text, kernel.level, object_output([kernel.name]))

        table = WeightTable()
        mod = build_module(graph, host, table, target.profile, made)
        mod.ir.data_layout = data_layout(host)
        inputs = _tensors(graph.inputs, target.input_names)
        outputs = _tensors(graph.outputs, target.output_names)
        add_descriptor(mod, host, target.name, inputs, outputs, _weight_infos(table), table.size)
        section = {
            "host": host.name, "triple": host.triple, "abi_version": 1,
            "scratch_bytes": mod.plan.scratch_bytes,
            "variants": [{"name": v.name, "entry": e, "required_features": v.required_features}
                         for v, e in zip(host.variants, mod.entries)],
            "flops": graph_flops(graph),
        }
        return CpuCode(host, mod.texts(), mod.levels(), mod.kernels, table, section, mod.sites, objects)


def _tensors(values, names: tuple[str, ...]) -> list[TensorInfo]:
    return [TensorInfo(n, v.type.dtype, v.type.shape) for v, n in zip(values, names)]


def _weight_infos(table: WeightTable) -> list[WeightInfo]:
    return [WeightInfo(r["name"], r["dtype"], tuple(r["shape"]), r["offset"], r["nbytes"],
                       bytes.fromhex(r["sha256"])) for r in weight_records(table)]


CPU = CpuBackend()
