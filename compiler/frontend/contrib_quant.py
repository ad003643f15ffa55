"""com.microsoft quantized ops that onnxruntime's quantizer (QOperator format) and its graph optimizer
write: each dequantizes to f32, runs the float op and quantizes again, or, for the matrix products,
multiplies the zero-point-shifted integer levels exactly in f32 and scales once, as onnxruntime does."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import CompileError
from ..ir.graph import Value
from .composites import _Build
from .quant import _dynamic_quantize, _level_range


def _deq(b: _Build, x: Value, scale: Value, zp: Value | None) -> Value:
    return b("DequantizeLinear", x, scale, zp, axis=1, block_size=0)


def _quant(b: _Build, x: Value, scale: Value, zp: Value | None, last: bool = True) -> Value:
    lo, hi = _level_range(b.im, b.name, [x, scale, zp], {})
    return b("QuantizeLinear", x, scale, zp, axis=1, block_size=0, lo=lo, hi=hi, last=last)


def _levels(b: _Build, x: Value, zp: Value | None) -> Value:
    """x - zero point as exact f32 integers."""
    x = b("Cast", x, to="f32")
    return x if zp is None else b("Sub", x, b("Cast", zp, to="f32"))


def _single(build: Callable[[_Build, list, dict], Value]) -> Callable:
    def mapper(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        build(_Build(im, name, outs[0]), ins + [None] * 9, attrs)
    return mapper


def _binary(op: str) -> Callable:
    """QLinearAdd / QLinearMul (A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp)."""
    def build(b: _Build, ins: list, attrs: dict) -> Value:
        return _quant(b, b(op, _deq(b, *ins[0:3]), _deq(b, *ins[3:6])), ins[6], ins[7])
    return _single(build)


def _unary(float_op: Callable[[_Build, Value, dict], Value]) -> Callable:
    """(X, X_scale, X_zp, Y_scale, Y_zp): an elementwise float op between dequantize and quantize."""
    return _single(lambda b, ins, a: _quant(b, float_op(b, _deq(b, *ins[0:3]), a), ins[3], ins[4]))


def _leaky(b: _Build, x: Value, attrs: dict) -> Value:
    slope = b.const(attrs.get("alpha", 0.01))
    return b("Add", b("Max", x, b.const(0)), b("Mul", b("Min", x, b.const(0)), slope))


def _global_average_pool(b: _Build, x: Value, attrs: dict) -> Value:
    if attrs.get("channels_last", 0):
        raise CompileError(f"com.microsoft.QLinearGlobalAveragePool node {b.name}: channels_last=1 is not supported")
    return b("ReduceMean", x, global_pool=True, keepdims=1)


def _concat(b: _Build, ins: list, attrs: dict) -> Value:
    """(Y_scale, Y_zp, then X, X_scale, X_zp per input)."""
    parts = [p for p in ins[2:] if p is not None]
    pieces = [_deq(b, *parts[i:i + 3]) for i in range(0, len(parts), 3)]
    return _quant(b, b("Concat", *pieces, axis=attrs["axis"]), ins[0], ins[1])


def _qgemm(b: _Build, ins: list, attrs: dict) -> Value:
    """(A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp): alpha * (A - a_zp) @ (B - b_zp) + C in the
    accumulator, scaled by a_scale * b_scale; quantized by y_scale/y_zp, else left in f32."""
    a = _levels(b, ins[0], ins[2])
    if attrs.get("transA", 0):
        a = b("Transpose", a, perm=(1, 0))
    w = b("Cast", ins[3], to="f32")
    if attrs.get("transB", 0):
        w = b("Transpose", w, perm=(1, 0))
    if ins[5] is not None:
        w = b("Sub", w, b("Cast", ins[5], to="f32"))
    acc = b("MatMul", a, w)
    if ins[6] is not None:
        acc = b("Add", acc, b("Cast", ins[6], to="f32"))
    scale = b("Mul", b("Mul", ins[1], ins[4]), b.const(attrs.get("alpha", 1.0)))
    y = b("Mul", acc, scale, last=ins[7] is None)
    return y if ins[7] is None else _quant(b, y, ins[7], ins[8])


def _integer_to_float(b: _Build, a: Value, a_scale: Value, a_zp: Value | None, w: Value, w_scale: Value,
                      w_zp: Value | None, bias: Value | None) -> Value:
    y = b("Mul", b("MatMul", _levels(b, a, a_zp), _levels(b, w, w_zp)), b("Mul", a_scale, w_scale))
    return y if bias is None else b("Add", y, bias)


def _matmul_integer_to_float(b: _Build, ins: list, attrs: dict) -> Value:
    """(A, B, a_scale, b_scale, a_zp, b_zp, bias)."""
    return b("Identity", _integer_to_float(b, ins[0], ins[2], ins[4], ins[1], ins[3], ins[5], ins[6]), last=True)


def _dynamic_quantize_matmul(b: _Build, ins: list, attrs: dict) -> Value:
    """(A, B, b_scale, b_zp, bias): A quantized to uint8 as DynamicQuantizeLinear does."""
    names = [f"{b.out}.aq", f"{b.out}.ascale", f"{b.out}.azp"]
    _dynamic_quantize(b.im, b.name, [ins[0]], names, {})
    a, a_scale, a_zp = (b.im.values[n] for n in names)
    return b("Identity", _integer_to_float(b, a, a_scale, a_zp, ins[1], ins[2], ins[3], ins[4]), last=True)


def _dynamic_quantize_lstm(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """(X, W, R, B, sequence_lens, initial_h, initial_c, P, W_scale, W_zp, R_scale, R_zp), W and R as
    [directions, in, 4 * hidden]: kiln's LSTM on W and R's integer levels in its [directions, 4 * hidden,
    in] layout, scales per direction or per column as [directions, 1, 4 * hidden]."""
    ins = ins + [None] * 12
    b = _Build(im, name, outs[0])
    per_direction = Value(f"{b.out}.per_direction",
                          const=np.array([2 if attrs.get("direction") == "bidirectional" else 1, 1, -1], np.int64))

    def levels(w: Value, zp: Value | None) -> Value:
        w = b("Cast", w, to="f32")
        if zp is not None:
            w = b("Sub", w, b("Reshape", b("Cast", zp, to="f32"), per_direction))
        return b("Transpose", w, perm=(0, 2, 1))

    scales = [b("Reshape", ins[i], per_direction) for i in (8, 10)]
    inputs = [ins[0], levels(ins[1], ins[9]), levels(ins[2], ins[11]), *ins[3:8], *scales]
    named = [o or f"{name}.LSTM.omitted{i}" for i, o in enumerate(outs)]
    im.emit("LSTM", name, inputs, named, dict(attrs, dynamic_quantize=1))


QUANT_MAPPERS: dict[str, Callable] = {
    "QLinearAdd": _binary("Add"),
    "QLinearMul": _binary("Mul"),
    "QLinearSigmoid": _unary(lambda b, x, a: b("Sigmoid", x)),
    "QLinearLeakyRelu": _unary(_leaky),
    "QLinearGlobalAveragePool": _unary(_global_average_pool),
    "QLinearConcat": _single(_concat),
    "QGemm": _single(_qgemm),
    "MatMulIntegerToFloat": _single(_matmul_integer_to_float),
    "DynamicQuantizeMatMul": _single(_dynamic_quantize_matmul),
    "DynamicQuantizeLSTM": _dynamic_quantize_lstm,
}
