"""Fused elementwise programs and strided views: the IR form of fusion.

A `Fused` node evaluates a small program per output element; each operand is read through a
`View` (broadcast, transpose, slice and expand are all views). Conv and MatMul nodes carry the
same kind of program as an epilogue applied to their accumulator ("acc")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .graph import Node, TensorType
from .registry import op

Ref = tuple  # ("in", k) | ("t", j) | ("acc",)
ACC: Ref = ("acc",)


@dataclass(frozen=True)
class Instr:
    op: str
    args: tuple[Ref, ...]
    attrs: tuple[tuple[str, Any], ...] = ()

    def attr(self, key: str, default: Any = None) -> Any:
        return dict(self.attrs).get(key, default)


@dataclass(frozen=True)
class View:
    """Index map from an output index to a source index: source[k] = start[k] + sum over the
    output dims d mapped to k (dims[d] = (k, step)) of step * out[d]; k == -1 broadcasts."""

    start: tuple[int, ...]
    dims: tuple[tuple[int, int], ...]

    @staticmethod
    def broadcast(src: tuple[int, ...], out: tuple[int, ...]) -> "View":
        lead = len(out) - len(src)
        dims = tuple((d - lead, 1) if d >= lead and src[d - lead] != 1 else (-1, 0)
                     for d in range(len(out)))
        return View((0,) * len(src), dims)

    def compose(self, inner: "View") -> "View":
        """This view reads a tensor that `inner` reads from its own source: chain them."""
        start = list(inner.start)
        for k, s in enumerate(self.start):
            kk, step = inner.dims[k]
            if kk >= 0:
                start[kk] += step * s
        dims = []
        for k, step in self.dims:
            kk, step2 = inner.dims[k] if k >= 0 else (-1, 0)
            dims.append((kk, step * step2) if kk >= 0 else (-1, 0))
        return View(tuple(start), tuple(dims))

    def is_identity(self, src: tuple[int, ...], out: tuple[int, ...]) -> bool:
        return src == out and self == View.broadcast(src, out)

    def strides(self, src: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """(element offset, element stride per output dim) into a contiguous source."""
        cs = np.cumprod((1,) + src[::-1])[:-1][::-1] if src else ()
        offset = int(sum(int(c) * s for c, s in zip(cs, self.start)))
        return offset, tuple(int(cs[k]) * step if k >= 0 else 0 for k, step in self.dims)


def result_ref(program: tuple[Instr, ...]) -> Ref:
    return ("t", len(program) - 1) if program else ACC


def program_text(node: Node) -> str:
    return "+".join(i.op for i in node.attr("program", ()))


op("Fused", lambda n: [TensorType(n.attrs["dtype"], n.attrs["shape"])],
   flops=lambda n: n.outputs[0].type.numel * sum(i.op != "Identity" for i in n.attrs["program"]))
