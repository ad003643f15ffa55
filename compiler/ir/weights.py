"""The weights file every backend writes: build-time tensors at 64-byte aligned offsets."""
from __future__ import annotations

import numpy as np

ALIGN = 64


def align(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


class WeightTable:
    """Tensors of the output weights file, each at a 64-byte aligned offset, in first-use order."""

    def __init__(self) -> None:
        self.tensors: dict[str, tuple[np.ndarray, int]] = {}
        self.size = 0

    def add(self, name: str, data: np.ndarray) -> int:
        if name not in self.tensors:
            offset = align(self.size)
            data = np.ascontiguousarray(data)  # no copy of a weight that already is
            self.tensors[name] = (data, offset)
            self.size = offset + data.nbytes
        return self.tensors[name][1]
