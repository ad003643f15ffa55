"""Evaluates a fused elementwise program (IR `Instr` list) on scalars or vectors."""
from __future__ import annotations

import math
from typing import Callable

import llvmlite.ir as ir

from ...errors import CompileError
from ...ir.fused import Instr, Ref
from . import mathfn as m
from .emit import I1, I8, MEM_TYPES, Fn

Operand = tuple[ir.Value, str]           # value, dtype
Loader = Callable[[int], Operand]         # input index -> value in registers
ConstOf = Callable[[int], float | None]   # input index -> scalar build-time value, if any


def register_type(dtype: str, like: ir.Type) -> ir.Type:
    elem = I1 if dtype == "bool" else MEM_TYPES[dtype]
    return ir.VectorType(elem, like.count) if isinstance(like, ir.VectorType) else elem


def from_memory(f: Fn, value: ir.Value, dtype: str) -> ir.Value:
    return f.b.icmp_unsigned("!=", value, f.const_i(0, value.type)) if dtype == "bool" else value


def to_memory(f: Fn, value: ir.Value, dtype: str) -> ir.Value:
    if dtype != "bool":
        return value
    ty = ir.VectorType(I8, value.type.count) if isinstance(value.type, ir.VectorType) else I8
    return f.b.zext(value, ty)


def run(f: Fn, program: tuple[Instr, ...], load: Loader, const_of: ConstOf,
        acc: Operand | None = None) -> Operand:
    temps: list[Operand] = []

    def arg(ref: Ref) -> Operand:
        if ref[0] == "acc":
            return acc
        return temps[ref[1]] if ref[0] == "t" else load(ref[1])

    for instr in program:
        ops = [arg(r) for r in instr.args]
        exponent = const_of(instr.args[1][1]) if instr.op == "Pow" and instr.args[1][0] == "in" else None
        temps.append(_apply(f, instr, ops, exponent))
    return temps[-1] if temps else acc


UNSIGNED = ("u8", "bool")


def cast(f: Fn, x: ir.Value, src: str, dst: str) -> ir.Value:
    b, ty = f.b, register_type(dst, x.type)
    if src == dst:
        return x
    if src == "bool":
        return b.uitofp(x, ty) if dst == "f32" else b.zext(x, ty)
    if dst == "bool":
        zero = f.const_f(0.0, x.type) if src == "f32" else f.const_i(0, x.type)
        return b.fcmp_unordered("!=", x, zero) if src == "f32" else b.icmp_signed("!=", x, zero)
    if src == "f32":
        # 8-bit targets wrap the 32-bit conversion, as C's float -> int -> (u)int8 casts do.
        narrow = MEM_TYPES[dst].width < 32
        wide = b.fptosi(x, register_type("i32", x.type) if narrow else ty)
        return b.trunc(wide, ty) if narrow else wide
    if dst == "f32":
        return (b.uitofp if src in UNSIGNED else b.sitofp)(x, ty)
    if MEM_TYPES[dst].width < MEM_TYPES[src].width:
        return b.trunc(x, ty)
    if MEM_TYPES[dst].width == MEM_TYPES[src].width:
        return x
    return (b.zext if src in UNSIGNED else b.sext)(x, ty)


def _pow(f: Fn, x: ir.Value, y: ir.Value, exponent: float | None) -> ir.Value:
    b, ty = f.b, x.type
    if exponent is not None and exponent == int(exponent) and abs(exponent) <= 8:
        n = int(abs(exponent))
        r, p = f.const_f(1.0, ty), x
        while n:
            r = b.fmul(r, p) if n & 1 else r
            p, n = b.fmul(p, p), n >> 1
        return b.fdiv(f.const_f(1.0, ty), r) if exponent < 0 else r
    if exponent == 0.5:
        return f.intrinsic(f"llvm.sqrt.{f.suffix(ty)}", ty, [x])
    ax = f.intrinsic(f"llvm.fabs.{f.suffix(ty)}", ty, [x])
    r = m.exp(f, b.fmul(y, m.log(f, ax)))
    r = b.select(b.fcmp_ordered("==", ax, f.const_f(0.0, ty)),
                 b.select(b.fcmp_ordered(">", y, f.const_f(0.0, ty)), f.const_f(0.0, ty),
                          f.const_f(math.inf, ty)), r)
    # Negative base: defined for integral exponents only, negative for odd ones.
    fl = f.intrinsic(f"llvm.floor.{f.suffix(ty)}", ty, [y])
    integral = b.fcmp_ordered("==", fl, y)
    half = b.fmul(y, f.const_f(0.5, ty))
    odd = b.fcmp_ordered("!=", f.intrinsic(f"llvm.floor.{f.suffix(ty)}", ty, [half]), half)
    neg = b.select(odd, b.fsub(f.const_f(0.0, ty), r), r)
    neg = b.select(integral, neg, f.const_f(math.nan, ty))
    r = b.select(b.fcmp_ordered("<", x, f.const_f(0.0, ty)), neg, r)
    return b.select(b.fcmp_ordered("==", y, f.const_f(0.0, ty)), f.const_f(1.0, ty), r)


# rint rounds halves to even in the default rounding mode, as ONNX's Round.
ROUNDING = {"Floor": "floor", "Ceil": "ceil", "Round": "rint"}


def _float_op(f: Fn, instr: Instr, xs: list[ir.Value], exponent: float | None) -> ir.Value:
    b, x, ty = f.b, xs[0], xs[0].type
    c = lambda v: f.const_f(v, ty)  # noqa: E731
    op = instr.op
    if op == "Relu":
        return m.fmax(f, x, c(0.0))
    if op in ("Sqrt", "Abs"):
        return f.intrinsic(f"llvm.{'sqrt' if op == 'Sqrt' else 'fabs'}.{f.suffix(ty)}", ty, [x])
    if op in ("Exp", "Log", "Tanh", "Erf", "Sigmoid", "Sin", "Cos", "Atan"):
        return getattr(m, op.lower())(f, x)
    if op in ROUNDING:
        return f.intrinsic(f"llvm.{ROUNDING[op]}.{f.suffix(ty)}", ty, [x])
    if op == "Neg":
        return b.fneg(x)
    if op == "Gelu":
        if instr.attr("approximate", "none") == "tanh":
            inner = b.fmul(c(math.sqrt(2 / math.pi)), f.fmuladd(b.fmul(b.fmul(x, x), x), c(0.044715), x))
            t = m.tanh(f, inner)
        else:
            t = m.erf(f, b.fmul(x, c(1 / math.sqrt(2))))
        return b.fmul(b.fmul(x, c(0.5)), b.fadd(t, c(1.0)))
    if op == "HardSigmoid":
        return m.clamp(f, f.fmuladd(x, c(instr.attr("alpha", 0.2)), c(instr.attr("beta", 0.5))), 0.0, 1.0)
    if op == "HardSwish":
        return b.fmul(x, m.clamp(f, f.fmuladd(x, c(1 / 6), c(0.5)), 0.0, 1.0))
    y = xs[1]
    if op == "Pow":
        return _pow(f, x, y, exponent)
    fn = {"Add": b.fadd, "Sub": b.fsub, "Mul": b.fmul, "Div": b.fdiv,
          "Max": lambda p, q: m.fmax(f, p, q), "Min": lambda p, q: m.fmin(f, p, q)}[op]
    return fn(x, y)


def _bit_shift(f: Fn, x: ir.Value, y: ir.Value, direction: str, unsigned: bool) -> ir.Value:
    """Out-of-range shifts (negative ones included, as unsigned) give 0, or x's sign to the right;
    LLVM's own shifts by the width or more are poison."""
    b, width = f.b, f.const_i(x.type.element.width if isinstance(x.type, ir.VectorType) else x.type.width, x.type)
    out = b.icmp_unsigned(">=", y, width)
    if direction == "RIGHT" and unsigned:
        return b.select(out, f.const_i(0, x.type), b.lshr(x, b.select(out, f.const_i(0, x.type), y)))
    if direction == "RIGHT":
        return b.ashr(x, b.select(out, b.sub(width, f.const_i(1, x.type)), y))
    return b.select(out, f.const_i(0, x.type), b.shl(x, b.select(out, f.const_i(0, x.type), y)))


def _int_op(f: Fn, instr: Instr, xs: list[ir.Value], dtype: str) -> ir.Value:
    b, x = f.b, xs[0]
    zero = f.const_i(0, x.type)
    op = instr.op
    icmp = b.icmp_unsigned if dtype in UNSIGNED else b.icmp_signed
    if op == "Relu":
        return b.select(icmp(">", x, zero), x, zero)
    if op == "Neg":
        return b.sub(zero, x)
    if op == "Abs":
        return b.select(icmp("<", x, zero), b.sub(zero, x), x)
    if op == "BitwiseNot":
        return b.not_(x)
    if op == "BitShift":
        return _bit_shift(f, x, xs[1], instr.attr("direction"), dtype in UNSIGNED)
    binary = {"BitwiseAnd": b.and_, "BitwiseOr": b.or_, "BitwiseXor": b.xor, "Add": b.add, "Sub": b.sub, "Mul": b.mul,
              "Div": b.udiv if dtype in UNSIGNED else b.sdiv,
              "Max": lambda p, q: b.select(icmp(">", p, q), p, q),
              "Min": lambda p, q: b.select(icmp("<", p, q), p, q)}
    if op not in binary:
        raise CompileError(f"{op} on integer tensors is not supported")
    return binary[op](x, xs[1])


CMP = {"Equal": "==", "Less": "<", "Greater": ">", "LessOrEqual": "<=", "GreaterOrEqual": ">="}


def _compare(f: Fn, op: str, x: ir.Value, y: ir.Value, dtype: str) -> ir.Value:
    """Ordered for floats: every comparison with NaN is false."""
    if dtype == "f32":
        return f.b.fcmp_ordered(CMP[op], x, y)
    return (f.b.icmp_unsigned if dtype in UNSIGNED else f.b.icmp_signed)(CMP[op], x, y)


def _logic(f: Fn, op: str, xs: list[ir.Value]) -> ir.Value:
    b = f.b
    if op == "Not":
        return b.xor(xs[0], f.const_i(1, xs[0].type))
    return {"And": b.and_, "Or": b.or_, "Xor": b.xor}[op](xs[0], xs[1])


def _apply(f: Fn, instr: Instr, ops: list[Operand], exponent: float | None) -> Operand:
    values = [v for v, _ in ops]
    dtype = ops[0][1]
    if instr.op == "Identity":
        return ops[0]
    if instr.op == "Cast":
        return cast(f, values[0], dtype, instr.attr("to")), instr.attr("to")
    if instr.op == "BitCast":
        to = instr.attr("to")
        return (values[0] if dtype == to else f.b.bitcast(values[0], register_type(to, values[0].type))), to
    if instr.op == "Where":
        return f.b.select(values[0], values[1], values[2]), ops[1][1]
    if instr.op in CMP:
        return _compare(f, instr.op, values[0], values[1], dtype), "bool"
    if instr.op in ("Not", "And", "Or", "Xor"):
        return _logic(f, instr.op, values), "bool"
    if dtype == "f32":
        if instr.op == "Pow" and ops[1][1] != "f32":
            values[1] = cast(f, values[1], ops[1][1], "f32")
        return _float_op(f, instr, values, exponent), "f32"
    if dtype == "bool":
        raise CompileError(f"{instr.op} on bool tensors is not supported")
    return _int_op(f, instr, values, dtype), dtype

