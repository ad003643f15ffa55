"""oci_image: an OCI image layout built without a daemon, one per host or a multi-arch index.

    oci_image(
        name = "image",
        model = ":mnist",
        hosts = ["linux-amd64", "linux-arm64"],   # default: the configured host; two make an index
        env = {"KILN_THREADS": "2"},
        labels = {"org.opencontainers.image.source": "https://example.invalid/mnist"},
        serve_port = 8000,                        # default 0: the image runs the launcher as a CLI
    )

Layers: a base layer made from pinned Debian packages (glibc, libgcc; libstdc++ with
`libstdcxx = True`), then the weights (each distinct file once, packed into layers of at most
512 MB), then the rest of the model bundle (launcher, manifests, programs, runtimes), all laid out
as in `archive` under `/<model>/`. A code change then leaves the weight layers' blobs alone (a push
re-sends only the small top layer) and, since they sit below the code, their chain IDs too (a pull
keeps their unpacked snapshots). The entrypoint is the launcher.

With `serve_port`, the image is a server: Cmd is `serve --port PORT` (the KServe v2 server in the
launcher), ExposedPorts holds `PORT/tcp`, and the health check is carried by two labels,
`dev.kiln.healthcheck.liveness` and `dev.kiln.healthcheck.readiness`, each an HTTP URL on localhost
(`http://localhost:8000/v2/health/live`, `.../v2/health/ready`). Not Docker's `Healthcheck` config
field: it is a Docker extension the OCI image-spec lacks (podman ignores it in OCI images), Kubernetes
ignores it too (k8s_deployment writes probes), and its test is a command run inside the container,
whose base layer has no HTTP client. Orchestrators read the labels and probe from outside.
Same inputs, same digests. Output: a layout directory `<name>/`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.errors import UserError
from kiln.build_rules.k8s.manifests import HEALTH
from kiln.build_rules.providers import DefaultInfo, ModelInfo, Providers
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.rules.archive import Entries, bundle_entries
from kiln.build_rules.rules.sbom import sbom_action
from kiln.build_rules.rules.toolchains import external_tree, pinned, python_tool
from kiln.compiler.platforms import HOSTS

_BASE_PACKAGES = ("libc6", "libgcc-s1")
OCI_TOOL = ("kiln.build_rules.oci", "kiln.build_rules.packaging")
HEALTH_LABEL = "dev.kiln.healthcheck."


@dataclass(frozen=True)
class ImageInfo:
    layout: Artifact  # an OCI image layout directory (one image, or an index over several)
    model: str = ""  # the model's name: the launcher is /<model>/bin/<model>
    platforms: tuple[str, ...] = ()  # the accelerator platforms inside (cpu always)
    serve_port: int = 0  # the port `serve` listens on, 0 for an image that runs the launcher as a CLI


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


def _serve_args(port: int) -> list[str]:
    if not port:
        return []
    labels = [f"--label={HEALTH_LABEL}{probe}=http://localhost:{port}{path}"
              for probe, path in sorted(HEALTH.items())]
    return ["--cmd=serve", "--cmd=--port", f"--cmd={port}", f"--expose={port}/tcp", *labels]


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
    argv += _serve_args(ctx.attr["serve_port"])
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
    platforms = tuple(sorted({p.name for p in ctx.config.platforms}))
    return Providers(DefaultInfo(files=(layout,)),
                     {ImageInfo: ImageInfo(layout, models[0].name, platforms, ctx.attr["serve_port"])})


def _check(attrs: dict) -> None:
    if not 0 <= attrs["serve_port"] <= 65535:
        raise UserError(f"oci_image(): serve_port must be a TCP port (1-65535, or 0 for none), "
                        f"got {attrs['serve_port']}")


RULE = RuleSpec(
    name="oci_image",
    attrs={
        "model": Attr("label", mandatory=True, doc="A model() target."),
        "hosts": Attr("string_list", (), doc="Hosts to build for; two or more make an image index."),
        "env": Attr("string_dict", {}, doc="Environment of the container."),
        "labels": Attr("string_dict", {}, doc="Extra image labels."),
        "compression": Attr("string", "gzip", doc="Layer compression: gzip, zstd or none."),
        "libstdcxx": Attr("bool", False, doc="Add libstdc++ to the base layer."),
        "serve_port": Attr("int", 0, doc="Run `serve --port PORT` and expose it (0: the launcher as a CLI)."),
    },
    implementation=_implementation,
    doc=__doc__,
    check=_check,
)
