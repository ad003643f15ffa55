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
from ..llvm.modules import Optimized, Passes, Stream
from . import aarch64, x86_64
from .codegen import EMITTERS, Kernel, add_descriptor, build_module
from .descriptor import MODEL_SYMBOL, TensorInfo, WeightInfo
from .objfile import data_layout, emit_object, join_objects, machine, object_output
from .target import Host

HOSTS: dict[str, Host] = {h.name: h for h in (x86_64.HOST, aarch64.HOST)}
OBJECT_FILE = "model.o"


@dataclass
class CpuCode:
    host: Host
    modules: list[str]      # unoptimised module texts: the entry module, then each kernel's
    passes: list[Passes]    # how LLVM optimises each module
    kernels: list[Kernel]   # the kernel modules' functions, and the nodes calling each
    weights: WeightTable
    section: dict
    sites: dict[str, list[tuple[Node, str]]]   # variant -> exported call sites (profile builds)
    objects: Stream | None = None   # the kernels' then the entry's objects, under way since codegen

    def files(self, compiled: Sequence[Optimized] | None = None) -> dict[str, bytes]:
        return _object_file(self.section, self.object(compiled))

    def object(self, compiled: Sequence[Optimized] | None = None) -> bytes:
        if compiled is None and self.objects is not None:
            *kernels, entry = self.objects.results()
            compiled = [entry, *kernels]
        return emit_object(self.modules, [k.name for k in self.kernels], self.host, compiled, self.passes)


@dataclass
class BucketCode:
    """Several shape buckets' code in one model.o; their descriptors' symbols are distinct and the
    first bucket's object holds the table of all (kiln_buckets)."""
    buckets: list[CpuCode]
    weights: WeightTable
    section: dict

    def files(self) -> dict[str, bytes]:
        return _object_file(self.section, join_objects([b.object() for b in self.buckets]))


def _object_file(section: dict, obj: bytes) -> dict[str, bytes]:
    section["object"] = {"file": OBJECT_FILE, "sha256": hashlib.sha256(obj).hexdigest()}
    return {OBJECT_FILE: obj}


class CpuBackend:
    name = "cpu"
    ops = frozenset({"Reshape", *EMITTERS})
    archs: tuple[str, ...] = ()
    passes = PIPELINE

    def build(self, graph: Graph, target: Target, weights: WeightTable | None = None) -> CpuCode:
        """`weights`: the table earlier shape buckets of the model filled, to share their tensors."""
        host = HOSTS[target.host]
        objects = Stream(machine(host)) if target.overlap_llvm else None
        try:
            code = self._build(graph, target, host, objects, weights)
        except BaseException:
            if objects is not None:
                objects.cancel()
            raise
        if objects is not None:
            objects.add(code.modules[0], code.passes[0], object_output([]))
        return code

    def _build(self, graph: Graph, target: Target, host: Host, objects: Stream | None,
               weights: WeightTable | None) -> CpuCode:
        """The code; each new kernel's module handed to `objects` as soon as it is complete."""
        def made(kernel: Kernel) -> None:
            if objects is not None:
                objects.add(kernel.text, kernel.passes, object_output([kernel.name]))

        table = weights if weights is not None else WeightTable()
        bucket, symbol, bucket_table = _symbols(target)
        mod = build_module(graph, host, table, target.profile, made, bucket=bucket)
        mod.ir.data_layout = data_layout(host)
        inputs = _tensors(graph.inputs, target.input_names)
        outputs = _tensors(graph.outputs, target.output_names)
        add_descriptor(mod, host, target.name, inputs, outputs, _weight_infos(table), table.size, symbol,
                       bucket_table, (target.pad_values, target.follows))
        section = {
            "host": host.name, "triple": host.triple, "abi_version": 1,
            "scratch_bytes": mod.plan.scratch_bytes,
            "variants": [{"name": v.name, "entry": e, "required_features": v.required_features}
                         for v, e in zip(host.variants, mod.entries)],
            "flops": graph_flops(graph),
        }
        return CpuCode(host, mod.texts(), mod.passes(), mod.kernels, table, section, mod.sites, objects)

    def join(self, buckets: list[CpuCode]) -> BucketCode:
        """Shape buckets built over one weights table (build(..., weights)) as one model.o; the
        manifest section is the first bucket's."""
        return BucketCode(buckets, buckets[0].weights, dict(buckets[0].section))


def _symbols(target: Target) -> tuple[str, str, list[str]]:
    """The build's symbol prefix and descriptor symbol, and (first bucket only) the bucket table's."""
    if not target.buckets:
        return "", MODEL_SYMBOL, []
    table = [MODEL_SYMBOL] + [f"{MODEL_SYMBOL}_b{i}" for i in range(1, len(target.buckets))]
    i = target.bucket
    return ("", table[0], table) if i == 0 else (f"b{i}", table[i], [])


def _tensors(values, names: tuple[str, ...]) -> list[TensorInfo]:
    return [TensorInfo(n, v.type.dtype, v.type.shape) for v, n in zip(values, names)]


def _weight_infos(table: WeightTable) -> list[WeightInfo]:
    return [WeightInfo(r["name"], r["dtype"], tuple(r["shape"]), r["offset"], r["nbytes"],
                       bytes.fromhex(r["sha256"])) for r in weight_records(table)]


CPU = CpuBackend()
