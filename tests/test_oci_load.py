"""`docker load` tarballs: both formats docker reads, uncompressed layers matching the diff_ids, the daemon path."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from fixtures.registry.peers import FakeDaemon, require, run
from kiln.build_rules.oci import image, index
from kiln.build_rules.oci.layout import Descriptor, Layout


@pytest.fixture
def layouts(tmp_path) -> dict[str, Layout]:
    """amd64 and arm64 images (zstd layers) and the multi-arch layout over both."""
    (tmp_path / "prog").write_text("#!/bin/sh\necho hi\n")
    built = {}
    for arch in ("amd64", "arm64"):
        assert image.main(["--out", str(tmp_path / arch), "--arch", arch, "--compression", "zstd",
                           "--layer", f"app/prog={tmp_path / 'prog'}:x", "--layer", f"app/arch={tmp_path / 'prog'}",
                           "--entrypoint=/app/prog"]) == 0
        built[arch] = Layout.open(tmp_path / arch)
    assert index.main(["--out", str(tmp_path / "multi"), str(tmp_path / "amd64"), str(tmp_path / "arm64")]) == 0
    built["multi"] = Layout.open(tmp_path / "multi")
    return built


def config_digest(layout: Layout) -> str:
    return layout.read_json(layout.single_manifest())["config"]["digest"]


def load(layout: Layout, output: Path, *args: str, docker_host: str = "unix:///nonexistent/docker.sock"):
    env = {**os.environ, "DOCKER_HOST": docker_host}
    return subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.load", str(layout.root), "--tag",
                           "mnist:latest", "--output", str(output), *args], capture_output=True, text=True, env=env)


def members(tarball: Path) -> dict[str, bytes]:
    with tarfile.open(tarball) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def test_tarball_has_docker_and_oci_views_of_one_image(layouts, tmp_path):
    done = load(layouts["amd64"], tmp_path / "mnist.tar", "--no-daemon")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "mnist.tar")
    files = members(tmp_path / "mnist.tar")
    [entry] = json.loads(files["manifest.json"])
    assert entry["RepoTags"] == ["mnist:latest"]
    assert entry["Config"] == "blobs/sha256/" + config_digest(layouts["amd64"])[7:]
    config = json.loads(files[entry["Config"]])
    assert config["architecture"] == "amd64"
    for path, diff_id in zip(entry["Layers"], config["rootfs"]["diff_ids"], strict=True):
        assert "sha256:" + hashlib.sha256(files[path]).hexdigest() == diff_id
        tarfile.open(fileobj=io.BytesIO(files[path])).getmembers()  # a plain, uncompressed tar
    [manifest] = json.loads(files["index.json"])["manifests"]
    assert manifest["annotations"] == {"org.opencontainers.image.ref.name": "latest"}
    oci_manifest = json.loads(files["blobs/sha256/" + manifest["digest"][7:]])
    assert [layer["digest"] for layer in oci_manifest["layers"]] == config["rootfs"]["diff_ids"]
    assert oci_manifest["config"]["digest"] == config_digest(layouts["amd64"])


def test_same_layout_gives_the_same_tarball(layouts, tmp_path):
    for name in ("a.tar", "b.tar"):
        assert load(layouts["amd64"], tmp_path / name, "--no-daemon").returncode == 0
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_arch_picks_the_image_from_an_index(layouts, tmp_path):
    assert load(layouts["multi"], tmp_path / "arm.tar", "--no-daemon", "--arch", "arm64").returncode == 0
    [entry] = json.loads(members(tmp_path / "arm.tar")["manifest.json"])
    assert entry["Config"] == "blobs/sha256/" + config_digest(layouts["arm64"])[7:]
    missing = load(layouts["multi"], tmp_path / "x.tar", "--no-daemon", "--arch", "riscv64")
    assert missing.returncode == 1 and missing.stderr.strip().endswith("has no image for riscv64")


def test_without_a_daemon_it_says_so_and_keeps_the_tarball(layouts, tmp_path):
    done = load(layouts["amd64"], tmp_path / "mnist.tar")
    assert done.returncode == 0
    assert "no Docker daemon reachable" in done.stderr and f"docker load -i {tmp_path / 'mnist.tar'}" in done.stderr
    assert done.stdout.strip() == str(tmp_path / "mnist.tar") and (tmp_path / "mnist.tar").is_file()


def test_loads_through_the_docker_sdk(layouts, tmp_path):
    image_id = config_digest(layouts["amd64"])
    daemon = FakeDaemon(tmp_path / "docker.sock", image_id)
    try:
        done = load(layouts["amd64"], tmp_path / "mnist.tar", docker_host=f"unix://{tmp_path / 'docker.sock'}")
    finally:
        daemon.close()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"loaded mnist:latest: {image_id}"
    assert daemon.loaded == [(tmp_path / "mnist.tar").read_bytes()]


@pytest.mark.e2e
def test_skopeo_reads_both_views(layouts, tmp_path):
    require("skopeo")
    assert load(layouts["amd64"], tmp_path / "mnist.tar", "--no-daemon").returncode == 0
    for transport in ("docker-archive", "oci-archive"):
        config = json.loads(run("skopeo", "inspect", "--config", f"{transport}:{tmp_path / 'mnist.tar'}").stdout)
        expected = layouts["amd64"].read_json(Descriptor.from_json(
            layouts["amd64"].read_json(layouts["amd64"].single_manifest())["config"]))
        assert config == expected
