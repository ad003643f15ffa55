"""The weights file every backend writes: build-time tensors at 64-byte aligned offsets."""
from __future__ import annotations

import numpy as np

ALIGN = 64


def align(n: int, to: int = ALIGN) -> int:
    return -(-n // to) * to


class WeightTable:
    """Tensors of the output weights file, each at a 64-byte aligned offset, in first-use order.
    Several compiles of one model (shape buckets) may share a table: a tensor they all read is stored
    once, and one whose bytes differ under the same name (a constant folded at another batch) is
    stored beside it under a suffixed name."""

    def __init__(self) -> None:
        self.tensors: dict[str, tuple[np.ndarray, int]] = {}
        self.size = 0

    def add(self, name: str, data: np.ndarray) -> int:
        """The tensor's offset."""
        return self.tensors[self.store(name, data)][1]

    def store(self, name: str, data: np.ndarray) -> str:
        """The tensor's name in the table: `name`, or `name@<n>` beside another tensor of that name."""
        key, n = name, 1
        while key in self.tensors and not _same(self.tensors[key][0], data):
            key, n = f"{name}@{n}", n + 1
        if key not in self.tensors:
            offset = align(self.size)
            data = np.ascontiguousarray(data)  # no copy of a weight that already is
            self.tensors[key] = (data, offset)
            self.size = offset + data.nbytes
        return key


def _same(stored: np.ndarray, data: np.ndarray) -> bool:
    # bytes, not values: NaN constants are equal to themselves here
    return stored is data or (stored.dtype == data.dtype and stored.shape == data.shape
                              and stored.tobytes() == np.ascontiguousarray(data).tobytes())
