"""Graph -> kernel descriptions, one launch per fused op group, in graph order."""
from __future__ import annotations

from typing import Callable

from ...errors import CompileError
from ...ir.graph import Graph, Node
from ...ir.weights import WeightTable
from . import k_elementwise, k_gemm, k_rows, k_window
from .kbase import Builder
from .kir import Kernel
from .plan import BufferPlan

KernelBuilder = Callable[[Builder, Node], list[Kernel]]


def _conv(b: Builder, node: Node) -> list[Kernel]:
    return (k_window.depthwise if k_window.is_depthwise(node) else k_gemm.conv)(b, node)


BUILDERS: dict[str, KernelBuilder] = {
    "Fused": k_elementwise.fused,
    "MatMul": k_gemm.matmul,
    "Conv": _conv,
    "MaxPool": k_window.pool,
    "AveragePool": k_window.pool,
    **{op: k_rows.reduce for op in k_rows.REDUCERS},
    "ArgMax": k_rows.arg_reduce,
    "ArgMin": k_rows.arg_reduce,
    "Softmax": k_rows.softmax,
    "LogSoftmax": k_rows.softmax,
    "LayerNormalization": k_rows.layer_norm,
    "Concat": k_elementwise.concat,
    "Gather": k_elementwise.gather,
    "ScatterFlat": k_elementwise.scatter_flat,
}


def build_kernels(graph: Graph, weights: WeightTable | None = None) -> tuple[list[Kernel], BufferPlan]:
    """`weights`: a table other shape buckets of the model share (BufferPlan)."""
    for node in graph.nodes:
        if node.op != "Reshape" and node.op not in BUILDERS:
            raise CompileError(f"unsupported operator {node.op} at node {node.name} ({graph.source})")
    plan = BufferPlan(graph, weights)
    b = Builder(plan)
    kernels: list[Kernel] = []
    for node in graph.nodes:
        if node.op == "Reshape" or all(v.type.numel == 0 for v in node.outputs):
            continue
        if node.op == "Conv" and node.attr("layout") != "NHWC":
            raise CompileError(f"Conv node {node.name}: only 1-D, 2-D and 3-D convolutions are supported")
        kernels += BUILDERS[node.op](b, node)
    return kernels, plan
