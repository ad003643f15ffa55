"""Trigonometric and hyperbolic ops from the few every backend lowers (Sin, Cos, Atan, Exp, Log,
Sqrt): each form below keeps its NaN, infinities and domain edges (asin(1) = pi/2 through
atan(1/0), NaN outside [-1, 1] through sqrt of a negative) without a Where."""
from __future__ import annotations


import numpy as np

from ..ir.graph import Graph, Node, Patch, Value


class _Math:
    """New nodes named after the rewritten one."""

    def __init__(self, graph: Graph, node: Node) -> None:
        self.graph, self.node, self.nodes = graph, node, []

    def f(self, op: str, *inputs: Value) -> Value:
        out = self.graph.value(f"{self.node.outputs[0].name}.{op.lower()}")
        self.nodes.append(Node(op, self.node.name, list(inputs), [out], {}))
        return out

    def num(self, v: float) -> Value:
        return self.graph.const("k", np.float32(v))


def _tan(c: _Math, x: Value) -> Value:
    return c.f("Div", c.f("Sin", x), c.f("Cos", x))


def _asin(c: _Math, x: Value) -> Value:
    """atan(x / sqrt((1 - x)(1 + x))): the factored square loses nothing near |x| = 1."""
    one = c.num(1.0)
    return c.f("Atan", c.f("Div", x, c.f("Sqrt", c.f("Mul", c.f("Sub", one, x), c.f("Add", one, x)))))


def _acos(c: _Math, x: Value) -> Value:
    """2 atan(sqrt((1 - x) / (1 + x))): exact at 1 and small near it, pi at -1."""
    one = c.num(1.0)
    half = c.f("Sqrt", c.f("Div", c.f("Sub", one, x), c.f("Add", one, x)))
    return c.f("Mul", c.num(2.0), c.f("Atan", half))


def _sinh(c: _Math, x: Value) -> Value:
    return c.f("Mul", c.num(0.5), c.f("Sub", c.f("Exp", x), c.f("Exp", c.f("Neg", x))))


def _cosh(c: _Math, x: Value) -> Value:
    return c.f("Mul", c.num(0.5), c.f("Add", c.f("Exp", x), c.f("Exp", c.f("Neg", x))))


def _asinh(c: _Math, x: Value) -> Value:
    """log(|x| + sqrt(x^2 + 1)) with x's sign: the sum cancels for large negative x otherwise."""
    ax = c.f("Abs", x)
    r = c.f("Log", c.f("Add", ax, c.f("Sqrt", c.f("Add", c.f("Mul", ax, ax), c.num(1.0)))))
    return c.f("Where", c.f("Less", x, c.num(0.0)), c.f("Neg", r), r)


def _acosh(c: _Math, x: Value) -> Value:
    one = c.num(1.0)
    return c.f("Log", c.f("Add", x, c.f("Sqrt", c.f("Mul", c.f("Sub", x, one), c.f("Add", x, one)))))


def _atanh(c: _Math, x: Value) -> Value:
    one = c.num(1.0)
    return c.f("Mul", c.num(0.5), c.f("Log", c.f("Div", c.f("Add", one, x), c.f("Sub", one, x))))


FORMS = {"Tan": _tan, "Asin": _asin, "Acos": _acos, "Sinh": _sinh, "Cosh": _cosh, "Asinh": _asinh,
         "Acosh": _acosh, "Atanh": _atanh}


def trig(graph: Graph, node: Node) -> Patch | None:
    if node.op not in FORMS:
        return None
    c = _Math(graph, node)
    r = FORMS[node.op](c, node.inputs[0])
    y = node.outputs[0]
    c.nodes.append(Node("Reshape", node.name, [r], [y], {"shape": y.type.shape}))
    return Patch(c.nodes)
