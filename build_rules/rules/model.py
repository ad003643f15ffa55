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
"""

from __future__ import annotations

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, ModelInfo, Providers, RunInfo
from kiln.build_rules.rules import RuleSpec
from kiln.build_rules.rules.toolchains import python_tool, zig_cache, zig_tool
from kiln.compiler import launcher

RUNTIME_DIR = "_kiln/runtime"
_IMPLEMENTED = ("cpu",)


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


def _runtime_sources() -> list[Artifact]:
    return [Artifact(f"{RUNTIME_DIR}/{p.name}", source=True, origin=str(p)) for p in launcher.runtime_files()]


def _link_launcher(ctx: RuleContext, objects: list[Artifact]) -> Artifact:
    output = ctx.declare_file(ctx.label.name)
    runtime = _runtime_sources()
    sources = [a for a in runtime if a.path.endswith(".c")]
    argv = [zig_tool(), *launcher.link_flags(ctx.config.host, RUNTIME_DIR), "-o", output, *sources, *objects,
            *launcher.link_libraries()]
    ctx.action("LauncherLink", argv, [*runtime, *objects], [output], writable_caches=[zig_cache()],
               progress=f"Linking launcher {ctx.label} ({ctx.config.host})")
    return output


def _implementation(ctx: RuleContext) -> Providers:
    missing = [str(p) for p in ctx.config.platforms if p.name not in _IMPLEMENTED]
    if missing:
        raise ctx.fail(f"platform {', '.join(missing)} is not supported by model() yet (supported: cpu)")
    graph = _single_file(ctx, "graph")
    weights = _single_file(ctx, "weights") if ctx.attr["weights"] else None
    if ctx.attr["batch"] < 1:
        raise ctx.fail(f"batch must be at least 1, got {ctx.attr['batch']}")
    obj, packed, manifest = _compile_cpu(ctx, graph, weights)
    program = _link_launcher(ctx, [obj])
    info = ModelInfo(ctx.label.name, program, packed, (("cpu", manifest),), (graph, *([weights] if weights else [])))
    run = RunInfo((program,), env=(("KILN_WEIGHTS", packed),))
    return Providers(DefaultInfo(files=(program, packed, manifest), executable=program), {ModelInfo: info, RunInfo: run})


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
