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

    def add_cast(self, x: Value, to: str) -> Value:
        out = self.graph.value(f"{self.node.outputs[0].name}.cast")
        self.nodes.append(Node("Cast", self.node.name, [x], [out], {"to": to}))
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


def _trunc(c: _Math, q: Value) -> Value:
    return c.f("Where", c.f("Less", q, c.num(0.0)), c.f("Ceil", q), c.f("Floor", q))


def _split(c: _Math, x: Value) -> tuple[Value, Value]:
    """Veltkamp: x = hi + lo exactly, each with 12 significant bits."""
    t = c.f("Mul", x, c.num(4097.0))
    hi = c.f("Sub", t, c.f("Sub", t, x))
    return hi, c.f("Sub", x, hi)


def _product_error(c: _Math, x: Value, y: Value, p: Value) -> Value:
    """Dekker: x * y - p exactly, for p = x * y rounded to f32."""
    xh, xl = _split(c, x)
    yh, yl = _split(c, y)
    e = c.f("Add", c.f("Sub", c.f("Mul", xh, yh), p), c.f("Mul", xh, yl))
    return c.f("Add", c.f("Add", e, c.f("Mul", xl, yh)), c.f("Mul", xl, yl))


def _reduce(c: _Math, x: Value, b: Value) -> Value:
    """x - b trunc(x / b), exact to within one b of the remainder while |x / b| < 2^24, and to
    within |x / b| 2^-24 b past it, which a second reduction takes back."""
    q = _trunc(c, c.f("Div", x, b))
    p = c.f("Mul", b, q)
    return c.f("Sub", c.f("Sub", x, p), _product_error(c, b, q, p))


def float_mod(graph: Graph, node: Node) -> Patch | None:
    """a - b trunc(a / b) (C's fmod, exact while |a / b| < 2^48) in two reductions, each product's
    rounding error taken back exactly; one |b| back toward a where a rounded quotient overshot;
    a finite a is its own remainder by an infinite b; fmod = 0 then moves a remainder whose sign
    differs from the divisor's by b (Python's %). NaN for an infinite a or zero b falls out."""
    if node.op != "Mod" or node.inputs[0].type.dtype != "f32":
        return None
    c, (a, b) = _Math(graph, node), node.inputs
    zero = c.num(0.0)
    r = _reduce(c, _reduce(c, a, b), b)
    ab = c.f("Abs", b)
    back = c.f("Where", c.f("Less", a, zero), c.f("Sub", r, ab), c.f("Add", r, ab))
    r = c.f("Where", c.f("Less", c.f("Mul", r, a), zero), back, r)
    finite_a = c.f("Less", c.f("Abs", a), c.num(np.inf))
    r = c.f("Where", c.f("And", c.f("Equal", ab, c.num(np.inf)), finite_a), a, r)
    if not node.attr("fmod", 0):
        differ = c.f("Xor", c.f("Less", r, zero), c.f("Less", b, zero))
        moves = c.f("And", c.f("Not", c.f("Equal", r, zero)), differ)
        r = c.f("Where", moves, c.f("Add", r, b), r)
    y = node.outputs[0]
    c.nodes.append(Node("Reshape", node.name, [r], [y], {"shape": y.type.shape}))
    return Patch(c.nodes)


def _int_power(c: _Math, x: Value, e: Value, dtype: str) -> Value:
    """x^e by squaring over the exponent's bits (e < 2^bits; any larger e overflows unless |x| <= 1,
    where the low bits already decide); a negative e gives 1/x^|e| truncated: 0 unless |x| = 1."""
    np_type = np.int64 if dtype == "i64" else np.int32
    k = lambda v: c.graph.const("k", np_type(v))  # noqa: E731
    bits = 6 if dtype == "i64" else 5
    acc, square, rest = k(1), x, c.f("Abs", e)
    for i in range(bits):
        bit = c.f("Equal", c.f("BitwiseAnd", rest, k(1)), k(1))
        acc = c.f("Where", bit, c.f("Mul", acc, square), acc)
        if i < bits - 1:
            square, rest = c.f("Mul", square, square), c.f("Div", rest, k(2))
    unit = c.f("Equal", c.f("Abs", x), k(1))
    negative = c.f("Where", unit, acc, k(0))
    return c.f("Where", c.f("Less", e, k(0)), negative, acc)


def int_pow(graph: Graph, node: Node) -> Patch | None:
    """Integer Pow as onnxruntime computes it: exact powers for an integral exponent; a fractional
    float exponent's power truncated toward zero."""
    if node.op != "Pow" or node.inputs[0].type.dtype not in ("i32", "i64"):
        return None
    c, (x, e) = _Math(graph, node), node.inputs
    dtype = x.type.dtype
    if e.type.dtype == "f32":
        whole = c.add_cast(e, dtype)
        real = c.add_cast(c.f("Pow", c.add_cast(x, "f32"), e), dtype)
        r = c.f("Where", c.f("Equal", c.f("Floor", e), e), _int_power(c, x, whole, dtype), real)
    else:
        r = _int_power(c, x, e if e.type.dtype == dtype else c.add_cast(e, dtype), dtype)
    y = node.outputs[0]
    c.nodes.append(Node("Reshape", node.name, [r], [y], {"shape": y.type.shape}))
    return Patch(c.nodes)


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
