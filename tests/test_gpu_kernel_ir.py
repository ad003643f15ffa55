"""The kernel description's CPU lowering keeps GPU semantics: barriers separate phases, shared
memory is per block, warp reductions combine 32 lanes, values never cross a barrier."""
from __future__ import annotations

import numpy as np
import pytest

from kiln.compiler.backend.gpu.emulate import EmulatedDevice
from kiln.compiler.backend.gpu.kir import (Barrier, Const, Global, If, Kernel, Let, Load, Local, Shared,
                                           Store, Sym, WarpReduce)
from kiln.compiler.errors import CompileError

TID, BID = Sym("tid"), Sym("bid")


class _Plan:
    inputs, outputs, activation_bytes = [0], [4096], 8192


def _run(kernel: Kernel, x: np.ndarray, n_out: int) -> np.ndarray:
    dev = EmulatedDevice([kernel], _Plan(), b"\0" * 64)
    return dev.run([x], [((n_out,), np.float32)])[0]


def test_barrier_reverses_through_shared_memory():
    x, y, sh = Global(1, 0, "f32"), Global(1, 4096, "f32"), Shared("s", "f32", 64)
    body = (Store(sh, TID, Load(x, BID * 64 + TID)), Barrier(),
            Store(y, BID * 64 + TID, Load(sh, 63 - TID)))
    data = np.arange(128, dtype=np.float32)
    got = _run(Kernel("rev", "test", 2, 64, body, (sh,)), data, 128)
    np.testing.assert_array_equal(got, np.concatenate([data[:64][::-1], data[64:][::-1]]))


def test_warp_reduce_sums_each_warp():
    x, y, r = Global(1, 0, "f32"), Global(1, 4096, "f32"), Local("r", "f32", 1)
    body = (Store(r, Const(0), Load(x, TID)), WarpReduce("add", r), Store(y, TID, Load(r, Const(0))))
    data = np.arange(64, dtype=np.float32)
    got = _run(Kernel("wsum", "test", 1, 64, body, locals=(r,)), data, 64)
    np.testing.assert_array_equal(got, np.repeat([data[:32].sum(), data[32:].sum()], 32))


def test_value_across_barrier_is_rejected():
    y = Global(1, 4096, "f32")
    body = (Let("v", TID * 2), Barrier(), Store(y, TID, Sym("v")))
    with pytest.raises(CompileError, match="do not cross barriers"):
        _run(Kernel("bad", "test", 1, 32, body), np.zeros(32, np.float32), 32)


def test_barrier_under_thread_dependent_branch_is_rejected():
    body = (If(TID < 3, (Barrier(),)),)
    with pytest.raises(CompileError, match="thread-dependent"):
        _run(Kernel("bad2", "test", 1, 32, body), np.zeros(32, np.float32), 32)
