"""The CPU code's modules -> one relocatable ELF object: each module optimised and compiled to an
object on the build machine's cores, the objects joined by zig's `ld.lld -r` in module order."""
from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from kiln.toolchain.zig import zig_path
from ...errors import CompileError
from ..llvm.machine import target_machine
from ..llvm.modules import Machine, Optimized, Output, Passes, optimize_all
from .target import Host


def data_layout(host: Host) -> str:
    return str(target_machine(host.triple, host.cpu, host.features).target_data)


def machine(host: Host) -> Machine:
    return Machine(host.triple, host.cpu, host.features)


def object_output(kernels: Sequence[str]) -> Output:
    """Objects whose kernel functions (called only from the entry module's object) stay hidden."""
    return Output(objects=True, hidden=frozenset(kernels))


def emit_object(texts: Sequence[str], kernels: Sequence[str], host: Host,
                compiled: Sequence[Optimized] | None = None, passes: Sequence[Passes] | None = None) -> bytes:
    """texts: the entry module, then the kernel modules (named `kernels`), optimised by `passes`;
    `compiled`: their objects already made (optimize_all with object_output(kernels)), when the
    caller timed that step."""
    compiled = compiled or optimize_all(texts, machine(host), output=object_output(kernels), passes=passes)
    return join_objects([c.code for c in compiled])


def join_objects(objects: Sequence[bytes]) -> bytes:
    """One relocatable object holding all of `objects`, in their order (the same bytes every time)."""
    if len(objects) == 1:
        return objects[0]
    with tempfile.TemporaryDirectory(prefix="kiln-ld-r-") as tmp:
        paths = [Path(tmp) / f"{i}.o" for i in range(len(objects))]
        for path, obj in zip(paths, objects):
            path.write_bytes(obj)
        out = Path(tmp) / "model.o"
        r = subprocess.run([zig_path(), "ld.lld", "-r", "-o", os.fspath(out), *map(os.fspath, paths)],
                           capture_output=True, text=True, cwd=tmp)
        if r.returncode != 0:
            raise CompileError(f"ld.lld -r failed: {r.stderr.strip()}")
        return out.read_bytes()
