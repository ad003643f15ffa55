"""Write Deployment + Service YAML for a serving image: `python -m kiln.build_rules.k8s.manifests`.

    manifests.py --layout kiln-out/.../serving_image --repository registry.example/mnist --app mnist \\
        --replicas 2 --port 8000 --request cpu=1 --request memory=512Mi --limit memory=512Mi \\
        --platform cuda --platform rocm --gpus 1 --tpu-accelerator tpu-v5-lite-podslice --tpu-topology 2x2 \\
        --out deploy.yaml

One Deployment per platform (`<app>-<platform>`): a pod requests one kind of accelerator, and a
node pool holds one kind, so each platform scales and schedules on its own; one Service (`<app>`)
selects the pods of all of them. The image is named by the digest of the layout's manifest or index
(`REPOSITORY@sha256:...`), never by a tag. Each container runs `serve --port PORT` with
`KILN_PLATFORM` set, so a pod that got a GPU fails loudly instead of serving on the CPU fallback;
pods of other platforms get `NVIDIA_VISIBLE_DEVICES=void` when the image carries cuda (its env asks
the NVIDIA runtime for all GPUs, which a pod that requested none must not get).
Keys are sorted and objects come in a fixed order: the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import yaml

from kiln.build_rules.oci.layout import Layout, LayoutError

ACCELERATORS = {"cuda": "nvidia.com/gpu", "rocm": "amd.com/gpu", "tpu": "google.com/tpu"}
TPU_ACCELERATOR = "cloud.google.com/gke-tpu-accelerator"
TPU_TOPOLOGY = "cloud.google.com/gke-tpu-topology"
TPU_CHIPS_PER_HOST = 8  # a larger slice spans hosts: a JobSet's job, not a Deployment's
RESOURCES = ("cpu", "ephemeral-storage", "memory")
HEALTH = {"liveness": "/v2/health/live", "readiness": "/v2/health/ready"}  # KServe v2, as the launcher serves it
NAME_LABEL = "app.kubernetes.io/name"
PLATFORM_LABEL = "kiln.dev/platform"

_QUANTITY = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
_SCALE = {"": 1, "m": Decimal("0.001"), **{s: 1000 ** (i + 1) for i, s in enumerate("kMGTPE")},
          **{s + "i": 1024 ** (i + 1) for i, s in enumerate("KMGTPE")}}
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_TOPOLOGY = re.compile(r"^[1-9]\d*(x[1-9]\d*){1,2}$")


class ManifestError(Exception):
    """An input the Kubernetes objects cannot be made from."""


def quantity(resource: str, text: str) -> Decimal:
    """The value of a Kubernetes quantity (`500m`, `2`, `512Mi`); cpu takes no byte units."""
    match = _QUANTITY.match(text)
    if not match or resource == "cpu" and (match.group(2) or "m") != "m":
        units = "m" if resource == "cpu" else "m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei"
        raise ManifestError(f"{resource} '{text}' is not a Kubernetes quantity (a number with a unit of: {units})")
    return Decimal(match.group(1)) * _SCALE[match.group(2) or ""]


def check_resources(kind: str, values: dict[str, str]) -> None:
    for resource, text in values.items():
        if resource not in RESOURCES:
            raise ManifestError(f"{kind}: unknown resource '{resource}' (one of: {', '.join(RESOURCES)}; "
                                "accelerators are requested per platform)")
        quantity(resource, text)


def check_limits(requests: dict[str, str], limits: dict[str, str]) -> None:
    for resource in sorted(requests.keys() & limits.keys()):
        if quantity(resource, limits[resource]) < quantity(resource, requests[resource]):
            raise ManifestError(f"{resource} limit {limits[resource]} is below its request {requests[resource]}")


def check_name(what: str, name: str, longest: int) -> None:
    if len(name) > longest or not _NAME.match(name):
        raise ManifestError(f"{what} '{name}' must be at most {longest} characters of a-z, 0-9 and '-', "
                            "starting with a letter and ending with a letter or digit")


def tpu_chips(topology: str) -> int:
    if not _TOPOLOGY.match(topology):
        raise ManifestError(f"TPU topology '{topology}' must look like 2x2 or 2x2x1")
    chips = 1
    for dim in topology.split("x"):
        chips *= int(dim)
    if chips > TPU_CHIPS_PER_HOST:
        raise ManifestError(f"TPU topology {topology} has {chips} chips, more than one host's "
                            f"{TPU_CHIPS_PER_HOST}; a multi-host slice needs a JobSet, not a Deployment")
    return chips


@dataclass(frozen=True)
class Spec:
    app: str
    image: str  # REPOSITORY@sha256:...
    replicas: int
    port: int
    requests: dict[str, str]
    limits: dict[str, str]
    platforms: tuple[str, ...]
    namespace: str = ""
    gpus: int = 1
    tpu_accelerator: str = ""
    tpu_topology: str = ""
    image_has_cuda: bool = False


def image_reference(layout: Path, repository: str) -> str:
    """REPOSITORY@DIGEST of the layout's one image or index (what a push of it makes pullable)."""
    return f"{repository}@{Layout.open(layout).single_manifest().digest}"


def _metadata(spec: Spec, name: str, labels: dict[str, str]) -> dict:
    return {"name": name, "labels": labels, **({"namespace": spec.namespace} if spec.namespace else {})}


def _accelerator(spec: Spec, platform: str) -> tuple[dict[str, str], dict[str, str]]:
    """(extra limits, node selector) for a pod on `platform`."""
    if platform == "tpu":
        selector = {TPU_ACCELERATOR: spec.tpu_accelerator, TPU_TOPOLOGY: spec.tpu_topology}
        return {ACCELERATORS["tpu"]: str(tpu_chips(spec.tpu_topology))}, selector
    if platform in ACCELERATORS:
        return {ACCELERATORS[platform]: str(spec.gpus)}, {}
    return {}, {}


def _probe(path: str, period: int, failures: int) -> dict:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": period, "failureThreshold": failures}


def _env(spec: Spec, platform: str) -> list[dict]:
    env = [{"name": "KILN_PLATFORM", "value": platform}]
    if spec.image_has_cuda and platform != "cuda":
        # the image asks the NVIDIA runtime for every GPU; a pod that requested none must get none
        env.append({"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"})
    return env


def _container(spec: Spec, platform: str, accelerator: dict[str, str]) -> dict:
    resources = {"requests": spec.requests, "limits": {**spec.limits, **accelerator}}
    return {"name": spec.app, "image": spec.image, "args": ["serve", "--port", str(spec.port)],
            "env": _env(spec, platform),
            "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
            # readiness stays false until weights are loaded and a warm-up inference ran
            "startupProbe": _probe(HEALTH["liveness"], 2, 30), "livenessProbe": _probe(HEALTH["liveness"], 10, 3),
            "readinessProbe": _probe(HEALTH["readiness"], 5, 3),
            "resources": {k: v for k, v in resources.items() if v}}


def deployment(spec: Spec, platform: str) -> dict:
    labels = {NAME_LABEL: spec.app, PLATFORM_LABEL: platform}
    accelerator, selector = _accelerator(spec, platform)
    pod = {"containers": [_container(spec, platform, accelerator)], **({"nodeSelector": selector} if selector else {})}
    metadata = _metadata(spec, f"{spec.app}-{platform}", labels)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": metadata,
            "spec": {"replicas": spec.replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": pod}}}


def service(spec: Spec) -> dict:
    labels = {NAME_LABEL: spec.app}
    return {"apiVersion": "v1", "kind": "Service", "metadata": _metadata(spec, spec.app, labels),
            "spec": {"selector": labels, "ports": [{"name": "http", "port": spec.port, "targetPort": "http",
                                                     "protocol": "TCP"}]}}


def objects(spec: Spec) -> list[dict]:
    """Every platform's Deployment (in name order), then the Service over all of them."""
    return [*(deployment(spec, p) for p in sorted(spec.platforms)), service(spec)]


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True  # a label map used twice is written twice, not as &anchor/*alias: plain YAML for every reader


def to_yaml(documents: list[dict]) -> str:
    return "".join("---\n" + yaml.dump(d, Dumper=_Dumper, sort_keys=True, default_flow_style=False)
                   for d in documents)


def _spec(args: argparse.Namespace) -> Spec:
    requests, limits = _pairs(args.request), _pairs(args.limit)
    check_resources("requests", requests)
    check_resources("limits", limits)
    check_limits(requests, limits)
    return Spec(args.app, image_reference(Path(args.layout), args.repository), args.replicas, args.port, requests,
                limits, tuple(args.platform), args.namespace, args.gpus, args.tpu_accelerator, args.tpu_topology,
                args.image_has_cuda)


def _pairs(items: list[str]) -> dict[str, str]:
    return dict(sorted(item.partition("=")[::2] for item in items))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layout", required=True, help="OCI image layout holding one image or one index")
    p.add_argument("--repository", required=True, help="HOST[:PORT]/NAME the image is pushed to")
    p.add_argument("--app", required=True, help="name of the Service; Deployments are APP-PLATFORM")
    p.add_argument("--namespace", default="")
    p.add_argument("--replicas", type=int, default=1, help="per Deployment")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--request", action="append", default=[], metavar="RESOURCE=QUANTITY")
    p.add_argument("--limit", action="append", default=[], metavar="RESOURCE=QUANTITY")
    p.add_argument("--platform", action="append", required=True, help="one Deployment per platform")
    p.add_argument("--gpus", type=int, default=1, help="GPUs per pod (cuda, rocm)")
    p.add_argument("--tpu-accelerator", default="tpu-v5-lite-podslice")
    p.add_argument("--tpu-topology", default="1x1")
    p.add_argument("--image-has-cuda", action="store_true", help="the image sets NVIDIA_VISIBLE_DEVICES=all")
    p.add_argument("--out", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        text = to_yaml(objects(_spec(args)))
        Path(args.out).write_text(text)
    except (ManifestError, LayoutError, OSError) as e:
        print(f"k8s.manifests: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
