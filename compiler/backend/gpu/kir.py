"""The kernel description: a small structured IR under the graph IR.

A kernel runs `grid` blocks of `block` threads (1-D). Thread-private values are `Let` bindings;
they never cross a `Barrier` or `WarpReduce` (the CPU lowering runs each block's threads phase by
phase between those), so anything that must survive one lives in a `Local` array. Statements that
contain a barrier must be reached by every thread of the block (uniform control flow)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

INDEX = "i64"


class Expr:
    dtype: str

    def _bin(self, op: str, other, swap: bool = False) -> "Bin":
        other = lift(other, self.dtype)
        return Bin(op, other, self) if swap else Bin(op, self, other)

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __floordiv__(self, o): return self._bin("div", o)   # indices are non-negative
    def __truediv__(self, o): return self._bin("div", o)
    def __mod__(self, o): return self._bin("rem", o)
    def __lt__(self, o): return self._bin("lt", o)
    def __le__(self, o): return self._bin("le", o)
    def __gt__(self, o): return self._bin("gt", o)
    def __ge__(self, o): return self._bin("ge", o)
    def __and__(self, o): return self._bin("and", o)
    def __or__(self, o): return self._bin("or", o)
    def eq(self, o) -> "Bin": return self._bin("eq", o)
    def max(self, o) -> "Bin": return self._bin("max", o)
    def min(self, o) -> "Bin": return self._bin("min", o)


@dataclass(frozen=True, eq=False)
class Const(Expr):
    value: float | int | bool
    dtype: str = INDEX


@dataclass(frozen=True, eq=False)
class Sym(Expr):
    """A loop variable, a `Let`, or a special: "tid" (thread in block), "bid" (block in grid)."""
    name: str
    dtype: str = INDEX


@dataclass(frozen=True, eq=False)
class Bin(Expr):
    op: str
    a: Expr
    b: Expr

    @property
    def dtype(self) -> str:
        return "bool" if self.op in ("lt", "le", "gt", "ge", "eq") else self.a.dtype


@dataclass(frozen=True, eq=False)
class Select(Expr):
    cond: Expr
    a: Expr
    b: Expr

    @property
    def dtype(self) -> str:
        return self.a.dtype


@dataclass(frozen=True, eq=False)
class Cast(Expr):
    value: Expr
    dtype: str


@dataclass(frozen=True)
class Global:
    """A device buffer: kernel argument `arg` (0 weights, 1 activations) at byte `offset`."""
    arg: int
    offset: int
    dtype: str


@dataclass(frozen=True)
class Shared:
    """Per-block memory (CUDA shared memory, AMDGPU LDS)."""
    name: str
    dtype: str
    size: int


@dataclass(frozen=True)
class Local:
    """Per-thread array (registers once promoted); indices should be build-time constants."""
    name: str
    dtype: str
    size: int


Buffer = Union[Global, Shared, Local]


@dataclass(frozen=True, eq=False)
class Load(Expr):
    buf: Buffer
    index: Expr

    @property
    def dtype(self) -> str:
        return self.buf.dtype


@dataclass(frozen=True, eq=False)
class Apply(Expr):
    """A graph-IR fused program (kiln.compiler.ir.fused.Instr tuple) on operand expressions;
    `acc` is the value the program's ("acc",) refers to (a GEMM accumulator)."""
    program: tuple
    operands: tuple[Expr | None, ...]
    dtype: str
    acc: Expr | None = None
    consts: tuple[float | None, ...] = ()


@dataclass(frozen=True, eq=False)
class Let:
    name: str
    value: Expr


@dataclass(frozen=True, eq=False)
class Store:
    buf: Buffer
    index: Expr
    value: Expr


@dataclass(frozen=True, eq=False)
class For:
    var: str
    stop: Expr | int
    body: tuple
    start: Expr | int = 0
    step: int = 1
    unroll: bool = False    # expanded at lowering time: `var` is a constant in each copy


@dataclass(frozen=True, eq=False)
class If:
    cond: Expr
    body: tuple
    orelse: tuple = ()


@dataclass(frozen=True, eq=False)
class Barrier:
    pass


@dataclass(frozen=True, eq=False)
class WarpReduce:
    """local[index] := op over the 32 lanes of each warp (a butterfly of shuffles)."""
    op: str           # "add" | "mul" | "max" | "min"
    buf: Local
    index: int = 0


Stmt = Union[Let, Store, For, If, Barrier, WarpReduce]
WARP = 32


@dataclass(frozen=True, eq=False)
class Kernel:
    name: str
    kind: str                  # "gemm", "conv", "elementwise", ... (for reports)
    grid: int
    block: int
    body: tuple
    shared: tuple[Shared, ...] = ()
    locals: tuple[Local, ...] = ()
    nodes: tuple[str, ...] = ()   # graph nodes this launch computes

    @property
    def shared_bytes(self) -> int:
        return sum(4 * s.size if s.dtype != "i64" else 8 * s.size for s in self.shared)


def lift(x, dtype: str = INDEX) -> Expr:
    if isinstance(x, Expr):
        return x
    return Const(float(x), "f32") if dtype == "f32" else Const(int(x), dtype if dtype != "bool" else INDEX)


def syncs(stmt) -> bool:
    """Whether a statement is, or contains, a barrier or warp collective."""
    if isinstance(stmt, (Barrier, WarpReduce)):
        return True
    if isinstance(stmt, For):
        return any(syncs(s) for s in stmt.body)
    if isinstance(stmt, If):
        return any(syncs(s) for s in stmt.body + stmt.orelse)
    return False


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)
