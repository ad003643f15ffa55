"""k8s_deployment: Deployment + Service YAML valid for Kubernetes' schemas, the image by digest, one
Deployment per accelerator, and `kiln run` printing or applying it."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from kiln.build_rules.k8s import deploy, manifests
from kiln.build_rules.oci import image, index
from kiln.build_rules.oci.layout import Layout
from test_build_errors import one_line_error
from conftest import REPO

KUBERNETES = ("1.31.0", "1.37.0")  # the oldest still supported upstream and the newest the package ships
REPOSITORY = "registry.example/team/mnist"


@pytest.fixture
def layout(tmp_path) -> Path:
    (tmp_path / "mnist").write_bytes(b"#!/bin/sh\n")
    argv = ["--out", str(tmp_path / "img"), "--layer", f"mnist/bin/mnist={tmp_path}/mnist:x",
            "--entrypoint=/mnist/bin/mnist", "--cmd=serve", "--cmd=--port", "--cmd=8000", "--expose=8000/tcp"]
    assert image.main(argv) == 0
    return tmp_path / "img"


def write(layout: Path, *extra: str) -> tuple[str, list[dict]]:
    out = layout.parent / "deploy.yaml"
    argv = ["--layout", str(layout), "--repository", REPOSITORY, "--app", "mnist", "--replicas", "2",
            "--request", "cpu=500m", "--request", "memory=256Mi", "--limit", "memory=256Mi", "--out", str(out), *extra]
    assert manifests.main(argv) == 0
    text = out.read_text()
    return text, list(yaml.safe_load_all(text))


def validate(documents: list[dict]) -> None:
    for document in documents:
        for version in KUBERNETES:
            kubernetes_validate.validate(document, version, strict=True)


def deployments(documents: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["labels"]["kiln.dev/platform"]: d for d in documents if d["kind"] == "Deployment"}


def container(deployment: dict) -> dict:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_cpu_image_gives_one_deployment_and_a_service(layout):
    text, documents = write(layout, "--platform", "cpu")
    validate(documents)
    assert [d["kind"] for d in documents] == ["Deployment", "Service"]
    assert not re.search(r"[&*]id\d", text)  # no YAML anchors and aliases
    digest = Layout.open(layout).single_manifest().digest
    cpu = container(deployments(documents)["cpu"])
    assert cpu["image"] == f"{REPOSITORY}@{digest}" and re.fullmatch(r".+@sha256:[0-9a-f]{64}", cpu["image"])
    assert cpu["args"] == ["serve", "--port", "8000"] and cpu["ports"][0]["containerPort"] == 8000
    assert cpu["livenessProbe"]["httpGet"] == {"path": "/v2/health/live", "port": "http"}
    assert cpu["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": "http"}
    assert cpu["resources"] == {"requests": {"cpu": "500m", "memory": "256Mi"}, "limits": {"memory": "256Mi"}}
    assert cpu["env"] == [{"name": "KILN_PLATFORM", "value": "cpu"}]
    assert "nodeSelector" not in deployments(documents)["cpu"]["spec"]["template"]["spec"]
    assert deployments(documents)["cpu"]["spec"]["replicas"] == 2


def test_each_accelerator_gets_its_deployment_resources_and_node_selectors(layout):
    text, documents = write(layout, "--platform", "tpu", "--platform", "cuda", "--platform", "rocm", "--gpus", "2",
                            "--tpu-accelerator", "tpu-v5-lite-podslice", "--tpu-topology", "2x2", "--image-has-cuda")
    validate(documents)
    by_platform = deployments(documents)
    assert [d["metadata"]["name"] for d in documents] == ["mnist-cuda", "mnist-rocm", "mnist-tpu", "mnist"]
    limits = {p: container(d)["resources"]["limits"] for p, d in by_platform.items()}
    assert limits == {"cuda": {"memory": "256Mi", "nvidia.com/gpu": "2"},
                      "rocm": {"memory": "256Mi", "amd.com/gpu": "2"},
                      "tpu": {"memory": "256Mi", "google.com/tpu": "4"}}
    selectors = {p: d["spec"]["template"]["spec"].get("nodeSelector") for p, d in by_platform.items()}
    assert selectors == {"cuda": None, "rocm": None, "tpu": {
        "cloud.google.com/gke-tpu-accelerator": "tpu-v5-lite-podslice", "cloud.google.com/gke-tpu-topology": "2x2"}}
    hidden = {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}  # only the cuda pods see NVIDIA GPUs
    assert [p for p, d in by_platform.items() if hidden in container(d)["env"]] == ["rocm", "tpu"]
    service = documents[-1]
    assert service["kind"] == "Service" and service["spec"]["selector"] == {"app.kubernetes.io/name": "mnist"}
    for deployment in by_platform.values():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= pod_labels.items()
        assert deployment["spec"]["selector"]["matchLabels"] == pod_labels


def test_output_is_deterministic_whatever_the_flag_order(layout):
    first, _ = write(layout, "--platform", "rocm", "--platform", "cuda")
    second, _ = write(layout, "--platform", "cuda", "--platform", "rocm")
    assert first == second


def test_a_multiarch_image_is_named_by_its_index_digest(layout, tmp_path):
    arm64 = tmp_path / "arm64"
    assert image.main(["--out", str(arm64), "--arch", "arm64", "--layer", f"mnist/bin/mnist={tmp_path}/mnist:x"]) == 0
    assert index.main(["--out", str(tmp_path / "multi"), str(layout), str(arm64)]) == 0
    _, documents = write(tmp_path / "multi", "--platform", "cpu")
    index_digest = Layout.open(tmp_path / "multi").single_manifest().digest
    assert container(documents[0])["image"] == f"{REPOSITORY}@{index_digest}"


@pytest.mark.parametrize("resource, text, ok", [
    ("cpu", "500m", True), ("cpu", "2", True), ("cpu", "0.5", True), ("memory", "512Mi", True),
    ("memory", "1G", True), ("memory", "512MB", False), ("cpu", "1Gi", False), ("memory", "-1Gi", False),
    ("memory", "lots", False)])
def test_quantities(resource, text, ok):
    if ok:
        assert manifests.quantity(resource, text) > 0
    else:
        with pytest.raises(manifests.ManifestError, match="is not a Kubernetes quantity"):
            manifests.quantity(resource, text)


def test_a_multi_host_tpu_slice_is_refused():
    assert manifests.tpu_chips("2x4") == 8
    with pytest.raises(manifests.ManifestError, match="needs a JobSet"):
        manifests.tpu_chips("4x4")


def test_run_prints_the_yaml_and_applies_only_when_asked(layout, tmp_path, monkeypatch, capsys):
    text, _ = write(layout, "--platform", "cpu")
    yaml_file = str(layout.parent / "deploy.yaml")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    kubectl = bin_dir / "kubectl"
    kubectl.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/stdin\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    assert deploy.main([yaml_file]) == 0
    assert capsys.readouterr().out == text and not (tmp_path / "stdin").exists()
    assert deploy.main([yaml_file, "--apply", "--context", "prod", "--dry-run=server"]) == 0
    assert (tmp_path / "stdin").read_text() == text
    assert (tmp_path / "args").read_text().split() == ["apply", "-f", "-", "--context=prod", "--dry-run=server"]


def test_apply_without_kubectl_is_one_line(layout, tmp_path):
    write(layout, "--platform", "cpu")
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules.k8s.deploy", str(layout.parent / "deploy.yaml"),
                           "--apply"], capture_output=True, text=True, env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.splitlines() == [done.stderr.strip()] and "needs kubectl on PATH" in done.stderr


IMAGE = 'model(name = "m", graph = "m.onnx")\noci_image(name = "image", model = ":m", serve_port = 8000)\n'


@pytest.mark.parametrize("rule, message", [
    ('k8s_deployment(name = "d", image = ":image", repository = "r.example/m", replicas = -1)',
     "k8s_deployment(): replicas must be at least 0, got -1"),
    ('k8s_deployment(name = "d", image = ":image", repository = "r.example/m", resources = {"memory": "512MB"})',
     "k8s_deployment(): memory '512MB' is not a Kubernetes quantity"),
    ('k8s_deployment(name = "d", image = ":image", repository = "r.example/m", resources = {"gpu": "1"})',
     "k8s_deployment(): resources: unknown resource 'gpu'"),
    ('k8s_deployment(name = "d", image = ":image", repository = "r.example/m", resources = {"cpu": "2"}, '
     'limits = {"cpu": "1"})', "k8s_deployment(): cpu limit 1 is below its request 2"),
    ('k8s_deployment(name = "d", image = ":image", repository = "r.example/m", platforms = ["gpu"])',
     "k8s_deployment(): platforms: unknown platform 'gpu'"),
    ('k8s_deployment(name = "d", image = ":image", repository = "r.example/m", app = "My_Model")',
     "k8s_deployment(): app 'My_Model' must be at most"),
    ('k8s_deployment(name = "d", image = ":image", repository = "mnist:v1")',
     "k8s_deployment(): 'mnist:v1' does not start with a registry host"),
    ('oci_image(name = "bad", model = ":m", serve_port = 70000)', "oci_image(): serve_port must be a TCP port"),
])
def test_attribute_mistakes_name_the_build_file_line(workspace, rule, message):
    workspace.write("p/BUILD.kiln", IMAGE + rule + "\n")
    line = one_line_error(workspace.kiln("build", "//p:all"))
    assert line.startswith("ERROR: p/BUILD.kiln:3:1: ") and message in line, line


@pytest.mark.parametrize("deploy, message", [
    ('k8s_deployment(name = "d", image = ":push")', "//p:d (p/BUILD.kiln:4:1): no repository to pull the image from"),
    ('k8s_deployment(name = "d", image = ":push", repository = "r.example/m", platforms = ["cuda"])',
     "//p:d (p/BUILD.kiln:4:1): platforms: image //p:push carries no 'cuda' (it has cpu; build with --platform=cuda)"),
])
def test_analysis_mistakes_name_the_build_file_line(workspace, deploy, message):
    workspace.write("p/BUILD.kiln", IMAGE + 'oci_push(name = "push", image = ":image")\n' + deploy + "\n")
    shutil.copy(REPO / "examples" / "mnist" / "mnist.onnx", workspace.root / "p" / "m.onnx")
    line = one_line_error(workspace.kiln("build", "//p:d"))
    assert message in line, line


def test_an_image_that_is_not_an_image_is_one_line(workspace):
    workspace.write("p/BUILD.kiln", 'genrule(name = "g", outs = ["o"], cmd = "true")\n'
                    'k8s_deployment(name = "d", image = ":g", repository = "r.example/m")\n')
    line = one_line_error(workspace.kiln("build", "//p:d"))
    assert "//p:d (p/BUILD.kiln:2:1): image //p:g is not an oci_image() or oci_push() target" in line, line
