"""RotaryEmbedding (opset 23): rotates pairs of each head's leading rotary_embedding_dim features
by the angles in cos_cache/sin_cache; decomposed for every backend (passes/decompose_rotary.py)."""
from __future__ import annotations

from dataclasses import dataclass

from .graph import Node, TensorType
from .registry import fail, op


@dataclass(frozen=True)
class RotaryShape:
    batch: int
    seq: int
    heads: int
    head: int
    rotary: int  # leading features of each head that rotate, in pairs
    heads_first: bool  # a 4-D input [batch, heads, seq, head]; else 3-D [batch, seq, heads * head]


def rotary_shape(node: Node) -> RotaryShape:
    x = node.inputs[0].type
    if x.rank == 4:
        batch, heads, seq, head = x.shape
    elif x.rank == 3:
        heads = int(node.attr("num_heads", 0))
        if heads <= 0 or x.shape[2] % heads:
            raise fail(node, f"a 3-D input needs num_heads dividing its hidden size {x.shape[2]}")
        batch, seq, head = x.shape[0], x.shape[1], x.shape[2] // heads
    else:
        raise fail(node, f"input must be 3-D or 4-D, got rank {x.rank}")
    rotary = int(node.attr("rotary_embedding_dim", 0)) or head
    if rotary % 2 or rotary > head:
        raise fail(node, f"rotary_embedding_dim {rotary} must be even and at most the head size {head}")
    s = RotaryShape(batch, seq, heads, head, rotary, x.rank == 4)
    _check_caches(node, s)
    return s


def _check_caches(node: Node, s: RotaryShape) -> None:
    positions = node.inputs[3] if len(node.inputs) > 3 else None
    if positions is not None and positions.type.shape != (s.batch, s.seq):
        raise fail(node, f"position_ids must be [{s.batch}, {s.seq}], got {list(positions.type.shape)}")
    want = (None, s.rotary // 2) if positions is not None else (s.batch, s.seq, s.rotary // 2)
    for i, name in ((1, "cos_cache"), (2, "sin_cache")):
        shape = node.inputs[i].type.shape
        if len(shape) != len(want) or any(w is not None and w != d for w, d in zip(want, shape)):
            raise fail(node, f"{name} must be {['max_position' if w is None else w for w in want]}, "
                             f"got {list(shape)}")


def _rotary(node: Node) -> list[TensorType]:
    rotary_shape(node)
    return [node.inputs[0].type]


op("RotaryEmbedding", _rotary, flops=lambda n: 3 * n.outputs[0].type.numel)
