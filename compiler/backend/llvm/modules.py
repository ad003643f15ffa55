"""Optimising many LLVM modules at once, on the build machine's cores, and linking them into one.

Each module is optimised on its own, so the result does not depend on how many processes share
the work: the same modules give the same bytes on one core or sixty-four."""
from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Sequence

import llvmlite.binding as llvm

from .machine import optimize, target_machine

# Below this much IR text the workers' start-up (importing llvmlite) costs more than they save.
PARALLEL_MIN_BYTES = 2_000_000


@dataclass(frozen=True)
class Machine:
    """What a worker needs to rebuild the target machine (TargetMachine objects do not pickle)."""
    triple: str
    cpu: str
    features: str
    jit: bool = False

    def create(self) -> llvm.TargetMachine:
        return target_machine(self.triple, self.cpu, self.features, self.jit)


@dataclass(frozen=True)
class Optimized:
    bitcode: bytes
    seconds: float


def jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def optimize_all(texts: Sequence[str], machine: Machine, workers: int | None = None) -> list[Optimized]:
    """Every module optimised (O3), in the order given."""
    workers = min(workers or jobs(), len(texts))
    if workers < 2 or sum(map(len, texts)) < PARALLEL_MIN_BYTES:
        return [_optimize_one(t, machine) for t in texts]
    # Largest first, so no worker is left with a big module at the end.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {i: pool.submit(_optimize_one, texts[i], machine) for i in order}
        return [futures[i].result() for i in range(len(texts))]


def _optimize_one(text: str, machine: Machine) -> Optimized:
    start = time.perf_counter()
    bitcode = optimize(text, machine.create()).as_bitcode()
    return Optimized(bitcode, time.perf_counter() - start)


def link(modules: Sequence[Optimized], internal: Sequence[str] = ()) -> llvm.ModuleRef:
    """One module holding all of them; the functions named in `internal` become private to it."""
    main = llvm.parse_bitcode(modules[0].bitcode)
    for m in modules[1:]:
        main.link_in(llvm.parse_bitcode(m.bitcode))
    for name in internal:
        main.get_function(name).linkage = llvm.Linkage.internal
    return main
