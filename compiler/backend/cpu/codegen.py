"""Assembles one LLVM module for a host: every variant's kernels and entry point, plus the
descriptor. Kernel emitters are looked up by IR op."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import llvmlite.ir as ir

from ...errors import CompileError
from ...ir.graph import Graph, Node
from ...ir.weights import WeightTable
from ..llvm.emit import I64, PTR, Fn
from ..llvm.memplan import MemoryPlan
from . import k_conv, k_data, k_elementwise, k_gemm, k_norm, k_pool, k_pointwise_depthwise
from .context import SLOTS, Context
from .descriptor import TensorInfo, WeightInfo, emit_descriptor
from .target import Host

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
    "PointwiseDepthwise": k_pointwise_depthwise.emit_pointwise_depthwise,
}
TEMP_BYTES: dict[str, Callable[[Node], int]] = {"Conv": k_conv.conv_temp_bytes}


@dataclass
class Module:
    ir: ir.Module
    plan: MemoryPlan
    entries: list[str]
    kernels: dict[str, list[tuple[Node, str]]]  # variant -> exported kernels (profiling only)


def build_module(graph: Graph, host: Host, weights: WeightTable | None = None,
                 export_kernels: bool = False) -> Module:
    """All variants' code. export_kernels keeps each node's kernel a separate external function
    (taking the entry's 5-pointer state) so a profiler can time nodes one by one."""
    for node in graph.nodes:
        if node.op != "Reshape" and node.op not in EMITTERS:
            raise CompileError(f"unsupported operator {node.op} at node {node.name} ({graph.source})")
    weights = weights or WeightTable()
    nodes = k_pointwise_depthwise.pair_pointwise_depthwise(graph)
    temps = {n: TEMP_BYTES[n.op](n) for n in nodes if n.op in TEMP_BYTES}
    plan = MemoryPlan(Graph(graph.source, graph.inputs, graph.outputs, nodes), temps, weights)
    module = ir.Module(name="kiln")
    module.triple = host.triple
    entries, kernels = [], {}
    for variant in host.variants:
        ctx = Context(module, variant, plan)
        entry = Fn(module, f"kiln_entry_{variant.symbol}", variant, [PTR] * 5, internal=False)
        state = entry.pro.alloca(PTR, size=I64(len(SLOTS)))
        for i, arg in enumerate(entry.args):
            entry.pro.store(arg, entry.pro.gep(state, [I64(i)], source_etype=PTR))
        for node in nodes:
            if node.op == "Reshape" or all(v.type.numel == 0 for v in node.outputs):
                continue
            f = ctx.function(node.op.lower())
            EMITTERS[node.op](ctx, f, node)
            f.finish()
            entry.b.call(f.fn, [state])
            if export_kernels:
                f.fn.linkage = ""
                f.fn.attributes.add("noinline")
                kernels.setdefault(variant.name, []).append((node, f.fn.name))
        entry.finish()
        entries.append(entry.fn.name)
    return Module(module, plan, entries, kernels)


def add_descriptor(mod: Module, host: Host, model_name: str, inputs: list[TensorInfo],
                   outputs: list[TensorInfo], weights: list[WeightInfo], weights_bytes: int) -> None:
    fns = [mod.ir.globals[name] for name in mod.entries]
    variants = [(v.name, v.required_features, fn) for v, fn in zip(host.variants, fns)]
    emit_descriptor(mod.ir, model_name, inputs, outputs, weights, weights_bytes,
                    mod.plan.scratch_bytes, variants)
