"""Assembles a host's code: each distinct kernel in an LLVM module of its own (nodes whose code is
the same share one), and one entry module with every variant's entry point, the call sites that
hand kernels their operands, and the descriptor. Kernel emitters are looked up by IR op."""
from __future__ import annotations

import gc
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import llvmlite.ir as ir

from ...errors import CompileError
from ...ir.graph import Graph, Node
from ...ir.weights import WeightTable
from ..llvm.emit import I8, I64, PTR, VOID, Fn
from ..llvm.memplan import MemoryPlan
from ..llvm.modules import O3, Passes
from . import k_conv, k_data, k_elementwise, k_gemm, k_norm, k_pool, k_pointwise_depthwise
from .context import SLOTS, Address, Context
from .descriptor import MODEL_SYMBOL, TensorInfo, WeightInfo, emit_bucket_table, emit_descriptor
from .target import Host, Variant

Emitter = Callable[[Context, Fn, Node], None]

EMITTERS: dict[str, Emitter] = {
    "Fused": k_elementwise.emit_fused,
    "MatMul": k_gemm.emit_matmul,
    "Conv": k_conv.emit_conv,
    "MaxPool": k_pool.emit_pool,
    "AveragePool": k_pool.emit_pool,
    **{op: k_norm.emit_reduce for op in k_norm.REDUCERS},
    "ArgMax": k_norm.emit_arg_reduce,
    "ArgMin": k_norm.emit_arg_reduce,
    "Softmax": k_norm.emit_softmax,
    "LogSoftmax": k_norm.emit_softmax,
    "LayerNormalization": k_norm.emit_layer_norm,
    "Concat": k_data.emit_concat,
    "Gather": k_data.emit_gather,
    "ScatterFlat": k_data.emit_scatter_flat,
    "PointwiseDepthwise": k_pointwise_depthwise.emit_pointwise_depthwise,
}
TEMP_BYTES: dict[str, Callable[[Node], int]] = {"Conv": k_conv.conv_temp_bytes}


KERNEL = "kiln_kernel"  # a kernel module's function until its text is known to be new
# Kernels that only move data: O1 (with loop vectorisation) gives them the same copy loops as O3 in
# a fraction of the time. Every other kernel gets O3.
LIGHT_OPS = frozenset({"Concat", "Gather", "ScatterFlat"})
# A conv's micro-kernel step is already a whole register tile: LLVM unrolling its loop again doubled
# DenseNet-121's conv modules and their code generation time, for no run time.
NOT_UNROLLED_OPS = frozenset({"Conv"})
# The entry module is only call sites and pointer arithmetic: O3 buys it nothing at run time, but on
# DenseNet-121 it is the largest module and is compiled last, alone.
ENTRY = Passes(level=1)
# Kernels on the GEMM driver: their operands get a frame slot each (see Context).
GEMM_OPS = frozenset({"Conv", "MatMul"})


@dataclass
class Kernel:
    name: str
    text: str                  # its own LLVM module, unoptimised
    nodes: list[str]           # the nodes that call it
    emit_seconds: float        # building the IR, summed over its nodes
    passes: Passes = O3        # how LLVM optimises it


@dataclass
class Module:
    ir: ir.Module              # entry points, call sites and the descriptor
    kernels: list[Kernel]      # one per distinct code, in first-use order
    plan: MemoryPlan
    entries: list[str]
    sites: dict[str, list[tuple[Node, str]]]  # variant -> exported call sites (profiling only)
    prefix: str = ""           # of every global symbol: "b4_" for a shape bucket, "" for the first

    def texts(self) -> list[str]:
        return [str(self.ir)] + [k.text for k in self.kernels]

    def passes(self) -> list[Passes]:
        return [ENTRY] + [k.passes for k in self.kernels]


def build_module(graph: Graph, host: Host, weights: WeightTable | None = None,
                 export_kernels: bool = False, made: Callable[[Kernel], None] = lambda kernel: None,
                 bucket: str = "") -> Module:
    """All variants' code; `made` is handed each new kernel as soon as its module is complete.
    export_kernels keeps each node's call site a separate external function (taking the entry's
    5-pointer state) so a profiler can time nodes one by one. `bucket` ("b4") prefixes every global
    symbol, so several shape buckets' objects link into one launcher."""
    for node in graph.nodes:
        if node.op != "Reshape" and node.op not in EMITTERS:
            raise CompileError(f"unsupported operator {node.op} at node {node.name} ({graph.source})")
    weights = weights or WeightTable()
    nodes = k_pointwise_depthwise.pair_pointwise_depthwise(graph)
    temps = {n: TEMP_BYTES[n.op](n) for n in nodes if n.op in TEMP_BYTES}
    plan = MemoryPlan(Graph(graph.source, graph.inputs, graph.outputs, nodes), temps, weights)
    module = ir.Module(name="kiln")
    module.triple = host.triple
    mod = Module(module, [], plan, [], {}, f"{bucket}_" if bucket else "")
    known: dict[str, Kernel] = {}
    for variant in host.variants:
        entry = Fn(module, f"kiln_entry_{mod.prefix}{variant.symbol}", variant, [PTR] * 5, internal=False)
        state = entry.pro.alloca(PTR, size=I64(len(SLOTS)))
        for i, arg in enumerate(entry.args):
            entry.pro.store(arg, entry.pro.gep(state, [I64(i)], source_etype=PTR))
        for node in nodes:
            if node.op == "Reshape" or all(v.type.numel == 0 for v in node.outputs):
                continue
            with _collected_young():
                kernel, frame = _kernel(mod, known, host, variant, node, made)
            site = _call_site(mod, variant, node, kernel, frame, export_kernels)
            entry.b.call(site, [state])
            if export_kernels:
                mod.sites.setdefault(variant.name, []).append((node, site.name))
        entry.finish()
        mod.entries.append(entry.fn.name)
    return mod


@contextmanager
def _collected_young() -> Iterator[None]:
    """A kernel's llvmlite objects form reference cycles and all die together once its text is
    taken. With the collector paused while they are made, and then run over the youngest generation
    only, they are freed in one sweep, instead of being promoted while alive and rescanned by every
    full collection after (a third of codegen's time on ResNet-50)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.collect(0)


def _kernel(mod: Module, known: dict[str, Kernel], host: Host, variant: Variant, node: Node,
            made: Callable[[Kernel], None]) -> tuple[ir.Function, dict[Address, int]]:
    """The node's kernel (shared with every earlier node whose code is the same) and its frame."""
    start = time.perf_counter()
    kmod = ir.Module(name="kernel")
    kmod.triple = host.triple
    ctx = Context(kmod, variant, mod.plan, own_slots=node.op in GEMM_OPS)
    f = Fn(kmod, KERNEL, variant, internal=False)
    EMITTERS[node.op](ctx, f, node)
    f.finish()
    text = str(kmod)
    kernel = known.get(text)
    if kernel is None:
        name = f"kiln_{mod.prefix}{variant.symbol}_k{len(known)}_{node.op.lower()}"
        kernel = known[text] = Kernel(name, text.replace(f'@"{KERNEL}"', f'@"{name}"'), [], 0.0,
                                      _passes(node.op))
        mod.kernels.append(kernel)
        ir.Function(mod.ir, ir.FunctionType(VOID, [PTR]), name)
        made(kernel)
    kernel.nodes.append(node.name)
    kernel.emit_seconds += time.perf_counter() - start
    return mod.ir.globals[kernel.name], ctx.frame


def _passes(op: str) -> Passes:
    return Passes(level=1 if op in LIGHT_OPS else 3, unroll=op not in NOT_UNROLLED_OPS)


def _call_site(mod: Module, variant: Variant, node: Node, kernel: ir.Function,
               frame: dict[Address, int], export: bool) -> ir.Function:
    """site(state): fills the kernel's frame with the addresses of the node's operands, calls it."""
    f = Fn(mod.ir, f"kiln_{mod.prefix}{variant.symbol}_site{len(mod.ir.globals)}_{node.op.lower()}", variant,
           internal=not export)
    if export:
        f.fn.attributes.add("noinline")
    pointers = f.pro.alloca(PTR, size=I64(max(len(frame), 1)))
    for (space, index, offset), slot in frame.items():
        f.b.store(_address(f, space, index, offset), f.b.gep(pointers, [I64(slot)], source_etype=PTR))
    f.b.call(kernel, [pointers])
    f.finish()
    return f.fn


def _address(f: Fn, space: str, index: int, offset: int) -> ir.Value:
    base = f.b.load(f.b.gep(f.args[0], [I64(SLOTS[space])], source_etype=PTR), typ=PTR)
    if space in ("input", "output"):
        base = f.b.load(f.b.gep(base, [I64(index)], source_etype=PTR), typ=PTR)
    return f.b.gep(base, [I64(offset)], source_etype=I8) if offset else base


def add_descriptor(mod: Module, host: Host, model_name: str, inputs: list[TensorInfo],
                   outputs: list[TensorInfo], weights: list[WeightInfo], weights_bytes: int,
                   symbol: str = MODEL_SYMBOL, buckets: Sequence[str] = (), padding: tuple = ((), ())) -> None:
    """The descriptor `symbol`; `buckets` (every bucket's descriptor symbol, smallest batch first)
    makes this module also define the bucket table that lists them, with `padding` (Target.pad_values,
    Target.follows)."""
    fns = [mod.ir.globals[name] for name in mod.entries]
    variants = [(v.name, v.required_features, fn) for v, fn in zip(host.variants, fns)]
    emit_descriptor(mod.ir, model_name, inputs, outputs, weights, weights_bytes,
                    mod.plan.scratch_bytes, variants, symbol)
    if buckets:
        emit_bucket_table(mod.ir, buckets, *padding)
