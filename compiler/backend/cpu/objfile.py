"""LLVM IR text -> optimised module -> relocatable ELF object, for a host target."""
from __future__ import annotations

from ..llvm.machine import optimize, target_machine
from .target import Host


def data_layout(host: Host) -> str:
    return str(target_machine(host.triple, host.cpu, host.features).target_data)


def emit_object(text: str, host: Host) -> bytes:
    tm = target_machine(host.triple, host.cpu, host.features)
    return tm.emit_object(optimize(text, tm))
