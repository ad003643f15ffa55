"""The `kiln_model` descriptor (compiler/runtime/kiln_model.h) as LLVM globals."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import llvmlite.ir as ir

from ...errors import CompileError
from ..llvm.emit import I8, I32, I64, PTR

ABI_VERSION = 1
MAX_RANK = 8
DTYPE_CODES = {"f32": 1, "f16": 2, "bf16": 3, "i8": 4, "u8": 5, "i32": 6, "i64": 7, "bool": 8}

TENSOR = ir.LiteralStructType([PTR, I32, I32, ir.ArrayType(I64, MAX_RANK)])
WEIGHT = ir.LiteralStructType([PTR, I32, I32, ir.ArrayType(I64, MAX_RANK), I64, I64,
                               ir.ArrayType(I8, 32)])
VARIANT = ir.LiteralStructType([PTR, I32, PTR])
MODEL = ir.LiteralStructType([I32, PTR, I32, PTR, I32, PTR, I32, PTR, I64, I64, I32, PTR])
BUCKETS = ir.LiteralStructType([I32, PTR, PTR, PTR, PTR])
MODEL_SYMBOL = "kiln_model"
BUCKETS_SYMBOL = "kiln_buckets"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class WeightInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int
    sha256: bytes


class _Strings:
    def __init__(self, module: ir.Module) -> None:
        self.module, self.n = module, 0

    def __call__(self, text: str) -> ir.GlobalVariable:
        data = bytearray(text.encode() + b"\0")
        g = ir.GlobalVariable(self.module, ir.ArrayType(I8, len(data)), f"kiln.str.{self.n}")
        self.n += 1
        g.initializer = ir.Constant(g.value_type, data)
        g.global_constant, g.linkage, g.unnamed_addr = True, "private", True
        return g


def _shape(shape: Sequence[int]) -> ir.Constant:
    return ir.Constant(ir.ArrayType(I64, MAX_RANK), list(shape) + [0] * (MAX_RANK - len(shape)))


def _array(module: ir.Module, name: str, ty: ir.Type, items: list[ir.Constant]) -> ir.Value:
    if not items:
        return ir.Constant(PTR, None)
    g = ir.GlobalVariable(module, ir.ArrayType(ty, len(items)), name)
    g.initializer = ir.Constant(g.value_type, items)
    g.global_constant, g.linkage = True, "private"
    return g


def emit_descriptor(module: ir.Module, model_name: str, inputs: list[TensorInfo],
                    outputs: list[TensorInfo], weights: list[WeightInfo], weights_bytes: int,
                    scratch_bytes: int, variants: list[tuple[str, int, ir.Function]],
                    symbol: str = MODEL_SYMBOL) -> None:
    s = _Strings(module)

    def tensor(t: TensorInfo) -> ir.Constant:
        if len(t.shape) > MAX_RANK:
            raise CompileError(f"tensor {t.name} has rank {len(t.shape)} > {MAX_RANK}")
        return ir.Constant(TENSOR, [s(t.name), ir.Constant(I32, DTYPE_CODES[t.dtype]),
                                    ir.Constant(I32, len(t.shape)), _shape(t.shape)])

    def weight(w: WeightInfo) -> ir.Constant:
        return ir.Constant(WEIGHT, [s(w.name), ir.Constant(I32, DTYPE_CODES[w.dtype]),
                                    ir.Constant(I32, len(w.shape)), _shape(w.shape),
                                    ir.Constant(I64, w.offset), ir.Constant(I64, w.nbytes),
                                    ir.Constant(ir.ArrayType(I8, 32), bytearray(w.sha256))])

    ins = _array(module, "kiln.inputs", TENSOR, [tensor(t) for t in inputs])
    outs = _array(module, "kiln.outputs", TENSOR, [tensor(t) for t in outputs])
    ws = _array(module, "kiln.weights", WEIGHT, [weight(w) for w in weights])
    vs = _array(module, "kiln.variants", VARIANT, [
        ir.Constant(VARIANT, [s(name), ir.Constant(I32, mask), fn]) for name, mask, fn in variants])
    g = ir.GlobalVariable(module, MODEL, symbol)
    g.global_constant = True
    g.initializer = ir.Constant(MODEL, [
        ir.Constant(I32, ABI_VERSION), s(model_name), ir.Constant(I32, len(inputs)), ins,
        ir.Constant(I32, len(outputs)), outs, ir.Constant(I32, len(weights)), ws,
        ir.Constant(I64, weights_bytes), ir.Constant(I64, scratch_bytes),
        ir.Constant(I32, len(variants)), vs])


def emit_bucket_table(module: ir.Module, symbols: Sequence[str], pad_values: Sequence[float | None],
                      follows: Sequence[Sequence[tuple[int, int] | None]]) -> None:
    """`kiln_buckets` (kiln_model.h): the descriptors of every shape bucket, smallest first (those
    defined in other buckets' objects are declared here and resolved when the launcher links), each
    input's pad value and each output dim's followed input dim."""
    models = []
    for symbol in symbols:
        g = module.globals.get(symbol)
        if g is None:
            g = ir.GlobalVariable(module, MODEL, symbol)
            g.global_constant = True
        models.append(g)
    table = _array(module, "kiln.buckets", PTR, models)
    g = ir.GlobalVariable(module, BUCKETS, BUCKETS_SYMBOL)
    g.global_constant = True
    padded = _array(module, "kiln.padded", I8, [ir.Constant(I8, int(v is not None)) for v in pad_values])
    values = _array(module, "kiln.pad_values", ir.DoubleType(),
                    [ir.Constant(ir.DoubleType(), float(v or 0)) for v in pad_values])
    cut = [ir.Constant(I32, -1 if f is None else f[0] * MAX_RANK + f[1]) for dims in follows
           for f in list(dims) + [None] * (MAX_RANK - len(dims))]
    g.initializer = ir.Constant(BUCKETS, [ir.Constant(I32, len(symbols)), table, padded, values,
                                          _array(module, "kiln.follows", I32, cut)])
