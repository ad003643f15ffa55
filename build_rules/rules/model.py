"""model: compile an ONNX model for every configured platform and link its launcher.

    model(
        name = "mnist",
        graph = "mnist.onnx",
        weights = "mnist.safetensors",   # optional: initializers may live inside the ONNX file
        batch = 1,
    )

Outputs, under kiln-out/<config>/<package>/: `<name>` (the launcher for the configured host, with
the CPU code linked in), `<name>.cpu/weights.safetensors` (the weights the compiled code reads)
and `<name>.cpu/manifest.json`. `kiln run //pkg:<name> -- --input x.npy` runs it here.

With `cuda` or `rocm` in --platform (archs from `cuda:sm_89`, `rocm:gfx942`; defaults sm_80+sm_90 and
gfx90a+gfx942+gfx1100): `<name>.<platform>/` holding a cubin per SM plus the newest SM's PTX, or a
code object per gfx arch, with weights.safetensors and manifest.json; for rocm also the HSA runtime
trimmed for the launcher (`<name>.rocm.runtime/lib/rocm/`).

With `tpu` or `cpu-xla` in --platform, per such platform: `<name>.<platform>/` (model.mlir,
weights.safetensors, manifest.json: the StableHLO program the launcher hands to a PJRT plugin),
`<name>.<platform>.runtime/lib/<platform>/` (the plugin, trimmed from the pinned vendor tree) and
`<name>.<platform>.trim-report.json`.
"""

from __future__ import annotations

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.config import machine_host
from kiln.build_rules.providers import DefaultInfo, ModelInfo, Providers, RunInfo
from kiln.build_rules.rules import RuleSpec
from kiln.build_rules.rules.toolchains import external_tree, python_tool, vendor_trees, zig_tool
from kiln.compiler import launcher
from kiln.toolchain import ptxas

RUNTIME_DIR = "_kiln/runtime"
PJRT_PLATFORMS = ("tpu", "cpu-xla")  # StableHLO run through a PJRT plugin
GPU_ARCHS = {"cuda": ("sm_80", "sm_90"), "rocm": ("gfx90a", "gfx942", "gfx1100")}  # defaults
_IMPLEMENTED = ("cpu", *GPU_ARCHS, *PJRT_PLATFORMS)
_ARCHS = {"linux-amd64": "amd64", "linux-arm64": "arm64"}


def _compile_cpu(ctx: RuleContext, graph: Artifact, weights: Artifact | None) -> tuple[Artifact, Artifact, Artifact]:
    name = ctx.label.name
    outdir = f"{name}.cpu"
    obj, packed, manifest = (ctx.declare_file(f"{outdir}/{f}") for f in ("model.o", "weights.safetensors", "manifest.json"))
    argv = [python_tool("kiln.compiler"), "-m", "kiln.compiler", "compile", "--platform", "cpu",
            "--host", ctx.config.host, "--batch", str(ctx.attr["batch"]), "--name", name,
            "-o", obj.path.rsplit("/", 1)[0], graph]
    if weights is not None:
        argv += ["--weights", weights]
    inputs = [graph] + ([weights] if weights else [])
    ctx.action("ModelCompile", argv, inputs, [obj, packed, manifest],
               progress=f"Compiling {ctx.label} (cpu, {ctx.config.host})")
    return obj, packed, manifest


def _compile_stablehlo(ctx: RuleContext, platform: str, graph: Artifact, weights: Artifact | None
                       ) -> tuple[Artifact, Artifact, Artifact]:
    outdir = f"{ctx.label.name}.{platform}"
    program, packed, manifest = (ctx.declare_file(f"{outdir}/{f}")
                                 for f in ("model.mlir", "weights.safetensors", "manifest.json"))
    argv = [python_tool("kiln.compiler"), "-m", "kiln.compiler", "compile", "--platform", platform,
            "--batch", str(ctx.attr["batch"]), "--name", ctx.label.name, "-o", program.path.rsplit("/", 1)[0], graph]
    if weights is not None:
        argv += ["--weights", weights]
    ctx.action("ModelCompile", argv, [graph] + ([weights] if weights else []), [program, packed, manifest],
               progress=f"Compiling {ctx.label} ({platform}, StableHLO)")
    return program, packed, manifest


def _gpu_files(platform: str, archs: tuple[str, ...]) -> list[str]:
    if platform == "cuda":
        newest = max(archs, key=lambda sm: int(sm.removeprefix("sm_")))
        return [*(f"{sm}.cubin" for sm in archs), f"{newest}.ptx"]
    return [f"{arch}.co" for arch in archs]


def _compile_gpu(ctx: RuleContext, platform: str, graph: Artifact, weights: Artifact | None) -> list[Artifact]:
    """Kernels for every requested SM or gfx arch, checked at build time (ptxas; code-object structure)."""
    archs = ctx.config.archs(platform) or GPU_ARCHS[platform]
    outdir = f"{ctx.label.name}.{platform}"
    files = [ctx.declare_file(f"{outdir}/{f}") for f in (*_gpu_files(platform, archs), "weights.safetensors", "manifest.json")]
    argv = [python_tool("kiln.compiler", "kiln.toolchain"), "-m", "kiln.compiler", "compile",
            "--platform", f"{platform}:{','.join(archs)}", "--batch", str(ctx.attr["batch"]), "--name", ctx.label.name,
            "-o", files[0].path.rsplit("/", 1)[0], graph]
    if platform == "cuda":  # ptxas runs on the build machine, whatever host the launcher is for
        argv += ["--ptxas", external_tree(ptxas.PIN, _ARCHS[machine_host()], ptxas.IN_WHEEL)]
    if weights is not None:
        argv += ["--weights", weights]
    ctx.action("ModelCompile", argv, [graph] + ([weights] if weights else []), files,
               progress=f"Compiling {ctx.label} ({platform}: {', '.join(archs)})")
    return files


def _trim_runtime(ctx: RuleContext, platform: str, program: Artifact, archs: tuple[str, ...] = ()
                  ) -> tuple[Artifact, Artifact]:
    """The vendor runtime the launcher loads (a PJRT plugin, HSA), trimmed from the pinned vendor trees."""
    runtime = ctx.declare_directory(f"{ctx.label.name}.{platform}.runtime")
    report = ctx.declare_file(f"{ctx.label.name}.{platform}.trim-report.json")
    argv = [python_tool("kiln.runtime_trim", "kiln.toolchain"), "-m", "kiln.runtime_trim", "trim",
            "--platform", platform, "--root", program, "--out", runtime, "--report-out", report]
    argv += [f"--arch={arch}" for arch in archs]
    for tree in vendor_trees(platform, _ARCHS[ctx.config.host]):
        argv += ["--vendor-tree", tree]
    ctx.action("RuntimeTrim", argv, [program], [runtime, report],
               progress=f"Trimming the {platform} runtime of {ctx.label}")
    return runtime, report


def _runtime_sources() -> list[Artifact]:
    return [Artifact(f"{RUNTIME_DIR}/{p.name}", source=True, origin=str(p)) for p in launcher.runtime_files()]


def _link_launcher(ctx: RuleContext, objects: list[Artifact]) -> Artifact:
    output = ctx.declare_file(ctx.label.name)
    runtime = _runtime_sources()
    sources = [a for a in runtime if a.path.endswith(".c")]
    argv = [zig_tool(), *launcher.link_flags(ctx.config.host, RUNTIME_DIR), "-o", output, *sources, *objects,
            *launcher.link_libraries()]
    ctx.action("LauncherLink", argv, [*runtime, *objects], [output], zig_target=launcher.zig_target(ctx.config.host),
               progress=f"Linking launcher {ctx.label} ({ctx.config.host})")
    return output


def _implementation(ctx: RuleContext) -> Providers:
    missing = [str(p) for p in ctx.config.platforms if p.name not in _IMPLEMENTED]
    if missing:
        raise ctx.fail(f"platform {', '.join(missing)} is not supported by model() yet "
                       f"(supported: {', '.join(_IMPLEMENTED)})")
    graph = _single_file(ctx, "graph")
    weights = _single_file(ctx, "weights") if ctx.attr["weights"] else None
    if ctx.attr["batch"] < 1:
        raise ctx.fail(f"batch must be at least 1, got {ctx.attr['batch']}")
    obj, packed, manifest = _compile_cpu(ctx, graph, weights)
    program = _link_launcher(ctx, [obj])
    manifests, programs, runtimes, reports = [("cpu", manifest)], [], [], []
    for platform in (p for p in GPU_ARCHS if ctx.config.has(p)):
        *kernels, gpu_weights, gpu_manifest = _compile_gpu(ctx, platform, graph, weights)
        manifests.append((platform, gpu_manifest))
        programs += [(platform, f) for f in (*kernels, gpu_weights)]
        if platform == "rocm":
            runtime, report = _trim_runtime(ctx, platform, program, ctx.config.archs(platform) or GPU_ARCHS[platform])
            runtimes.append((platform, runtime))
            reports.append((platform, report))
    for platform in (p.name for p in ctx.config.platforms if p.name in PJRT_PLATFORMS):
        mlir, pjrt_weights, pjrt_manifest = _compile_stablehlo(ctx, platform, graph, weights)
        runtime, report = _trim_runtime(ctx, platform, program)
        manifests.append((platform, pjrt_manifest))
        programs += [(platform, mlir), (platform, pjrt_weights)]
        runtimes.append((platform, runtime))
        reports.append((platform, report))
    info = ModelInfo(ctx.label.name, program, packed, tuple(manifests), (graph, *([weights] if weights else [])),
                     tuple(reports), tuple(programs), tuple(runtimes))
    run = RunInfo((program,), env=(("KILN_WEIGHTS", packed),))
    files = (program, packed, *(m for _, m in manifests), *(f for _, f in programs), *(r for _, r in runtimes))
    return Providers(DefaultInfo(files=files, executable=program), {ModelInfo: info, RunInfo: run})


def _single_file(ctx: RuleContext, attribute: str) -> Artifact:
    files = ctx.attr[attribute].files
    if len(files) != 1:
        raise ctx.fail(f"{attribute} must name exactly one file, {ctx.attr[attribute].label} has {len(files)}")
    return files[0]


RULE = RuleSpec(
    name="model",
    attrs={
        "graph": Attr("label", mandatory=True, doc="The ONNX model."),
        "weights": Attr("label", doc="safetensors file with the initializers, matched by name."),
        "batch": Attr("int", 1, doc="Fixes the model's symbolic leading dimension."),
    },
    implementation=_implementation,
    doc=__doc__,
)
