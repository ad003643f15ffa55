"""The mnist OCI image: built by kiln, pushed by `kiln run //mnist:push` to a real registry, pulled
back by skopeo, unpacked by umoci and started with bubblewrap on nothing but its own rootfs."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import pytest

from fixtures.registry.peers import inspect, pull_and_unpack, require, run, run_in_bundle
from fixtures.registry.peers import make_registry  # noqa: F401  (a fixture, used by name)
from test_mnist_e2e import EXAMPLES, kiln, predicted_class, reference_classes

pytestmark = pytest.mark.e2e
OUT = "kiln-out/linux-amd64-cpu/mnist"


@pytest.fixture(scope="module")
def examples_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("examples-image") / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("kiln-out"))
    return copy


def with_sample(bundle, sample: str) -> str:
    """Run the image's entrypoint on a sample copied into its rootfs."""
    shutil.copy(EXAMPLES / "mnist" / "samples" / sample, bundle / "rootfs" / sample)
    original = bundle / "config.json.orig"
    if not original.exists():
        shutil.copy(bundle / "config.json", original)
    config = json.loads(original.read_text())
    config["process"]["args"] += ["--input", f"/{sample}"]
    (bundle / "config.json").write_text(json.dumps(config))
    return run_in_bundle(bundle)


def test_push_pull_and_run(examples_copy, kiln_cache, make_registry, tmp_path):
    require("skopeo", "umoci", "bwrap", "docker-registry")
    registry = make_registry()
    repository = f"{registry.host}/mnist"
    done = kiln("run", "//mnist:push", "--", "--repository", repository, "--tag", "v1", cache=kiln_cache,
                cwd=examples_copy)
    name, _, digest = done.stdout.strip().rpartition("@")
    assert name == repository and digest.startswith("sha256:")
    assert inspect(f"{repository}:v1")["Digest"] == digest
    assert "latest" not in run("skopeo", "list-tags", "--tls-verify=false", f"docker://{repository}").stdout
    bundle = pull_and_unpack(f"{repository}:v1", tmp_path)
    assert not (bundle / "rootfs" / "usr" / "share" / "doc").exists()
    expected = reference_classes()
    for sample in ("digit_2.npy", "digit_8.npy"):
        assert predicted_class(with_sample(bundle, sample)) == expected[sample]
    again = kiln("run", "//mnist:push", "--", "--repository", repository, "--tag", "v1", cache=kiln_cache,
                 cwd=examples_copy)
    assert again.stdout == done.stdout and "0 uploaded" in again.stderr


def test_layout_is_valid_and_small(examples_copy, kiln_cache):
    require("skopeo", "umoci")
    kiln("build", "//mnist:image", cache=kiln_cache, cwd=examples_copy)
    layout = examples_copy / OUT / "image"
    info = json.loads(run("skopeo", "inspect", f"oci:{layout}").stdout)
    assert info["Architecture"] == "amd64" and info["Labels"]["dev.kiln.platforms"] == "cpu"
    run("umoci", "stat", "--image", f"{layout}:latest")
    manifest = json.loads(run("skopeo", "inspect", "--raw", f"oci:{layout}").stdout)
    assert sum(layer["size"] for layer in manifest["layers"]) < 5_000_000


def test_same_inputs_same_digests(examples_copy, tmp_path):
    digests = []
    for attempt in range(2):
        cache = tmp_path / f"cache{attempt}"
        kiln("clean", cache=cache, cwd=examples_copy)
        kiln("build", "//mnist:image", cache=cache, cwd=examples_copy)
        digests.append(hashlib.sha256((examples_copy / OUT / "image" / "index.json").read_bytes()).hexdigest())
    assert digests[0] == digests[1]


def test_multiarch_index_runs_arm64_under_qemu(examples_copy, kiln_cache, tmp_path):
    require("skopeo", "umoci", "qemu-aarch64")
    kiln("build", "//mnist:image_multiarch", cache=kiln_cache, cwd=examples_copy)
    layout = examples_copy / OUT / "image_multiarch"
    index = json.loads(run("skopeo", "inspect", "--raw", f"oci:{layout}").stdout)
    assert sorted(m["platform"]["architecture"] for m in index["manifests"]) == ["amd64", "arm64"]
    run("skopeo", "copy", "--override-arch", "arm64", f"oci:{layout}", f"oci:{tmp_path}/arm:latest")
    run("umoci", "unpack", "--rootless", "--image", f"{tmp_path}/arm:latest", str(tmp_path / "bundle"))
    rootfs = tmp_path / "bundle" / "rootfs"
    sample = EXAMPLES / "mnist" / "samples" / "digit_5.npy"
    done = subprocess.run(["qemu-aarch64", "-L", str(rootfs), str(rootfs / "mnist/bin/mnist"), "--threads", "1",
                           "--input", str(sample)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert predicted_class(done.stdout) == reference_classes()["digit_5.npy"]


def test_load_without_a_daemon_leaves_the_tarball(examples_copy, kiln_cache):
    done = subprocess.run([*kiln_command(), "run", "//mnist:load"], cwd=examples_copy, capture_output=True,
                          text=True, env=no_docker_env(kiln_cache))
    assert done.returncode == 0, done.stderr
    assert (examples_copy / OUT / "load.tar").is_file()
    assert "load.tar" in done.stdout + done.stderr


def kiln_command() -> list[str]:
    import sys
    return [sys.executable, "-m", "kiln.build_rules"]


def no_docker_env(cache) -> dict[str, str]:
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return {**env, "XDG_CACHE_HOME": str(cache), "DOCKER_HOST": "unix:///nonexistent/docker.sock"}


def test_cuda_image_asks_for_the_host_driver(examples_copy, kiln_cache):
    require("skopeo")
    kiln("build", "//mnist:image", "--platform=cuda,linux-amd64", cache=kiln_cache, cwd=examples_copy)
    layout = examples_copy / "kiln-out/linux-amd64-cpu-cuda/mnist/image"
    config = json.loads(run("skopeo", "inspect", "--config", f"oci:{layout}").stdout)["config"]
    assert {"NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility"} <= set(config["Env"])
    assert config["Labels"]["dev.kiln.platforms"] == "cpu,cuda"
