"""k8s_deployment: Deployment + Service YAML for a serving image; `kiln run` prints or applies it.

    k8s_deployment(
        name = "deploy",
        image = ":push_serving",          # an oci_push target (its repository), or an oci_image + repository
        replicas = 2,                     # per Deployment
        resources = {"cpu": "1", "memory": "512Mi"},   # requests; the memory request is also the limit
        limits = {"cpu": "2"},            # optional, on top of that
    )

    kiln run //mnist:deploy                       # prints the YAML
    kiln run //mnist:deploy -- --apply            # kubectl apply -f -

Output `<name>.yaml`: one Deployment per platform the image carries (`<app>-cuda`, `<app>-rocm`,
`<app>-tpu`; `<app>-cpu` when it carries no accelerator, or `platforms` to choose), since a pod
requests one kind of accelerator and a node pool offers one; a Service `<app>` selects the pods of
all of them. Each pod asks for its accelerator in limits: `nvidia.com/gpu` (cuda) or `amd.com/gpu`
(rocm), `gpus` of them; `google.com/tpu` with GKE's `cloud.google.com/gke-tpu-accelerator` and
`-topology` node selectors, as many chips as the single-host `tpu_topology` holds; nothing for cpu.
The image is `REPOSITORY@sha256:...` of the built layout's manifest or index, never a tag: push it
first (`kiln run` of the oci_push target) so the cluster can pull it. Probes use the launcher's KServe
v2 health endpoints. Memory is limited to its request by default (predictable OOM) and CPU is not
(an inference pod throttled by CFS gets slower, not safer).
"""

from __future__ import annotations

from kiln.build_rules.actions import Arg, Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.errors import UserError
from kiln.build_rules.k8s import manifests
from kiln.build_rules.oci.registry import Reference, RegistryError
from kiln.build_rules.providers import DefaultInfo, Providers, RunInfo
from kiln.build_rules.rules.oci_image import OCI_TOOL, ImageInfo
from kiln.build_rules.rules.oci_push import PushInfo
from kiln.build_rules.rules.toolchains import python_tool
from kiln.build_rules.targets import RuleSpec

K8S_TOOL = ("kiln.build_rules.k8s", *OCI_TOOL)
_SUFFIX = len("-cpu-xla")  # the longest platform suffix of a Deployment name


def _image(ctx: RuleContext) -> ImageInfo:
    image = ctx.attr["image"].get(ImageInfo)
    if image is None:
        raise ctx.fail(f"image {ctx.attr['image'].label} is not an oci_image() or oci_push() target")
    return image


def _repository(ctx: RuleContext) -> str:
    push = ctx.attr["image"].get(PushInfo)
    repository = ctx.attr["repository"] or (push.repository if push else "")
    if not repository:
        raise ctx.fail("no repository to pull the image from: set repository, or make image an oci_push() "
                       "target that has one")
    try:
        return str(Reference.parse(repository))
    except RegistryError as error:
        raise ctx.fail(f"repository: {error}") from None


def _platforms(ctx: RuleContext, image: ImageInfo) -> list[str]:
    """The platforms asked for, else every accelerator inside, else cpu."""
    chosen = list(ctx.attr["platforms"]) or [p for p in image.platforms if p in manifests.ACCELERATORS] or ["cpu"]
    missing = [p for p in chosen if p not in image.platforms]
    if missing:
        raise ctx.fail(f"platforms: image {ctx.attr['image'].label} carries no '{missing[0]}' "
                       f"(it has {', '.join(image.platforms)}; build with --platform={missing[0]})")
    return chosen


def _app(ctx: RuleContext, image: ImageInfo) -> str:
    app = ctx.attr["app"] or image.model
    try:
        manifests.check_name("app", app, 63 - _SUFFIX)
    except manifests.ManifestError as error:
        raise ctx.fail(f"{error}; set app to name the Deployments and Service") from None
    return app


def _argv(ctx: RuleContext, image: ImageInfo, output: Artifact) -> list[Arg]:
    limits = {**{k: v for k, v in ctx.attr["resources"].items() if k == "memory"}, **ctx.attr["limits"]}
    argv = [python_tool(*K8S_TOOL), "-m", "kiln.build_rules.k8s.manifests", "--layout", image.layout,
            "--repository", _repository(ctx), "--app", _app(ctx, image), "--replicas", str(ctx.attr["replicas"]),
            "--port", str(ctx.attr["port"] or image.serve_port or 8000), "--gpus", str(ctx.attr["gpus"]),
            "--tpu-accelerator", ctx.attr["tpu_accelerator"], "--tpu-topology", ctx.attr["tpu_topology"],
            "--out", output]
    argv += [f"--request={k}={v}" for k, v in sorted(ctx.attr["resources"].items())]
    argv += [f"--limit={k}={v}" for k, v in sorted(limits.items())]
    argv += [f"--platform={p}" for p in _platforms(ctx, image)]
    argv += ["--image-has-cuda"] if "cuda" in image.platforms else []
    return argv + ([f"--namespace={ctx.attr['namespace']}"] if ctx.attr["namespace"] else [])


def _implementation(ctx: RuleContext) -> Providers:
    image = _image(ctx)
    output = ctx.declare_file(f"{ctx.label.name}.yaml")
    ctx.action("K8sManifests", _argv(ctx, image, output), [image.layout], [output],
               progress=f"Writing Kubernetes objects for {ctx.label}")
    run = (python_tool(*K8S_TOOL).path, "-m", "kiln.build_rules.k8s.deploy", output)
    return Providers(DefaultInfo(files=(output,)), {RunInfo: RunInfo(run)})


def _check(attrs: dict) -> None:
    """Values that need no deps, so their errors name the BUILD file's line."""
    try:
        _check_values(attrs)
        if attrs["repository"]:
            Reference.parse(attrs["repository"])
    except (manifests.ManifestError, RegistryError) as error:
        raise UserError(f"k8s_deployment(): {error}") from None


def _check_values(attrs: dict) -> None:
    for key, low in (("replicas", 0), ("gpus", 1)):
        if attrs[key] < low:
            raise manifests.ManifestError(f"{key} must be at least {low}, got {attrs[key]}")
    if not 0 <= attrs["port"] <= 65535:
        raise manifests.ManifestError(f"port must be a TCP port (1-65535, or 0 for the image's), got {attrs['port']}")
    manifests.check_resources("resources", attrs["resources"])
    manifests.check_resources("limits", attrs["limits"])
    manifests.check_limits(attrs["resources"], attrs["limits"])
    unknown = [p for p in attrs["platforms"] if p not in ("cpu", "cpu-xla", *manifests.ACCELERATORS)]
    if unknown:
        raise manifests.ManifestError(f"platforms: unknown platform '{unknown[0]}'")
    manifests.tpu_chips(attrs["tpu_topology"])
    for key in ("app", "namespace"):
        if attrs[key]:
            manifests.check_name(key, attrs[key], 63 - _SUFFIX if key == "app" else 63)


RULE = RuleSpec(
    name="k8s_deployment",
    attrs={
        "image": Attr("label", mandatory=True, doc="An oci_push() target, or an oci_image() with repository."),
        "repository": Attr("string", "", doc="HOST[:PORT]/NAME to pull from (default: the oci_push target's)."),
        "app": Attr("string", "", doc="Name of the Service, Deployments are APP-PLATFORM (default: the model's)."),
        "namespace": Attr("string", "", doc="Namespace of the objects (default: kubectl's)."),
        "replicas": Attr("int", 1, doc="Pods per Deployment."),
        "port": Attr("int", 0, doc="Port the server listens on (default: the image's serve_port, else 8000)."),
        "resources": Attr("string_dict", {}, doc="Requests: cpu, memory, ephemeral-storage."),
        "limits": Attr("string_dict", {}, doc="Limits, on top of the memory request."),
        "platforms": Attr("string_list", (), doc="Platforms to deploy (default: the image's accelerators, else cpu)."),
        "gpus": Attr("int", 1, doc="GPUs per pod on cuda and rocm."),
        "tpu_accelerator": Attr("string", "tpu-v5-lite-podslice", doc="GKE TPU accelerator node selector."),
        "tpu_topology": Attr("string", "1x1", doc="GKE TPU topology of one host; its chips are requested."),
    },
    implementation=_implementation,
    doc=__doc__,
    check=_check,
)
