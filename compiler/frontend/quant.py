"""The quantized ops. QuantizeLinear and DequantizeLinear: the integer type of each quantized tensor
(from its zero point, or output_dtype, else uint8) becomes the IR op's level range, since kiln holds
quantized activations between them as f32 levels (exact below 2^24). DynamicQuantizeLinear as f32
steps; MatMulInteger, QLinearMatMul, ConvInteger and QLinearConv map to IR ops of their own names
(ir/ops_qint.py) on uint8/int8 tensors."""
from __future__ import annotations

import itertools
from typing import Callable

import numpy as np
import onnx

from ..errors import CompileError
from ..ir.graph import Value

# ONNX element type -> numpy integer type, for output_dtype (opset 21+).
_OUTPUT_DTYPES = {onnx.TensorProto.INT8: np.int8, onnx.TensorProto.UINT8: np.uint8,
                  onnx.TensorProto.INT16: np.int16, onnx.TensorProto.UINT16: np.uint16}


def _level_range(im, name: str, ins: list, attrs: dict) -> tuple[int, int]:
    zp = ins[2] if len(ins) > 2 else None
    dtype = np.dtype(np.uint8)
    if zp is not None:
        dtype = im.int_dtypes.get(zp.name, dtype)
    elif attrs.get("output_dtype"):
        if attrs["output_dtype"] not in _OUTPUT_DTYPES:
            raise CompileError(f"QuantizeLinear node {name}: unsupported output_dtype "
                               f"{onnx.TensorProto.DataType.Name(attrs['output_dtype'])}; "
                               f"supported: int8, uint8, int16, uint16")
        dtype = np.dtype(_OUTPUT_DTYPES[attrs["output_dtype"]])
    if dtype.kind not in "iu" or dtype.itemsize > 2:
        raise CompileError(f"QuantizeLinear node {name}: unsupported quantized type {dtype}; "
                           f"supported: int8, uint8, int16, uint16")
    return int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)


def _quantize(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    lo, hi = _level_range(im, name, ins, attrs)
    im.emit("QuantizeLinear", name, ins, outs, {"axis": attrs.get("axis", 1), "block_size": attrs.get("block_size", 0),
                                                "lo": lo, "hi": hi})


def _dequantize(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    im.emit("DequantizeLinear", name, ins, outs, {"axis": attrs.get("axis", 1),
                                                  "block_size": attrs.get("block_size", 0)})


def _dynamic_quantize(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
    """uint8 levels of x over its range widened to hold 0, as onnxruntime computes them in f32:
    scale (max - min) / 255, or 1 when the range is empty; zero point
    round(clamp(-min / scale, 0, 255)); y = clamp(round(x / scale) + zero point, 0, 255)."""
    count = itertools.count(1)

    def step(op: str, *inputs: Value, out: str = "", **kw) -> Value:
        return im.emit(op, name, list(inputs), [out or f"{outs[0]}.{op.lower()}{next(count)}"], kw)[0]

    def const(v: float) -> Value:
        return Value(f"{outs[0]}.c{next(count)}", const=np.float32(v))

    def levels(v: Value, out: str = "") -> Value:
        return step("Cast", step("Min", step("Max", v, const(0)), const(255)), out=out, to="u8")

    x = ins[0]
    lo = step("Min", step("ReduceMin", x, keepdims=0), const(0))
    spread = step("Sub", step("Max", step("ReduceMax", x, keepdims=0), const(0)), lo)
    scale = step("Where", step("Equal", spread, const(0)), const(1), step("Div", spread, const(255), exact=1),
                 out=outs[1])
    zero = step("Round", step("Min", step("Max", step("Neg", step("Div", lo, scale, exact=1)), const(0)), const(255)))
    levels(zero, outs[2])
    levels(step("Add", step("Round", step("Div", x, scale, exact=1)), zero), outs[0])


def _same(op: str, operands: tuple[int, int]) -> Callable:
    def mapper(im, name: str, ins: list, outs: list[str], attrs: dict) -> None:
        ins = [_as_bytes(im, name, v) if i in operands else v for i, v in enumerate(ins)]
        im.emit(op, name, ins, outs, attrs)
    return mapper


def _as_bytes(im, name: str, v: Value) -> Value:
    """A QuantizeLinear's f32 levels as the uint8/int8 tensor the integer ops take (QOperator models
    chain QuantizeLinear straight into QLinearConv)."""
    node = v.producer
    if node is None or node.op != "QuantizeLinear" or node.attr("hi", 0) > 255:
        return v
    to = "i8" if node.attr("lo", 0) < 0 else "u8"
    return im.emit("Cast", name, [v], [f"{v.name}.{to}"], {"to": to})[0]


MAPPERS = {"QuantizeLinear": _quantize, "DequantizeLinear": _dequantize, "DynamicQuantizeLinear": _dynamic_quantize,
           "MatMulInteger": _same("MatMulInteger", (0, 1)), "QLinearMatMul": _same("QLinearMatMul", (0, 3)),
           "ConvInteger": _same("ConvInteger", (0, 1)), "QLinearConv": _same("QLinearConv", (0, 3))}
