"""Runs a compiled model in-process (llvmlite MCJIT) without the C launcher: the test
harness and the Python-side benchmark. kiln_parallel_for is served by Python threads."""
from __future__ import annotations

import ctypes
import time
from concurrent.futures import ThreadPoolExecutor

import llvmlite.binding as llvm
import numpy as np

from .backend.cpu import x86_64
from .backend.llvm.modules import Machine, link, optimize_all
from .driver import Compiled
from .ir.graph import DTYPES

TASK = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64)
PARALLEL_FOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)
_pools: dict[int, "Pool"] = {}
# LLVM's host feature names per x86-64 psABI level, as the launcher's CPUID check groups them.
LEVEL_FEATURES = {
    x86_64.SSE42: ("sse3", "ssse3", "sse4.1", "sse4.2", "popcnt", "cx16"),
    x86_64.AVX2: ("avx", "avx2", "bmi", "bmi2", "f16c", "fma", "lzcnt", "movbe"),
    x86_64.FMA: ("fma",),
    x86_64.AVX512: ("avx512f", "avx512bw", "avx512cd", "avx512dq", "avx512vl"),
}


def cpu_mask(features: dict[str, bool]) -> int:
    """The launcher's feature mask for a host with these LLVM features (which already
    account for the register state the OS saves)."""
    return sum(bit for bit, names in LEVEL_FEATURES.items() if all(features.get(n) for n in names))


def runnable(variant: dict, mask: int) -> bool:
    return variant["required_features"] & ~mask == 0


def best_variant(variants: list[dict], mask: int) -> str:
    """The first (best) manifest variant whose required features the host has."""
    for v in variants:
        if runnable(v, mask):
            return v["name"]
    raise ValueError(f"this CPU runs none of the variants {[v['name'] for v in variants]}")


def host_cpu_mask() -> int:
    return cpu_mask(dict(llvm.get_host_cpu_features()))


class Pool:
    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.executor = ThreadPoolExecutor(threads) if threads > 1 else None

    def run(self, fn: int, ctx: int, n: int) -> None:
        task = TASK(fn)
        if self.executor is None or n == 1:
            task(ctx, 0, n)
            return
        chunks = min(self.threads, n)
        bounds = [n * i // chunks for i in range(chunks + 1)]
        list(self.executor.map(lambda i: task(ctx, bounds[i], bounds[i + 1]), range(chunks)))


@PARALLEL_FOR
def _parallel_for(pool, fn, ctx, n):
    _pools[pool].run(fn, ctx, n)


def _aligned(nbytes: int, align: int = 64) -> np.ndarray:
    raw = np.zeros(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    return raw[start:start + nbytes]


class JitModel:
    """compiled.run(inputs) through the variant `variant` (default: the best one)."""

    def __init__(self, compiled: Compiled, variant: str | None = None, threads: int = 1) -> None:
        llvm.add_symbol("kiln_parallel_for", ctypes.cast(_parallel_for, ctypes.c_void_p).value)
        machine = Machine(llvm.get_process_triple(), llvm.get_host_cpu_name(),
                          llvm.get_host_cpu_features().flatten(), jit=True)
        tm = machine.create()
        code = compiled.code
        self.module = link(optimize_all(code.modules, machine, passes=code.passes), [k.name for k in code.kernels])
        self.engine = llvm.create_mcjit_compiler(self.module, tm)
        self.engine.finalize_object()
        m = compiled.manifest
        names = [v["name"] for v in m["variants"]]
        self.variant = variant or best_variant(m["variants"], host_cpu_mask())
        entry = m["variants"][names.index(self.variant)]["entry"]
        self.kernels = code.sites.get(self.variant, [])
        self.entry = ctypes.CFUNCTYPE(None, *[ctypes.c_void_p] * 5)(
            self.engine.get_function_address(entry))
        data = memoryview(compiled.weights_file)[m["weights"]["data_offset"]:]
        self.weights = _aligned(max(len(data), 1))
        self.weights[:len(data)] = np.frombuffer(data, np.uint8)
        self.scratch = _aligned(max(m["scratch_bytes"], 1))
        self.inputs, self.outputs = m["inputs"], m["outputs"]
        self.pool = Pool(threads)
        self.pool_id = id(self.pool)
        _pools[self.pool_id] = self.pool

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        outs, args = self._bind(inputs)
        self.entry(*args)
        return outs

    def bind(self, *inputs: np.ndarray):
        """(outputs, call): call() runs the entry on these buffers with no per-call Python
        work beyond the ctypes call itself — what a benchmark should time."""
        outs, args = self._bind(inputs)
        return outs, lambda: self.entry(*args)

    def profile(self, *inputs: np.ndarray, repeats: int = 20) -> list[tuple[object, float]]:
        """(node, median seconds) per node; needs driver.compile(..., profile=True)."""
        if not self.kernels:
            raise ValueError("compile with profile=True to time nodes")
        _, args = self._bind(inputs)
        state = (ctypes.c_void_p * 5)(*[ctypes.cast(a, ctypes.c_void_p).value if not isinstance(a, int)
                                        else a for a in args])
        result = []
        for node, name in self.kernels:
            fn = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(self.engine.get_function_address(name))
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fn(ctypes.addressof(state))
                times.append(time.perf_counter() - t0)
            result.append((node, float(np.median(times))))
        return result

    def _bind(self, inputs) -> tuple[list[np.ndarray], tuple]:
        ins = [np.array(x, dtype=_np_dtype(d["dtype"]), order="C") for x, d in zip(inputs, self.inputs)]
        for x, d in zip(ins, self.inputs):
            if list(x.shape) != d["shape"]:
                raise ValueError(f"input {d['name']}: shape {list(x.shape)}, expected {d['shape']}")
        outs = [np.empty(d["shape"], _np_dtype(d["dtype"])) for d in self.outputs]
        in_ptrs = (ctypes.c_void_p * max(len(ins), 1))(*[x.ctypes.data for x in ins])
        out_ptrs = (ctypes.c_void_p * max(len(outs), 1))(*[y.ctypes.data for y in outs])
        self._keep = (ins, in_ptrs, out_ptrs)
        return outs, (self.weights.ctypes.data, ctypes.addressof(in_ptrs), ctypes.addressof(out_ptrs),
                      self.scratch.ctypes.data, self.pool_id)

    def __del__(self) -> None:
        _pools.pop(getattr(self, "pool_id", None), None)


def _np_dtype(name: str) -> np.dtype:
    return np.dtype(DTYPES[name])
