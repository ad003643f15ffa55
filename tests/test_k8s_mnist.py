"""The mnist example's serving image and `kiln run //mnist:deploy`: built by kiln, the image read by
skopeo and umoci, the YAML validated against Kubernetes' schemas and naming that image by digest."""

from __future__ import annotations

import hashlib
import json
import shutil

import pytest
import yaml

from fixtures.registry.peers import require, run
from kiln.build_rules.oci.layout import Descriptor, Layout
from test_k8s import container, validate
from test_mnist_e2e import EXAMPLES, kiln

pytestmark = pytest.mark.e2e
OUT = "kiln-out/linux-amd64-cpu/mnist"
COMMAND = ["/mnist/bin/mnist", "serve", "--port", "8000"]


@pytest.fixture(scope="module")
def examples_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("examples-k8s") / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("kiln-out"))
    return copy


def test_deploy_prints_yaml_naming_the_serving_image_by_digest(examples_copy, kiln_cache):
    done = kiln("run", "//mnist:deploy", cache=kiln_cache, cwd=examples_copy)
    assert done.stdout == (examples_copy / OUT / "deploy.yaml").read_text()
    documents = list(yaml.safe_load_all(done.stdout))
    validate(documents)
    assert [d["metadata"]["name"] for d in documents] == ["mnist-cpu", "mnist"]
    digest = Layout.open(examples_copy / OUT / "serving_image").single_manifest().digest
    assert container(documents[0])["image"] == f"registry.example/mnist@{digest}"
    assert documents[0]["spec"]["replicas"] == 2


def test_deploy_for_gpu_platforms_asks_for_each_gpu(examples_copy, kiln_cache):
    kiln("build", "//mnist:deploy", "--platform=cuda,rocm,linux-amd64", cache=kiln_cache, cwd=examples_copy)
    out = examples_copy / "kiln-out/linux-amd64-cpu-cuda-rocm/mnist"
    documents = list(yaml.safe_load_all((out / "deploy.yaml").read_text()))
    validate(documents)
    assert [d["metadata"]["name"] for d in documents] == ["mnist-cuda", "mnist-rocm", "mnist"]
    limits = [container(d)["resources"]["limits"] for d in documents[:2]]
    assert limits == [{"memory": "256Mi", "nvidia.com/gpu": "1"}, {"memory": "256Mi", "amd.com/gpu": "1"}]
    digest = Layout.open(out / "serving_image").single_manifest().digest
    assert {container(d)["image"] for d in documents[:2]} == {f"registry.example/mnist@{digest}"}


def test_serving_image_runs_serve_and_carries_its_health_check(examples_copy, kiln_cache, tmp_path):
    require("skopeo", "umoci")
    kiln("build", "//mnist:serving_image", cache=kiln_cache, cwd=examples_copy)
    root = examples_copy / OUT / "serving_image"
    layout = Layout.open(root)
    manifest = layout.read_json(layout.single_manifest())
    config = layout.read_json(Descriptor.from_json(manifest["config"]))["config"]
    assert (config["Entrypoint"], config["Cmd"]) == (COMMAND[:1], COMMAND[1:])
    assert config["ExposedPorts"] == {"8000/tcp": {}}
    labels = json.loads(run("skopeo", "inspect", f"oci:{root}").stdout)["Labels"]
    assert labels["dev.kiln.healthcheck.liveness"] == "http://localhost:8000/v2/health/live"
    assert labels["dev.kiln.healthcheck.readiness"] == "http://localhost:8000/v2/health/ready"
    run("umoci", "unpack", "--rootless", "--image", f"{root}:latest", str(tmp_path / "bundle"))
    assert json.loads((tmp_path / "bundle" / "config.json").read_text())["process"]["args"] == COMMAND


def test_same_inputs_same_serving_image_and_yaml(examples_copy, tmp_path):
    digests = []
    for cache in (tmp_path / "a", tmp_path / "b"):
        kiln("clean", cache=cache, cwd=examples_copy)
        kiln("build", "//mnist:deploy", cache=cache, cwd=examples_copy)
        digests.append([hashlib.sha256((examples_copy / OUT / name).read_bytes()).hexdigest()
                        for name in ("serving_image/index.json", "deploy.yaml")])
    assert digests[0] == digests[1]
