"""oci_image: an OCI image layout built without a daemon, one per host or a multi-arch index.

    oci_image(
        name = "image",
        model = ":mnist",
        hosts = ["linux-amd64", "linux-arm64"],   # default: the configured host; two make an index
        env = {"KILN_THREADS": "2"},
        labels = {"org.opencontainers.image.source": "https://example.invalid/mnist"},
    )

Layers: a base layer made from pinned Debian packages (glibc, libgcc; libstdc++ with
`libstdcxx = True`), then the weights (each distinct file once, packed into layers of at most
512 MB), then the rest of the model bundle (launcher, manifests, programs, runtimes), all laid out
as in `archive` under `/<model>/`. A code change then leaves the weight layers' blobs alone (a push
re-sends only the small top layer) and, since they sit below the code, their chain IDs too (a pull
keeps their unpacked snapshots). The entrypoint is the launcher.
Same inputs, same digests. Output: a layout directory `<name>/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, ModelInfo, Providers
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.rules.archive import Entries, bundle_entries
from kiln.build_rules.rules.sbom import sbom_action
from kiln.build_rules.rules.toolchains import external_tree, pinned, python_tool
from kiln.compiler.platforms import HOSTS

_BASE_PACKAGES = ("libc6", "libgcc-s1")
OCI_TOOL = ("kiln.build_rules.oci", "kiln.build_rules.packaging")


@dataclass(frozen=True)
class ImageInfo:
    layout: Artifact  # an OCI image layout directory (one image, or an index over several)


def _base_packages(ctx: RuleContext) -> list[str]:
    return [*_BASE_PACKAGES, *(("libstdc++6",) if ctx.attr["libstdcxx"] else ())]


def _base_layer(ctx: RuleContext, arch: str) -> Artifact:
    trees = [external_tree(p, arch) for p in _base_packages(ctx)]
    output = ctx.declare_file(f"{ctx.label.name}.base-{arch}.tar")
    argv = [python_tool(*OCI_TOOL), "-m", "kiln.build_rules.oci.base_layer", "--arch", arch, "--output", output,
            *(["--libstdcxx"] if ctx.attr["libstdcxx"] else []), *trees]
    ctx.action("OciBaseLayer", argv, [], [output], progress=f"Making the {arch} base layer for {ctx.label}")
    return output


def _platform_env(ctx: RuleContext) -> dict[str, str]:
    """With cuda inside, ask the NVIDIA container toolkit to mount the host driver (libcuda is never bundled)."""
    if not ctx.config.has("cuda"):
        return {}
    return {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "compute,utility"}


def _specs(entries: Entries) -> list[str]:
    return [f"{dest}={artifact.path}" + (":x" if executable else "") for dest, artifact, executable in entries]


def _image(ctx: RuleContext, model: ModelInfo, host: str, name: str) -> Artifact:
    arch = HOSTS[host].arch
    base = _base_layer(ctx, arch)
    layout = ctx.declare_directory(name)
    pins = [f"{a.name}:{arch}=={a.version}:{a.sha256}" for a in (pinned(p, arch) for p in _base_packages(ctx))]
    sbom = sbom_action(ctx, model, f"{name}.spdx.json", pins)
    code, weights = bundle_entries(ctx, model, name)
    code.append((f"{model.name}/share/sbom.spdx.json", sbom, False))
    argv = [python_tool(*OCI_TOOL), "-m", "kiln.build_rules.oci.image", "--out", layout, "--arch", arch,
            "--compression", ctx.attr["compression"], "--layer-tar", base, "--split-layers", *_specs(weights),
            "--layer", *_specs(code), f"--entrypoint=/{model.name}/bin/{model.name}", "--workdir", "/",
            "--label", f"org.opencontainers.image.title={model.name}"]
    argv += [f"--env={k}={v}" for k, v in sorted({**_platform_env(ctx), **ctx.attr["env"]}.items())]
    argv += [f"--label={k}={v}" for k, v in sorted(ctx.attr["labels"].items())]
    argv += [f"--accelerator={p.name}" for p in ctx.config.platforms]
    ctx.action("OciImage", argv, [base, *(a for _, a, _ in [*weights, *code])], [layout],
               progress=f"Building OCI image {ctx.label} ({host})")
    return layout


def _implementation(ctx: RuleContext) -> Providers:
    hosts = list(ctx.attr["hosts"]) or [ctx.config.host]
    unknown = [h for h in hosts if h not in HOSTS]
    if unknown:
        raise ctx.fail(f"hosts: unknown host '{unknown[0]}'; valid: {', '.join(HOSTS)}")
    if ctx.attr["compression"] not in ("gzip", "zstd", "none"):
        raise ctx.fail(f"compression must be gzip, zstd or none, got '{ctx.attr['compression']}'")
    models = [ctx.dep_for_host("model", host).get(ModelInfo) for host in hosts]
    if models[0] is None:
        raise ctx.fail(f"model {ctx.attr['model'].label} is not a model() target")
    if len(hosts) == 1:
        layout = _image(ctx, models[0], hosts[0], ctx.label.name)
    else:
        images = [_image(ctx, m, h, f"{ctx.label.name}.{HOSTS[h].arch}") for m, h in zip(models, hosts)]
        layout = ctx.declare_directory(ctx.label.name)
        ctx.action("OciIndex", [python_tool(*OCI_TOOL), "-m", "kiln.build_rules.oci.index", "--out", layout, *images],
                   images, [layout], progress=f"Building OCI index {ctx.label}")
    return Providers(DefaultInfo(files=(layout,)), {ImageInfo: ImageInfo(layout)})


RULE = RuleSpec(
    name="oci_image",
    attrs={
        "model": Attr("label", mandatory=True, doc="A model() target."),
        "hosts": Attr("string_list", (), doc="Hosts to build for; two or more make an image index."),
        "env": Attr("string_dict", {}, doc="Environment of the container."),
        "labels": Attr("string_dict", {}, doc="Extra image labels."),
        "compression": Attr("string", "gzip", doc="Layer compression: gzip, zstd or none."),
        "libstdcxx": Attr("bool", False, doc="Add libstdc++ to the base layer."),
    },
    implementation=_implementation,
    doc=__doc__,
)
