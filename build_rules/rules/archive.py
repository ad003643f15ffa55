"""archive: a deterministic tarball that runs on a bare server.

    archive(name = "archive", model = ":mnist", compression = "gzip")

Writes `<model>.tar.gz` (or `.tar.zst`, `.tar`) laid out as
`<model>/bin/<model>` (the launcher), `<model>/weights/<model>.safetensors` and
`<model>/share/<platform>/manifest.json` and `<model>/share/sbom.spdx.json` (SPDX 2.3); for a PJRT
platform (tpu, cpu-xla) also `<model>/share/<platform>/model.mlir` and the trimmed plugin under
`<model>/lib/<platform>/`. Each distinct weight file is in the bundle once (by content): platforms whose
weights differ from the CPU's read `<model>/share/weights/<model>-<digest12>.safetensors`, named in their
manifest; `<model>/share/weights.json` says what each extra file holds and why.
Sorted entries, mtime 0, uid/gid 0, fixed modes. gzip is the default because every `tar` unpacks it with
no extra tool (minimal servers and slim images often lack zstd).
"""

from __future__ import annotations

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, ModelInfo, Providers
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.rules.sbom import sbom_action
from kiln.build_rules.rules.toolchains import python_tool

_EXTENSIONS = {"zstd": ".tar.zst", "gzip": ".tar.gz", "none": ".tar"}


Entries = list[tuple[str, Artifact, bool]]  # (path in the bundle, artifact, executable); a directory: its files


def _shared_weights(ctx: RuleContext, model: ModelInfo, prefix: str) -> tuple[Artifact, Artifact]:
    """Each distinct weight file once and every manifest naming the file it reads (packaging.weights)."""
    manifests = ctx.declare_directory(f"{prefix}.manifests")
    weights = ctx.declare_directory(f"{prefix}.weights")
    compiled = dict(model.manifests)
    argv = [python_tool("kiln.build_rules.packaging"), "-m", "kiln.build_rules.packaging.weights", "--name",
            model.name, "--primary", model.platform_weights[0][0], "--manifests-out", manifests,
            "--weights-out", weights]
    argv += [f"--platform={p}={compiled[p].path},{w.path}" for p, w in model.platform_weights]
    inputs = [*compiled.values(), *(w for _, w in model.platform_weights)]
    ctx.action("BundleWeights", argv, inputs, [manifests, weights],
               progress=f"Sharing weights by content for {ctx.label}")
    return manifests, weights


def bundle_entries(ctx: RuleContext, model: ModelInfo, prefix: str) -> tuple[Entries, Entries]:
    """Everything the launcher needs at run time: (code and manifests, weights), so images can layer them apart."""
    name = model.name
    manifests, weights = _shared_weights(ctx, model, prefix)
    code = [(f"{name}/bin/{name}", model.launcher, True), (name, manifests, False)]
    code += [(f"{name}/share/{platform}/{f.basename}", f, False) for platform, f in model.programs]
    # a trimmed runtime is a tree holding lib/<platform>/...; a directory stands for every file under it
    code += [(name, runtime, False) for _, runtime in model.runtimes]
    return code, [(name, weights, False)]


def _implementation(ctx: RuleContext) -> Providers:
    compression = ctx.attr["compression"]
    if compression not in _EXTENSIONS:
        raise ctx.fail(f"compression must be one of {', '.join(_EXTENSIONS)}, got '{compression}'")
    model = ctx.attr["model"].get(ModelInfo)
    if model is None:
        raise ctx.fail(f"model {ctx.attr['model'].label} is not a model() target")
    output = ctx.declare_file(model.name + _EXTENSIONS[compression])
    sbom = sbom_action(ctx, model, f"{ctx.label.name}.spdx.json", [])
    code, weights = bundle_entries(ctx, model, ctx.label.name)
    entries = [*code, *weights, (f"{model.name}/share/sbom.spdx.json", sbom, False)]
    argv = [python_tool("kiln.build_rules.packaging"), "-m", "kiln.build_rules.packaging.archive", "--output", output,
            "--compression", compression]
    argv += [f"{dest}={artifact.path}" + (":x" if executable else "") for dest, artifact, executable in entries]
    ctx.action("Archive", argv, [a for _, a, _ in entries], [output], progress=f"Packing {ctx.label}")
    return Providers(DefaultInfo(files=(output,)))


RULE = RuleSpec(
    name="archive",
    attrs={
        "model": Attr("label", mandatory=True, doc="A model() target."),
        "compression": Attr("string", "gzip", doc="gzip (the default), zstd or none."),
    },
    implementation=_implementation,
    doc=__doc__,
)
