"""The platform registry: every accelerator platform and host kiln builds for, read by the compiler
and by build_rules alike. A new platform is one entry in PLATFORMS plus one Backend
(`compiler/backend/<kind>/backend.py`).

    platform, archs = resolve("cuda:sm_89")      # (PLATFORMS["cuda"], ("sm_89",))
    platform.files(archs)                        # ("sm_89.cubin", "sm_89.ptx", "weights.safetensors", ...)

Only names live here (no llvmlite): build_rules reads it at analysis time, and a platform's backend is
imported when something compiles for it.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from .errors import CompileError

if TYPE_CHECKING:
    from .backend.base import Backend

WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
PRECISIONS = ("highest", "default")   # a model's f32 dot precision on PJRT plugins (model(precision=))


@dataclass(frozen=True)
class Host:
    name: str                    # the --platform word: "linux-amd64"
    arch: str                    # its Debian and OCI architecture: "amd64"
    machines: tuple[str, ...]    # platform.machine() spellings of it


@dataclass(frozen=True)
class Platform:
    name: str
    backend: str                 # "<module under compiler/backend>:<Backend object>"
    code_files: Callable[[tuple[str, ...]], tuple[str, ...]]   # the compile's code files, by arch
    default_archs: tuple[str, ...] = ()   # none: the platform takes no arch qualifier
    runtime: bool = False        # ships a vendor runtime trimmed for it (lib/<platform>/)
    toolchain: bool = False      # its compile runs pinned toolchain programs (ptxas, zig's ld.lld)
    tools: tuple[str, ...] = ()  # toolchain programs its compile is handed as `--<tool> PATH`
    links_objects: bool = False  # its compile links code objects with zig's ld.lld (handed as `--zig PATH`)
    host_code: bool = False      # its code runs on the launcher's host CPU (the compile takes --host)

    def files(self, archs: tuple[str, ...], buckets: tuple[int, ...] = ()) -> tuple[str, ...]:
        """Every file one compile for `archs` (and these shape buckets' batches, smallest first) writes."""
        code = self.code_files(archs)
        if buckets and not self.host_code:   # host code joins its buckets into one object
            code = tuple(bucket_file(f, batch, buckets) for batch in buckets for f in code)
        return (*code, WEIGHTS_FILE, MANIFEST_FILE)

    def load_backend(self) -> Backend:
        module, _, name = self.backend.partition(":")
        return getattr(importlib.import_module(f"{__package__}.backend.{module}"), name)

    def usage(self) -> str:
        """How --platform spells it: `cuda[:sm_80]`."""
        return f"{self.name}[:{self.default_archs[0]}]" if self.default_archs else self.name


def bucket_file(name: str, batch: int, buckets: tuple[int, ...]) -> str:
    """A shape bucket's code file: the first (smallest) bucket's keeps its plain name, so the manifest's
    top-level fields, which describe that bucket, stay a whole model; the others' are `b<batch>.<name>`."""
    return name if not buckets or batch == buckets[0] else f"b{batch}.{name}"


def lowest_sm(sms: tuple[str, ...]) -> str:
    """The SM whose PTX ships too: the driver JITs it for every newer GPU without a cubin here
    (sm_86 under an sm_75-only build, sm_120 under any), and its PTX ISA needs the oldest driver."""
    return min(sms, key=lambda sm: int(sm.removeprefix("sm_")))


def _cuda_files(sms: tuple[str, ...]) -> tuple[str, ...]:
    return (*(f"{sm}.cubin" for sm in sms), f"{lowest_sm(sms)}.ptx")


HOSTS: dict[str, Host] = {h.name: h for h in (
    Host("linux-amd64", "amd64", ("x86_64", "amd64")),
    Host("linux-arm64", "arm64", ("aarch64", "arm64")),
)}

PLATFORMS: dict[str, Platform] = {p.name: p for p in (
    Platform("cpu", "cpu.backend:CPU", lambda archs: ("model.o",), toolchain=True, host_code=True,
             links_objects=True),
    Platform("cuda", "gpu.backend:CUDA", _cuda_files, ("sm_75", "sm_80", "sm_90"), toolchain=True, tools=("ptxas",)),
    Platform("rocm", "gpu.backend:ROCM", lambda archs: tuple(f"{a}.co" for a in archs),
             ("gfx90a", "gfx942", "gfx1100"), runtime=True, toolchain=True, links_objects=True),
    Platform("tpu", "stablehlo.backend:STABLEHLO", lambda archs: ("model.mlir",), runtime=True),
    # The StableHLO path on XLA's CPU PJRT plugin; its name holds a dash, not a colon.
    Platform("cpu-xla", "stablehlo.backend:STABLEHLO", lambda archs: ("model.mlir",), runtime=True),
)}

FALLBACK = PLATFORMS["cpu"]   # built into every launcher


def host(name: str) -> Host:
    if name not in HOSTS:
        raise CompileError(f"unknown host {name}; expected one of {', '.join(HOSTS)}")
    return HOSTS[name]


def resolve(text: str) -> tuple[Platform, tuple[str, ...]]:
    """`cuda`, `cuda:sm_89`, `rocm:gfx942,gfx1100` -> the platform and its archs (deduplicated;
    none given = its defaults). Whether the backend knows an arch is the backend's to check."""
    name, _, arch_list = text.partition(":")
    if name not in PLATFORMS:
        raise CompileError(f"unknown platform {name}; expected one of {', '.join(PLATFORMS)}")
    platform = PLATFORMS[name]
    archs = tuple(dict.fromkeys(a for a in arch_list.split(",") if a))
    if archs and not platform.default_archs:
        raise CompileError(f"platform {name} takes no arch qualifier (got {text})")
    return platform, archs or platform.default_archs
