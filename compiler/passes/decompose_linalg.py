"""Det as LU with partial pivoting unrolled into IR ops (the matrix size is static): each step picks,
among the rows not yet used as pivots, the one of largest magnitude in the step's column (ArgMax),
reads it with a Gather, and eliminates the column from the other unused rows. Rows are never
moved, so the permutation's sign is the parity of the pivot sequence's inversions."""
from __future__ import annotations

import numpy as np

from ..ir.graph import Graph, Node, Patch, Value
from .chain import Chain


def det(graph: Graph, node: Node) -> Patch | None:
    if node.op != "Det":
        return None
    x = node.inputs[0]
    n = x.type.shape[-1]
    batch = int(np.prod(x.type.shape[:-2], dtype=np.int64))
    c = Chain(graph, node)
    a = c.add("Reshape", [x], shape=(batch, n, n))
    rows = graph.const("det_rows", np.arange(n, dtype=np.int64)[None, :])
    starts = graph.const("det_starts", (np.arange(batch, dtype=np.int64) * n)[:, None])
    used = graph.const("det_unused", np.zeros((batch, n), np.bool_))
    product, pivots = None, []
    for k in range(n):
        column = c.add("Gather", [a, graph.const("det_k", np.int64(k))], axis=2)  # [B, n]
        score = c.add("Where", [used, graph.const("det_minus_one", np.float32(-1)), c.add("Abs", [column])])
        p = c.add("ArgMax", [score], axis=1, keepdims=1)  # [B, 1]
        pivots.append(p)
        flat = c.add("Reshape", [a], shape=(batch * n, n))
        row = c.add("Gather", [flat, c.add("Reshape", [c.add("Add", [p, starts])], shape=(batch,))], axis=0)
        pivot = c.add("Gather", [row, graph.const("det_k", np.array([k], np.int64))], axis=1)  # [B, 1]
        product = pivot if product is None else c.add("Mul", [product, pivot])
        used = c.add("Or", [used, c.add("Equal", [rows, p])])
        if k < n - 1:
            a = _eliminate(c, a, column, row, pivot, used, (batch, n))
    sign = _permutation_sign(c, pivots, batch)
    result = product if sign is None else c.add("Mul", [product, sign])
    c.add("Reshape", [result], node.outputs[0], shape=node.outputs[0].type.shape)
    return Patch(c.nodes)


def _eliminate(c: Chain, a: Value, column: Value, row: Value, pivot: Value, used: Value,
               shape: tuple[int, int]) -> Value:
    """Every row not yet used minus its multiple of the pivot row that zeroes the column; a zero
    pivot (a column of zeros: the determinant is 0) eliminates nothing, as LAPACK's getrf skips it."""
    zero = c.graph.const("det_zero", np.float32(0))
    factor = c.add("Where", [c.add("Equal", [pivot, zero]), zero, c.add("Div", [column, pivot])])
    update = c.add("Sub", [a, c.add("Mul", [c.add("Reshape", [factor], shape=shape + (1,)),
                                            c.add("Reshape", [row], shape=(shape[0], 1, shape[1]))])])
    return c.add("Where", [c.add("Reshape", [used], shape=shape + (1,)), a, update])


def _permutation_sign(c: Chain, pivots: list[Value], batch: int) -> Value | None:
    """-1 for an odd number of pairs i < j with pivot row p_i > p_j, else 1 ([B, 1] float)."""
    n = len(pivots)
    if n == 1:
        return None
    p = c.add("Concat", pivots, axis=1)  # [B, n]
    later = c.add("Greater", [c.add("Reshape", [p], shape=(batch, n, 1)), c.add("Reshape", [p], shape=(batch, 1, n))])
    upper = c.graph.const("det_pairs", np.triu(np.ones((n, n), np.float32), 1))  # i < j
    pairs = c.add("Mul", [c.add("Cast", [later], to="f32"), upper])
    inversions = c.add("ReduceSum", [c.add("Reshape", [pairs], shape=(batch, n * n))], axes_norm=(1,), keepdims=1)
    half = c.add("Mul", [inversions, c.graph.const("det_half", np.float32(0.5))])
    odd = c.add("Sub", [half, c.add("Floor", [half])])  # 0.5 for an odd count, else 0
    flip = c.add("Mul", [odd, c.graph.const("det_four", np.float32(4))])
    return c.add("Sub", [c.graph.const("det_one", np.float32(1)), flip])


RULES = [det]
