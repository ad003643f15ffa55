"""Transcendental functions as plain IR (no libm: the object must link without it), written
for scalars and vectors alike so loops around them vectorise."""
from __future__ import annotations

import llvmlite.ir as ir

from .emit import I32, Fn


def _int_type(ty: ir.Type) -> ir.Type:
    return ir.VectorType(I32, ty.count) if isinstance(ty, ir.VectorType) else I32


def _poly(f: Fn, x: ir.Value, coeffs: list[float]) -> ir.Value:
    """Horner: coeffs[0]*x^n + ... + coeffs[n]."""
    acc = f.const_f(coeffs[0], x.type)
    for c in coeffs[1:]:
        acc = f.fmuladd(acc, x, f.const_f(c, x.type))
    return acc


def fmin(f: Fn, a: ir.Value, b: ir.Value) -> ir.Value:
    """min(a, b); NaN when either is (as onnxruntime's Min, Clip and numpy)."""
    smaller = f.b.select(f.b.fcmp_unordered("<", a, b), a, b)  # a when a < b or either is NaN
    return f.b.select(f.b.fcmp_unordered("uno", b, b), b, smaller)


def fmax(f: Fn, a: ir.Value, b: ir.Value) -> ir.Value:
    """max(a, b); NaN when either is (Relu(NaN) is NaN, max pooling over a NaN is NaN)."""
    bigger = f.b.select(f.b.fcmp_unordered(">", a, b), a, b)
    return f.b.select(f.b.fcmp_unordered("uno", b, b), b, bigger)


def clamp(f: Fn, x: ir.Value, lo: float, hi: float) -> ir.Value:
    return fmin(f, fmax(f, x, f.const_f(lo, x.type)), f.const_f(hi, x.type))


def exp(f: Fn, x: ir.Value) -> ir.Value:
    """Cephes expf: range reduction by ln 2, degree-5 polynomial, exponent bits by shifting;
    inf past the largest float's log, 0 below the smallest normal's."""
    b, ty = f.b, x.type
    arg = x
    x = clamp(f, x, -87.3, 88.3)
    fx = f.intrinsic(f"llvm.floor.{f.suffix(ty)}", ty, [
        f.fmuladd(x, f.const_f(1.44269504088896341, ty), f.const_f(0.5, ty))])
    x = f.fmuladd(fx, f.const_f(-0.693359375, ty), x)
    x = f.fmuladd(fx, f.const_f(2.12194440e-4, ty), x)
    z = b.fmul(x, x)
    y = _poly(f, x, [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                     1.6666665459e-1, 5.0000001201e-1])
    y = b.fadd(f.fmuladd(y, z, x), f.const_f(1.0, ty))
    ity = _int_type(ty)
    # A NaN argument's fx is NaN, whose conversion is poison: convert 0 instead (y is NaN anyway).
    n = b.fptosi(b.select(b.fcmp_ordered("ord", fx, fx), fx, f.const_f(0.0, ty)), ity)
    pow2 = b.bitcast(b.shl(b.add(n, f.const_i(127, ity)), f.const_i(23, ity)), ty)
    r = b.select(b.fcmp_ordered(">", arg, f.const_f(88.72283935546875, ty)), f.const_f(float("inf"), ty),
                 b.fmul(y, pow2))
    return b.select(b.fcmp_ordered("<", arg, f.const_f(-87.3, ty)), f.const_f(0.0, ty), r)


def log(f: Fn, x: ir.Value) -> ir.Value:
    """Cephes logf; log(0) = -inf, log(x < 0) = NaN."""
    b, ty = f.b, x.type
    ity = _int_type(ty)
    xi = b.bitcast(fmax(f, x, f.const_f(1.17549435e-38, ty)), ity)
    e = b.sub(b.lshr(xi, f.const_i(23, ity)), f.const_i(126, ity))
    m = b.bitcast(b.or_(b.and_(xi, f.const_i(0x007FFFFF, ity)), f.const_i(0x3F000000, ity)), ty)
    small = b.fcmp_ordered("<", m, f.const_f(0.707106781186547524, ty))
    e = b.sitofp(b.sub(e, b.zext(small, ity)), ty)
    m = b.fsub(b.select(small, b.fadd(m, m), m), f.const_f(1.0, ty))
    z = b.fmul(m, m)
    y = _poly(f, m, [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                     1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                     3.3333331174e-1])
    y = b.fmul(b.fmul(y, m), z)
    y = f.fmuladd(e, f.const_f(-2.12194440e-4, ty), y)
    y = f.fmuladd(z, f.const_f(-0.5, ty), y)
    r = f.fmuladd(e, f.const_f(0.693359375, ty), b.fadd(m, y))
    r = b.select(b.fcmp_ordered("==", x, f.const_f(0.0, ty)), f.const_f(float("-inf"), ty), r)
    r = b.select(b.fcmp_ordered("==", x, f.const_f(float("inf"), ty)), x, r)
    return b.select(b.fcmp_unordered("<", x, f.const_f(0.0, ty)), f.const_f(float("nan"), ty), r)


def tanh(f: Fn, x: ir.Value) -> ir.Value:
    """Rational minimax approximation on [-7.9, 7.9] (as in Eigen), exact for tiny |x|."""
    b, ty = f.b, x.type
    c = clamp(f, x, -7.90531110763549805, 7.90531110763549805)
    x2 = b.fmul(c, c)
    p = b.fmul(c, _poly(f, x2, [-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11,
                                5.12229709037114e-08, 1.48572235717979e-05, 6.37261928875436e-04,
                                4.89352455891786e-03]))
    q = _poly(f, x2, [1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03,
                      4.89352518554385e-03])
    tiny = b.fcmp_ordered("<", f.intrinsic(f"llvm.fabs.{f.suffix(ty)}", ty, [x]), f.const_f(4e-4, ty))
    return b.select(tiny, x, b.fdiv(p, q))


def erf(f: Fn, x: ir.Value) -> ir.Value:
    """Rational approximation on [-4, 4] (as in Eigen/XLA), saturating outside."""
    b = f.b
    c = clamp(f, x, -4.0, 4.0)
    x2 = b.fmul(c, c)
    p = b.fmul(c, _poly(f, x2, [-2.72614225801306e-10, 2.77068142495902e-08, -2.10102402082508e-06,
                                -5.69250639462346e-05, -7.34990630326855e-04, -2.95459980854025e-03,
                                -1.60960333262415e-02]))
    q = _poly(f, x2, [-1.45660718464996e-05, -2.13374055278905e-04, -1.68282697438203e-03,
                      -7.37332916720468e-03, -1.42647390514189e-02])
    return b.fdiv(p, q)


def sigmoid(f: Fn, x: ir.Value) -> ir.Value:
    one = f.const_f(1.0, x.type)
    return f.b.fdiv(one, f.b.fadd(one, exp(f, f.b.fsub(f.const_f(0.0, x.type), x))))



def _fabs(f: Fn, x: ir.Value) -> ir.Value:
    return f.intrinsic(f"llvm.fabs.{f.suffix(x.type)}", x.type, [x])


def _sin_quadrant(f: Fn, x: ir.Value, shift: int) -> ir.Value:
    """sin(x + shift * pi/2): x less the nearest multiple q of pi/2 (three-part Cody-Waite, exact
    for |q| < 2^16), then the Cephes sine or cosine polynomial and sign of quadrant q + shift."""
    b, ty = f.b, x.type
    q = f.intrinsic(f"llvm.rint.{f.suffix(ty)}", ty, [b.fmul(x, f.const_f(0.636619772367581343, ty))])
    r = f.fmuladd(q, f.const_f(-1.5703125, ty), x)
    r = f.fmuladd(q, f.const_f(-4.837512969970703125e-4, ty), r)
    r = f.fmuladd(q, f.const_f(-7.54978995489188216e-8, ty), r)
    z = b.fmul(r, r)
    s = f.fmuladd(b.fmul(r, z), _poly(f, z, [-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1]), r)
    c = f.fmuladd(b.fmul(z, z), _poly(f, z, [2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2]),
                  f.fmuladd(z, f.const_f(-0.5, ty), f.const_f(1.0, ty)))
    # NaN and infinities give a NaN r whatever the quadrant; keep their conversion defined.
    finite = b.fcmp_ordered("<", _fabs(f, q), f.const_f(1e6, ty))
    ity = _int_type(ty)
    k = b.add(b.fptosi(b.select(finite, q, f.const_f(0.0, ty)), ity), f.const_i(shift, ity))
    zero = f.const_i(0, ity)
    r = b.select(b.icmp_signed("!=", b.and_(k, f.const_i(1, ity)), zero), c, s)
    return b.select(b.icmp_signed("!=", b.and_(k, f.const_i(2, ity)), zero), b.fneg(r), r)


def sin(f: Fn, x: ir.Value) -> ir.Value:
    return _sin_quadrant(f, x, 0)


def cos(f: Fn, x: ir.Value) -> ir.Value:
    return _sin_quadrant(f, x, 1)


def atan(f: Fn, x: ir.Value) -> ir.Value:
    """Cephes atanf: |x| reduced below tan(pi/8) by pi/2 - atan(1/|x|) or pi/4 + atan((|x|-1)/(|x|+1))."""
    b, ty = f.b, x.type
    ax = _fabs(f, x)
    one = f.const_f(1.0, ty)
    big = b.fcmp_ordered(">", ax, f.const_f(2.414213562373095, ty))
    mid = b.fcmp_ordered(">", ax, f.const_f(0.4142135623730950, ty))
    t = b.select(big, b.fdiv(f.const_f(-1.0, ty), ax),
                 b.select(mid, b.fdiv(b.fsub(ax, one), b.fadd(ax, one)), ax))
    base = b.select(big, f.const_f(1.5707963267948966, ty), b.select(mid, f.const_f(0.7853981633974483, ty),
                                                                     f.const_f(0.0, ty)))
    z = b.fmul(t, t)
    p = _poly(f, z, [8.05374449538e-2, -1.38776856032e-1, 1.99777106478e-1, -3.33329491539e-1])
    r = b.fadd(base, f.fmuladd(b.fmul(p, z), t, t))
    return b.select(b.fcmp_ordered("<", x, f.const_f(0.0, ty)), b.fneg(r), r)
