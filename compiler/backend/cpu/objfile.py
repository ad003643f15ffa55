"""The CPU code's modules -> optimised (in parallel), linked -> one relocatable ELF object."""
from __future__ import annotations

from typing import Sequence

from ..llvm.machine import target_machine
from ..llvm.modules import Machine, Optimized, link, optimize_all
from .target import Host


def data_layout(host: Host) -> str:
    return str(target_machine(host.triple, host.cpu, host.features).target_data)


def machine(host: Host) -> Machine:
    return Machine(host.triple, host.cpu, host.features)


def emit_object(texts: Sequence[str], kernels: Sequence[str], host: Host,
                optimized: Sequence[Optimized] | None = None) -> bytes:
    """texts: the entry module, then the kernel modules (named `kernels`); `optimized`: them
    already optimised, when the caller timed that step."""
    optimized = optimized or optimize_all(texts, machine(host))
    return machine(host).create().emit_object(link(optimized, kernels))
