"""One block per row, threads striding along it, block-wide reductions through warp shuffles and
shared memory: Softmax/LogSoftmax along any axis, LayerNormalization, ReduceSum/Mean/Max/Min/Prod;
and ArgMax/ArgMin, one thread scanning each slice."""
from __future__ import annotations

import numpy as np

from ...errors import CompileError
from ...ir.graph import Node
from ...ir.registry import norm_axis
from ...ir.ops_nn import arg_axis, layer_norm_param, reduce_axes
from .kbase import (BID, ROW_BLOCK, TID, Builder, block_reduce, dot, per_element, strides, strided_rows,
                    unary, unravel)
from .kir import WARP, Bin, Const, For, If, Kernel, Load, Local, Shared, Store, Sym

RED, STAT = Local("red", "f32", 1), Local("stat", "f32", 2)
SH = Shared("partial", "f32", ROW_BLOCK // WARP)


def _kernel(b: Builder, node: Node, kind: str, rows: int, body: list) -> Kernel:
    return Kernel(b.name(node, kind), kind, rows, ROW_BLOCK, tuple(body), (SH,), (RED, STAT), (node.name,))


def _set(buf, k, value) -> Store:
    return Store(buf, Const(k), value)


def _get(buf, k=0):
    return Load(buf, Const(k))


def _sum_rows(value, var: str, n: int, op: str = "add", init: float = 0.0) -> list:
    """red[0] := op over j in [0, n) of value(j), for the whole block."""
    return [_set(RED, 0, Const(init, "f32")),
            strided_rows(var, n, (_set(RED, 0, Bin(op, _get(RED), value)),)),
            *block_reduce(op, RED, SH, ROW_BLOCK)]


def softmax(b: Builder, node: Node) -> list[Kernel]:
    x, y = node.inputs[0], node.outputs[0]
    shape = x.type.shape
    axis = norm_axis(node, node.attr("axis", -1), len(shape))
    n, inner = shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))
    xb, yb = b.plan.buf(x), b.plan.buf(y)
    at = lambda j: (BID // inner) * (n * inner) + j * inner + BID % inner  # noqa: E731
    j = Sym("j")
    body = [*_sum_rows(Load(xb, at(j)), "j", n, "max", float("-inf")), _set(STAT, 0, _get(RED)),
            *_sum_rows(unary("Exp", Load(xb, at(j)) - _get(STAT)), "j", n)]
    if node.op == "Softmax":
        out = unary("Exp", Load(xb, at(j)) - _get(STAT)) / _get(RED)
    else:
        out = Load(xb, at(j)) - _get(STAT) - unary("Log", _get(RED))
    body.append(strided_rows("j", n, (Store(yb, at(j), out),)))
    return [_kernel(b, node, "softmax", x.type.numel // n, body)]


def layer_norm(b: Builder, node: Node) -> list[Kernel]:
    x, y = node.inputs[0], node.outputs[0]
    axis = norm_axis(node, node.attr("axis", -1), x.type.rank)
    n = int(np.prod(x.type.shape[axis:], dtype=np.int64))
    eps = float(node.attr("epsilon", 1e-5))
    params = []
    for k, (i, default) in enumerate(((1, 1.0), (2, 0.0))):
        p = layer_norm_param(node, i, x.type.shape[axis:], default)
        params.append(b.plan.weight(f"{node.name}.{'scale' if k == 0 else 'bias'}", p)
                      if isinstance(p, np.ndarray) else b.plan.buf(p))
    xb, yb = b.plan.buf(x), b.plan.buf(y)
    j = Sym("j")
    xj = Load(xb, BID * n + j)
    centered = xj - _get(STAT)
    body = [*_sum_rows(xj, "j", n), _set(STAT, 0, _get(RED) * (1.0 / n)),
            *_sum_rows(centered * centered, "j", n),
            _set(STAT, 1, Const(1.0, "f32") / unary("Sqrt", _get(RED) * (1.0 / n) + eps)),
            strided_rows("j", n, (Store(yb, BID * n + j, centered * _get(STAT, 1) * Load(params[0], j)
                                        + Load(params[1], j)),))]
    return [_kernel(b, node, "layernorm", x.type.numel // n, body)]


# op -> (kernel description op, start value); "max" and "min" propagate NaN
REDUCERS = {"ReduceSum": ("add", 0.0), "ReduceMean": ("add", 0.0), "ReduceMax": ("max", float("-inf")),
            "ReduceMin": ("min", float("inf")), "ReduceProd": ("mul", 1.0)}


def reduce(b: Builder, node: Node) -> list[Kernel]:
    x, y = node.inputs[0], node.outputs[0]
    if x.type.dtype != "f32":
        raise CompileError(f"{node.op} node {node.name}: only f32 is supported")
    shape = x.type.shape
    axes = reduce_axes(node)
    kept = [d for d in range(len(shape)) if d not in axes]
    red_shape = [shape[d] for d in axes]
    n = int(np.prod(red_shape, dtype=np.int64))
    st = strides(shape)
    base = dot(unravel(BID, [shape[d] for d in kept]), [st[d] for d in kept])
    j = Sym("j")
    value = Load(b.plan.buf(x), base + dot(unravel(j, red_shape), [st[d] for d in axes]))
    total = _get(RED) * (1.0 / n) if node.op == "ReduceMean" else _get(RED)
    body = [*_sum_rows(value, "j", n, *REDUCERS[node.op]), If(TID.eq(0), (Store(b.plan.buf(y), BID, total),))]
    return [_kernel(b, node, "reduce", y.type.numel, body)]


def arg_reduce(b: Builder, node: Node) -> list[Kernel]:
    """As the CPU scan: strictly better replaces (or also equal, with select_last_index); ordered
    comparisons, so a NaN wins only when it comes first."""
    x, y = node.inputs[0], node.outputs[0]
    shape, axis = x.type.shape, arg_axis(node)
    n, inner = shape[axis], int(np.prod(shape[axis + 1:], dtype=np.int64))
    best, arg = Local("best", x.type.dtype, 1), Local("arg", "i64", 1)
    sign = ("gt" if node.op == "ArgMax" else "lt") if not node.attr("select_last_index", 0) else \
        ("ge" if node.op == "ArgMax" else "le")
    xb = b.plan.buf(x)

    def body(i):
        at = lambda j: (i // inner) * (n * inner) + j * inner + i % inner  # noqa: E731
        j = Sym("j")
        take = Bin(sign, Load(xb, at(j)), _get(best))
        return [_set(best, 0, Load(xb, at(Const(0)))), _set(arg, 0, Const(0)),
                For("j", n, (If(take, (_set(best, 0, Load(xb, at(j))), _set(arg, 0, j))),), start=1),
                Store(b.plan.buf(y), i, _get(arg))]

    kernel = per_element(b, node, "argreduce", y.type.numel, body)
    return [Kernel(kernel.name, kernel.kind, kernel.grid, kernel.block, kernel.body, locals=(best, arg),
                   nodes=kernel.nodes)]
