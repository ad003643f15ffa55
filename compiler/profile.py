"""`kiln inspect --profile`: where a compile's time and memory go — each pass, the code generation
of each kernel, LLVM's optimisation and object emission of each module, joining the objects — and
the peak RSS."""
from __future__ import annotations

import resource
import time
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import safetensors_bytes
from .backend.base import Target
from .frontend.onnx import Shapes, Values, load_onnx
from .ir.graph import Graph
from .passes.pipeline import run_pipeline
from .platforms import host as host_spec, resolve

SLOWEST = 12  # kernels listed


def _cpu_seconds() -> float:
    """User + system seconds of this process and of the workers it has waited for."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


@dataclass
class Profile:
    """Each step's wall and CPU seconds (this process's and its finished workers'): on a shared
    machine the wall time says more about the neighbours than about the compile."""
    title: str
    steps: list[tuple[str, float, float, str]] = field(default_factory=list)  # (step, wall s, cpu s, note)
    kernels: list[tuple[float, str]] = field(default_factory=list)      # (seconds, description)
    cpu: float = field(default_factory=_cpu_seconds)

    def step(self, name: str, start: float, note: str = "") -> float:
        now, cpu = time.perf_counter(), _cpu_seconds()
        self.steps.append((name, now - start, cpu - self.cpu, note))
        self.cpu = cpu
        return now

    def text(self) -> str:
        lines = [self.title, f"  {'step':<22} {'wall':>8}   {'cpu':>8}"]
        lines += [f"  {name:<22} {secs:8.2f} s {cpu:8.2f} s  {note}".rstrip() for name, secs, cpu, note in self.steps]
        lines.append(f"  {'total':<22} {sum(s[1] for s in self.steps):8.2f} s {sum(s[2] for s in self.steps):8.2f} s")
        lines.append(f"  peak RSS {_peak_mb('self'):.0f} MB (compiler), {_peak_mb('children'):.0f} MB "
                     "(largest worker)")
        if self.kernels:
            lines.append(f"  slowest kernels to optimise and emit (of {len(self.kernels)}):")
            lines += [f"    {secs:6.2f} s  {what}" for secs, what in sorted(self.kernels, reverse=True)[:SLOWEST]]
        return "\n".join(lines) + "\n"


def _peak_mb(who: str) -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF if who == "self" else resource.RUSAGE_CHILDREN)
    return usage.ru_maxrss / 1024


def profile_compile(path: Path | str, weights: Path | str | None = None, batch: int = 1,
                    platform: str = "cpu", input_shapes: Shapes | None = None, host: str = "linux-amd64",
                    input_values: Values | None = None) -> str:
    """Compile `path` as `kiln.compiler.driver.compile` does, timing every step; the report."""
    path = Path(path)
    spec, archs = resolve(platform)
    backend = spec.load_backend()
    prof = Profile(f"{path.name} for {platform} ({host}), batch {batch}")
    start = time.perf_counter()
    graph = load_onnx(path, Path(weights) if weights else None, batch, input_shapes, input_values)
    start = prof.step("load", start, f"{len(graph.nodes)} nodes")

    def trace(name: str, g: Graph) -> None:
        nonlocal start
        start = prof.step(f"pass {name}", start, f"{len(g.nodes)} nodes")

    in_names, out_names = tuple(v.name for v in graph.inputs), tuple(v.name for v in graph.outputs)
    graph = run_pipeline(graph, trace, backend.passes)
    target = Target(path.stem, spec.name, archs, host_spec(host).name, in_names, out_names, {"ptxas": None})
    code = backend.build(graph, target)
    if spec.name == "cpu":
        _cpu_code(prof, code, start)
    else:
        start = prof.step("codegen", start)
        code.files()
        prof.step("code files", start)
    start = time.perf_counter()
    safetensors_bytes(code.weights)
    prof.step("weights file", start, f"{code.weights.size / 1e6:.1f} MB")
    return prof.text()


def _cpu_code(prof: Profile, code, start: float) -> None:
    from .backend.cpu.objfile import machine, object_output
    from .backend.llvm.modules import jobs, optimize_all

    sites = sum(len(k.nodes) for k in code.kernels)
    ir_mb = sum(map(len, code.modules)) / 1e6
    start = prof.step("codegen", start, f"{len(code.kernels)} kernels for {sites} call sites, IR {ir_mb:.1f} MB")
    output = object_output([k.name for k in code.kernels])
    optimized = optimize_all(code.modules, machine(code.host), output=output, passes=code.passes)
    start = prof.step("optimise + object", start, f"{len(code.modules)} modules on up to {jobs()} "
                      f"processes, {sum(o.seconds for o in optimized):.2f} s summed")
    code.files(optimized)
    prof.step("ld -r", start)
    for kernel, opt in zip(code.kernels, optimized[1:]):
        nodes = ", ".join(kernel.nodes[:4]) + (", ..." if len(kernel.nodes) > 4 else "")
        prof.kernels.append((opt.seconds, f"{kernel.name} (O{kernel.passes.level}{'' if kernel.passes.unroll else ', not unrolled'}, IR {len(kernel.text) / 1e3:.0f} KB, "
                                          f"built in {kernel.emit_seconds:.2f} s) for {len(kernel.nodes)} nodes: "
                                          f"{nodes}"))
    prof.kernels.append((optimized[0].seconds, f"entry module (IR {len(code.modules[0]) / 1e3:.0f} KB)"))
