"""model: compile an ONNX model for every configured platform and link its launcher.

    model(
        name = "mnist",
        graph = "mnist.onnx",
        weights = "mnist.safetensors",   # optional: initializers may live inside the ONNX file
        batch = 1,
        batch_sizes = [1, 8, 32],        # instead of batch: one shape bucket per size in one artifact
        shapes = [{"ids": [1, 16]}, {"ids": [1, 64]}],  # or: one shape bucket per entry of input shapes
        pad_values = {"ids": 0},         # inputs whose non-leading dims a run may pad up to a bucket's
        input_shapes = {},               # e.g. {"images": [1, 3, 640, 640]} for symbolic dims
        input_values = {},               # e.g. {"sr": [16000]}: the input becomes a constant and folds
        precision = "highest",           # tpu/cpu-xla: "default" lets XLA:TPU run f32 dots in bf16 passes
    )

Outputs, under kiln-out/<config>/<package>/: `<name>` (the launcher for the configured host, with
the CPU code linked in), `<name>.cpu/weights.safetensors` (the weights the compiled code reads)
and `<name>.cpu/manifest.json`. `kiln run //pkg:<name> -- --input x.npy` runs it here.

With `cuda` or `rocm` in --platform (archs from `cuda:sm_89`, `rocm:gfx942`; defaults: the platform
registry, kiln.compiler.platforms, which also names each platform's files): `<name>.<platform>/` holding a cubin per SM plus the lowest SM's PTX, or a
code object per gfx arch, with weights.safetensors and manifest.json; for rocm also the HSA runtime
trimmed for the launcher (`<name>.rocm.runtime/lib/rocm/`).

With `tpu` or `cpu-xla` in --platform, per such platform: `<name>.<platform>/` (model.mlir,
weights.safetensors, manifest.json: the StableHLO program the launcher hands to a PJRT plugin),
`<name>.<platform>.runtime/lib/<platform>/` (the plugin, trimmed from the pinned vendor tree) and
`<name>.<platform>.trim-report.json`.

With batch_sizes every platform compiles the same shape buckets over one weights file per platform: the
smallest bucket's code files keep the names above, every other bucket's are `b<batch>.<file>`
(`b8.sm_80.cubin`, `b8.model.mlir`); the cpu code joins all buckets in its one model.o.
"""

from __future__ import annotations

import json

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, ModelInfo, Providers, RunInfo
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.config import machine_host
from kiln.build_rules.rules.toolchains import external_tree, python_tool, vendor_trees, zig_tool
from kiln.compiler import buckets, launcher
from kiln.compiler.platforms import FALLBACK, HOSTS, PLATFORMS, PRECISIONS, Platform
from kiln.toolchain import ptxas

RUNTIME_DIR = "_kiln/runtime"
# The toolchain programs a platform's compile may be handed (Platform.tools), by Debian arch: the
# build machine's, since they run there whatever host the launcher is for.
_TOOLS = {"ptxas": lambda arch: external_tree(ptxas.PIN, arch, ptxas.IN_WHEEL)}


def _archs(ctx: RuleContext, platform: Platform) -> tuple[str, ...]:
    return ctx.config.archs(platform.name) or platform.default_archs


def _compile(ctx: RuleContext, platform: Platform, graph: Artifact, weights: Artifact | None) -> list[Artifact]:
    """One platform's code files, weights.safetensors and manifest.json (in Platform.files order); GPU
    kernels are checked at build time for every requested arch (ptxas; code-object structure)."""
    archs = _archs(ctx, platform)
    outdir = f"{ctx.label.name}.{platform.name}"
    sizes = ctx.attr["batch_sizes"]
    files = [ctx.declare_file(f"{outdir}/{f}") for f in platform.files(archs, tuple(sorted(sizes or ())))]
    packages = ("kiln.compiler", "kiln.toolchain") if platform.toolchain else ("kiln.compiler",)
    build_arch = HOSTS[machine_host()].arch
    argv = [python_tool(*packages), "-m", "kiln.compiler", "compile",
            "--platform", f"{platform.name}:{','.join(archs)}" if archs else platform.name,
            *(("--host", ctx.config.host) if platform.host_code else ()), *_batch_args(ctx),
            "--name", ctx.label.name, "-o", files[0].path.rsplit("/", 1)[0], graph]
    for tool in platform.tools:
        argv += [f"--{tool}", _TOOLS[tool](build_arch)]
    if platform.links_objects:
        argv += ["--zig", zig_tool()]
    if weights is not None:
        argv += ["--weights", weights]
    argv += [f"--input-shape={name}={','.join(map(str, shape))}" for name, shape in ctx.attr["input_shapes"].items()]
    argv += [f"--input-value={name}={','.join(map(repr, values))}" for name, values in ctx.attr["input_values"].items()]
    if ctx.attr["precision"] != PRECISIONS[0]:
        argv += ["--precision", ctx.attr["precision"]]
    what = f": {', '.join(archs)}" if archs else f", {ctx.config.host}" if platform.host_code else ""
    ctx.action("ModelCompile", argv, [graph] + ([weights] if weights else []), files,
               progress=f"Compiling {ctx.label} ({platform.name}{what})")
    return files


def _batch_args(ctx: RuleContext) -> list[str]:
    sizes, shapes = ctx.attr["batch_sizes"], ctx.attr["shapes"]
    pads = [f"--pad-value={name}={value!r}" for name, value in ctx.attr["pad_values"].items()]
    if shapes is not None:
        entries = [{name: list(shape) for name, shape in entry.items()} for entry in shapes]
        return ["--batch", str(ctx.attr["batch"]), "--shapes", json.dumps(entries, separators=(",", ":")), *pads]
    if sizes is None:
        return ["--batch", str(ctx.attr["batch"]), *pads]
    return ["--batch-sizes", ",".join(map(str, sizes)), *pads]


def _check_buckets(ctx: RuleContext) -> None:
    sizes, shapes = ctx.attr["batch_sizes"], ctx.attr["shapes"]
    if ctx.attr["pad_values"] and sizes is None and shapes is None:
        raise ctx.fail("pad_values needs shapes or batch_sizes: there is no bucket to pad up to")
    if sizes is None and shapes is None:
        return
    if sizes is not None and shapes is not None:
        raise ctx.fail("give batch_sizes or shapes, not both")
    problem = buckets.size_problem(list(sizes)) if sizes is not None else buckets.shapes_problem(shapes)
    if problem:
        raise ctx.fail(f"batch_sizes {list(sizes)}: {problem}" if sizes is not None else f"shapes: {problem}")
    if sizes is not None and ctx.attr["batch"] != 1:
        raise ctx.fail("give batch or batch_sizes, not both")
    attr = "shapes" if shapes is not None else "pad_values" if ctx.attr["pad_values"] else None
    if attr is not None:
        refusing = [p.name for p in _accelerators(ctx) if p.name not in buckets.SHAPES_PLATFORMS]
        if refusing:
            raise ctx.fail(f"{attr}: the {refusing[0]} platform compiles only batch_sizes buckets ({attr} "
                           f"compiles for {', '.join(sorted(buckets.SHAPES_PLATFORMS))})")


def _trim_runtime(ctx: RuleContext, platform: str, program: Artifact, archs: tuple[str, ...] = ()
                  ) -> tuple[Artifact, Artifact]:
    """The vendor runtime the launcher loads (a PJRT plugin, HSA), trimmed from the pinned vendor trees."""
    runtime = ctx.declare_directory(f"{ctx.label.name}.{platform}.runtime")
    report = ctx.declare_file(f"{ctx.label.name}.{platform}.trim-report.json")
    argv = [python_tool("kiln.runtime_trim", "kiln.toolchain"), "-m", "kiln.runtime_trim", "trim",
            "--platform", platform, "--root", program, "--out", runtime, "--report-out", report]
    argv += [f"--arch={arch}" for arch in archs]
    for tree in vendor_trees(platform, HOSTS[ctx.config.host].arch):
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
    server_include = external_tree(launcher.SERVER_PIN, "all", launcher.SERVER_INCLUDE)
    server_source = external_tree(launcher.SERVER_PIN, "all", launcher.SERVER_SOURCE)
    argv = [zig_tool(), *launcher.link_flags(ctx.config.host, RUNTIME_DIR), *launcher.SERVER_DEFINES, "-isystem",
            server_include, "-o", output, *sources, server_source, *objects, *launcher.link_libraries()]
    ctx.action("LauncherLink", argv, [*runtime, *objects], [output], zig_target=launcher.zig_target(ctx.config.host),
               progress=f"Linking launcher {ctx.label} ({ctx.config.host})")
    return output


def _implementation(ctx: RuleContext) -> Providers:
    graph = _single_file(ctx, "graph")
    weights = _single_file(ctx, "weights") if ctx.attr["weights"] else None
    if ctx.attr["batch"] < 1:
        raise ctx.fail(f"batch must be at least 1, got {ctx.attr['batch']}")
    _check_buckets(ctx)
    if ctx.attr["precision"] not in PRECISIONS:
        raise ctx.fail(f"precision must be one of {', '.join(PRECISIONS)}, got '{ctx.attr['precision']}'")
    obj, packed, manifest = _compile(ctx, FALLBACK, graph, weights)
    program = _link_launcher(ctx, [obj])
    manifests, programs, runtimes, reports = [(FALLBACK.name, manifest)], [], [], []
    platform_weights = [(FALLBACK.name, packed)]
    for platform in _accelerators(ctx):
        *code, compiled_weights, platform_manifest = _compile(ctx, platform, graph, weights)
        manifests.append((platform.name, platform_manifest))
        platform_weights.append((platform.name, compiled_weights))
        programs += [(platform.name, f) for f in code]
        if platform.runtime:
            runtime, report = _trim_runtime(ctx, platform.name, program, _archs(ctx, platform))
            runtimes.append((platform.name, runtime))
            reports.append((platform.name, report))
    info = ModelInfo(ctx.label.name, program, packed, tuple(manifests), (graph, *([weights] if weights else [])),
                     tuple(reports), tuple(programs), tuple(runtimes), tuple(platform_weights))
    run = RunInfo((program,), env=(("KILN_WEIGHTS", packed),))
    files = (program, *(w for _, w in platform_weights), *(m for _, m in manifests), *(f for _, f in programs),
             *(r for _, r in runtimes))
    return Providers(DefaultInfo(files=files, executable=program), {ModelInfo: info, RunInfo: run})


def _accelerators(ctx: RuleContext) -> list[Platform]:
    """The configured platforms besides the fallback built into the launcher, in registry order."""
    return [p for p in PLATFORMS.values() if p is not FALLBACK and ctx.config.has(p.name)]


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
        "batch_sizes": Attr("int_list", None, doc="Instead of batch: one static variant (shape bucket) per size, "
                            "in one artifact; a run takes the smallest its inputs' batch fits, zero-padded."),
        "shapes": Attr("shape_dict_list", None, doc='Instead of batch_sizes: one shape bucket per entry, each '
                       'fixing the inputs it names like input_shapes: [{"ids": [1, 16]}, {"ids": [1, 64]}]; a run '
                       "takes the smallest (by elements) its inputs fit."),
        "pad_values": Attr("number_dict", {}, doc='Inputs a run may pad along non-leading dims up to a bucket\'s, '
                           'and with what: {"attention_mask": 0}; outputs are cut back along the dims that follow.'),
        "input_shapes": Attr("shape_dict", {}, doc='Fixes inputs\' symbolic dims: {"images": [1, 3, 640, 640]}.'),
        "input_values": Attr("value_dict", {}, doc='Fixes inputs\' values at build time: {"sr": [16000]}; the '
                             "input leaves the artifact's inputs and what depends on it folds."),
        "precision": Attr("string", "highest", doc="tpu/cpu-xla f32 dots and convolutions: 'highest' keeps f32, "
                          "'default' lets XLA:TPU use bf16 passes (faster, errors ~1e-2)."),
    },
    implementation=_implementation,
    doc=__doc__,
)
