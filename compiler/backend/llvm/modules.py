"""Optimising many LLVM modules at once, on the build machine's cores, into bitcode (linked into one
module, for the JIT) or into relocatable objects (code generation in the same workers): all of them
(`optimize_all`), or each as soon as the caller hands it in (`Stream`), while it makes the next.

Each module is optimised on its own, so the result does not depend on how many processes share
the work: the same modules give the same bytes on one core or sixty-four."""
from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import astuple, dataclass
from typing import Sequence

import llvmlite.binding as llvm

from ...errors import CompileError
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

    def create(self, level: int = 3) -> llvm.TargetMachine:
        return target_machine(self.triple, self.cpu, self.features, self.jit, level)


@dataclass(frozen=True)
class Output:
    """What each module becomes: bitcode, or an object file in which the functions named `hidden`
    stay out of the dynamic symbol table of the executable it is linked into."""
    objects: bool = False
    hidden: frozenset[str] = frozenset()


BITCODE = Output()


@dataclass(frozen=True)
class Passes:
    """How a module is optimised: the O level, and whether LLVM may unroll its loops."""
    level: int = 3
    unroll: bool = True


O3 = Passes()


@dataclass(frozen=True)
class Optimized:
    code: bytes      # bitcode or object file, as the Output asked
    seconds: float


def jobs() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def optimize_all(texts: Sequence[str], machine: Machine, workers: int | None = None,
                 min_bytes: int | None = None, output: Output = BITCODE,
                 passes: Sequence[Passes] | None = None) -> list[Optimized]:
    """Every module optimised (by its `passes`, default O3) into `output`, in the order given; in
    `workers` processes (default: one per core) when there are at least `min_bytes` of IR."""
    stream = Stream(machine, min(jobs() if workers is None else workers, len(texts)), min_bytes)
    # Largest first: the modules still running when the others are done are then the small ones.
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for i in order:
        stream.add(texts[i], passes[i] if passes else O3, output)
    done = dict(zip(order, stream.results()))
    return [done[i] for i in range(len(texts))]


class Stream:
    """Modules optimised as they are handed in, so that the caller can go on generating the next
    ones meanwhile: by `workers` processes, started once `min_bytes` of IR have come (a smaller
    batch is optimised in this process by `results`), each taking the next module when done."""

    def __init__(self, machine: Machine, workers: int | None = None, min_bytes: int | None = None) -> None:
        self.machine = machine
        self.workers = jobs() if workers is None else workers
        self.min_bytes = PARALLEL_MIN_BYTES if min_bytes is None else min_bytes
        self.work: list[tuple[str, Passes, Output]] = []
        self.bytes = 0
        self.done: dict[int, Optimized] = {}
        self.errors: list[str] = []
        self.pending: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []

    def add(self, text: str, passes: Passes = O3, output: Output = BITCODE) -> None:
        self.work.append((text, passes, output))
        self.bytes += len(text)
        if self.threads:
            self.pending.put(len(self.work) - 1)
        elif self.workers > 1 and self.bytes >= self.min_bytes:
            for i in range(len(self.work)):
                self.pending.put(i)
            self.threads = [threading.Thread(target=self._feed, daemon=True) for _ in range(self.workers)]
            for thread in self.threads:
                thread.start()

    def results(self) -> list[Optimized]:
        """Every module's result, in the order they were added (waiting for the workers)."""
        if not self.threads:
            for i, (text, passes, output) in enumerate(self.work):
                if i not in self.done:
                    self.done[i] = _optimize_one(text, passes, self.machine, output)
        self._stop()
        if len(self.done) < len(self.work):
            raise CompileError(self.errors[0] if self.errors else "LLVM worker failed")
        return [self.done[i] for i in range(len(self.work))]

    def cancel(self) -> None:
        """Stops the workers after the modules they are on (the caller's build failed)."""
        while not self.pending.empty():
            self.pending.get_nowait()
        self._stop()

    def _stop(self) -> None:
        for _ in self.threads:
            self.pending.put(None)
        for thread in self.threads:
            thread.join()

    def _feed(self) -> None:
        """One worker process (a fresh interpreter running this module's main: no fork of a process
        that runs threads), fed one pending module after the other until told to stop."""
        with tempfile.TemporaryFile() as stderr:
            proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=stderr)
            try:
                self._exchange(proc)
                proc.stdin.close()
                proc.wait()
            except (OSError, EOFError, pickle.UnpicklingError):
                proc.kill()
                proc.wait()
                stderr.seek(0)
                reason = stderr.read().decode(errors="replace").strip().splitlines() or [f"exit {proc.returncode}"]
                self.errors.append(f"LLVM worker failed: {reason[-1]}")

    def _exchange(self, proc: subprocess.Popen) -> None:
        while (i := self.pending.get()) is not None:
            text, passes, output = self.work[i]
            pickle.dump((text, passes, self.machine, output), proc.stdin)
            proc.stdin.flush()
            result = pickle.load(proc.stdout)
            if isinstance(result, str):
                self.errors.append(result)
                return
            self.done[i] = Optimized(*result)


def _optimize_one(text: str, passes: Passes, machine: Machine, output: Output) -> Optimized:
    start = time.perf_counter()
    tm = machine.create(passes.level)
    mod = optimize(text, tm, passes.level, passes.unroll)
    if not output.objects:
        return Optimized(mod.as_bitcode(), time.perf_counter() - start)
    for fn in mod.functions:
        if fn.name in output.hidden and not fn.is_declaration:
            fn.visibility = llvm.Visibility.hidden
    return Optimized(tm.emit_object(mod), time.perf_counter() - start)


def link(modules: Sequence[Optimized], internal: Sequence[str] = ()) -> llvm.ModuleRef:
    """One module holding all of them; the functions named in `internal` become private to it."""
    main = llvm.parse_bitcode(modules[0].code)
    for m in modules[1:]:
        main.link_in(llvm.parse_bitcode(m.code))
    for name in internal:
        main.get_function(name).linkage = llvm.Linkage.internal
    return main


def _main() -> None:
    """A worker: (text, passes, machine, output) in, the result out as a plain tuple (this module is
    __main__ here, its classes would not unpickle outside) or a CompileError's message, until EOF."""
    while True:
        try:
            text, passes, machine, output = pickle.load(sys.stdin.buffer)
        except EOFError:
            return
        try:
            result: tuple[bytes, float] | str = astuple(_optimize_one(text, passes, machine, output))
        except CompileError as e:
            result = str(e)
        pickle.dump(result, sys.stdout.buffer)
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    _main()
