"""Push to Debian's distribution registry, pull back with skopeo, unpack with umoci, run with bwrap and qemu.

Every test starts its own `docker-registry` on 127.0.0.1 (filesystem storage in tmp). The image is a
zig-built C program over the glibc base layer made from the Debian packages.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from fixtures.registry.peers import TokenServer, TripwireProxy, deb_trees, htpasswd_auth, inspect, pull_and_unpack, \
    require, run, run_in_bundle, zig_program
from fixtures.registry.peers import make_registry  # noqa: F401  (a fixture, used by name)
from kiln.build_rules.oci.layout import Layout

pytestmark = pytest.mark.e2e
TARGETS = {"amd64": "x86_64-linux-gnu.2.28", "arm64": "aarch64-linux-gnu.2.28"}


@pytest.fixture(scope="module", autouse=True)
def peers():
    require("docker-registry", "skopeo", "umoci", "bwrap")


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Layout]:
    """One image per arch: base layer from the glibc packages, app layer with the test program."""
    root = tmp_path_factory.mktemp("images")
    return {arch: app_image(root, arch) for arch in TARGETS}


def app_image(root: Path, arch: str) -> Layout:
    base = root / f"base-{arch}.tar"
    trees = deb_trees(arch)
    run(sys.executable, "-m", "kiln.build_rules.oci.base_layer", "--arch", arch, "--output", str(base),
        *map(str, trees))
    prog = zig_program(root, TARGETS[arch])
    run(sys.executable, "-m", "kiln.build_rules.oci.image", "--out", str(root / f"image-{arch}"), "--arch", arch,
        "--layer-tar", str(base), "--layer", f"app/prog={prog}:x", "--entrypoint=/app/prog", "--cmd=world",
        "--env", "GREETING=hello", "--workdir", "/app", "--accelerator", "cpu")
    return Layout.open(root / f"image-{arch}")


def push(layout: Path, repository: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_CONFIG": "/nonexistent", **(env or {})}
    return subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.push", str(layout), "--repository",
                           repository, *args], capture_output=True, text=True, env=env)


def pushed(done: subprocess.CompletedProcess, repository: str) -> str:
    assert done.returncode == 0, done.stderr
    name, _, digest = done.stdout.strip().rpartition("@")
    assert name == repository
    return digest


def test_push_pull_run_and_push_again(images, make_registry, tmp_path):
    registry = make_registry()
    repository = f"{registry.host}/mnist"
    first = push(images["amd64"].root, repository, "--tag", "v1", "--tag", "latest")
    digest = pushed(first, repository)
    assert digest == images["amd64"].single_manifest().digest
    assert "3 uploaded" in first.stderr and "0 skipped" in first.stderr
    assert inspect(f"{repository}:v1")["Digest"] == inspect(f"{repository}:latest")["Digest"] == digest
    assert run_in_bundle(pull_and_unpack(f"{repository}:v1", tmp_path)) == "hello from kiln: world sqrt=4.0\n"
    again = push(images["amd64"].root, repository, "--tag", "v1")
    assert pushed(again, repository) == digest
    assert "0 uploaded" in again.stderr and "3 skipped" in again.stderr


def test_chunked_upload_then_cross_repository_mount(images, make_registry):
    registry = make_registry()
    chunked = push(images["amd64"].root, f"{registry.host}/base", "--tag", "v1", "--chunk-size", "65536")
    digest = pushed(chunked, f"{registry.host}/base")
    mounted = push(images["amd64"].root, f"{registry.host}/team/mnist", "--tag", "v1", "--mount-from", "base")
    assert pushed(mounted, f"{registry.host}/team/mnist") == digest
    assert "0 uploaded" in mounted.stderr and "3 mounted" in mounted.stderr
    assert inspect(f"{registry.host}/team/mnist:v1")["Digest"] == digest


def docker_config(directory: Path, config: dict) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(config))
    return {"DOCKER_CONFIG": str(directory)}


def auths(host: str, user: str, password: str) -> dict:
    return {"auths": {f"http://{host}": {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}


def test_basic_auth_from_docker_config_and_credential_helper(images, make_registry, tmp_path):
    registry = make_registry(htpasswd_auth(tmp_path, "kiln", "s3cret"))
    repository = f"{registry.host}/mnist"
    anonymous = push(images["amd64"].root, repository, "--tag", "v1")
    assert anonymous.returncode == 1 and len(anonymous.stderr.splitlines()) == 1
    assert "requires credentials" in anonymous.stderr and "Traceback" not in anonymous.stderr
    wrong = push(images["amd64"].root, repository, "--tag", "v1",
                 env=docker_config(tmp_path / "wrong", auths(registry.host, "kiln", "nope")))
    assert wrong.returncode == 1 and "refused the credentials of user 'kiln'" in wrong.stderr
    right = push(images["amd64"].root, repository, "--tag", "v1",
                 env=docker_config(tmp_path / "right", auths(registry.host, "kiln", "s3cret")))
    digest = pushed(right, repository)
    helper = tmp_path / "bin" / "docker-credential-kilntest"
    helper.parent.mkdir()
    helper.write_text("#!/bin/sh\nread host\n"  # docker-credential-helpers protocol: host on stdin, JSON out
                      "echo '{\"ServerURL\":\"'$host'\",\"Username\":\"kiln\",\"Secret\":\"s3cret\"}'\n")
    helper.chmod(0o755)
    env = {**docker_config(tmp_path / "helper", {"credHelpers": {registry.host: "kilntest"}}),
           "PATH": f"{helper.parent}:{os.environ['PATH']}"}
    assert pushed(push(images["amd64"].root, repository, "--tag", "v2", env=env), repository) == digest
    assert inspect(f"{repository}:v2", "--creds", "kiln:s3cret")["Digest"] == digest


def test_bearer_token_flow_with_a_real_registry(images, make_registry, tmp_path):
    tokens = TokenServer(tmp_path, "kiln", "t0ken")
    try:
        registry = make_registry(tokens.registry_auth())
        repository = f"{registry.host}/mnist"
        anonymous = push(images["amd64"].root, repository, "--tag", "v1")
        assert anonymous.returncode == 1 and "refused anonymous access (401)" in anonymous.stderr
        env = docker_config(tmp_path / "config", auths(registry.host, "kiln", "t0ken"))
        digest = pushed(push(images["amd64"].root, repository, "--tag", "v1", env=env), repository)
        assert digest == images["amd64"].single_manifest().digest
        scopes = {scope for query in tokens.requests for scope in query.get("scope", [])}
        assert "repository:mnist:pull,push" in scopes
        assert {query["service"][0] for query in tokens.requests} == {"kiln-test-registry"}
    finally:
        tokens.close()


def big_image(root: Path) -> Layout:
    """An 8 MiB incompressible layer first, so a byte budget trips inside it."""
    (root / "noise.bin").write_bytes(os.urandom(8 << 20))
    (root / "small.txt").write_text("small\n")
    run(sys.executable, "-m", "kiln.build_rules.oci.image", "--out", str(root / "big"), "--compression", "none",
        "--layer", f"noise.bin={root / 'noise.bin'}", "--layer", f"small.txt={root / 'small.txt'}")
    return Layout.open(root / "big")


def test_registry_stopped_mid_push_leaves_no_tag_and_next_push_completes(make_registry, tmp_path):
    layout = big_image(tmp_path)
    noise = layout.read_json(layout.single_manifest())["layers"][0]["digest"]
    registry = make_registry()
    proxy = TripwireProxy(registry.port, budget=3 << 20, on_trip=registry.stop)
    repository = f"127.0.0.1:{proxy.port}/mnist"
    try:
        failed = push(layout.root, repository, "--tag", "v1", "--chunk-size", str(1 << 20), "--attempts", "3")
        assert failed.returncode == 1, failed.stderr
        error = failed.stderr.splitlines()[-1]  # after the progress lines of blobs that made it
        assert error.startswith(f"oci.push: error: blob {noise}") and "Traceback" not in failed.stderr
        assert "gave up after 3 attempts" in error and error.endswith("no tag was written")
        registry.start()  # same port, same storage
        absent = run("skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/mnist:v1", check=False)
        assert absent.returncode != 0 and "manifest unknown" in absent.stderr
        proxy.reset(budget=1 << 40)
        retried = push(layout.root, repository, "--tag", "v1", "--chunk-size", str(1 << 20))
        assert pushed(retried, repository) == layout.single_manifest().digest
        assert f"uploaded {noise}" in retried.stderr
        assert inspect(f"{registry.host}/mnist:v1")["Digest"] == layout.single_manifest().digest
    finally:
        proxy.close()


def test_dropped_connection_is_retried(make_registry, tmp_path):
    layout = big_image(tmp_path)
    registry = make_registry()
    proxy = TripwireProxy(registry.port, budget=2 << 20)
    proxy.on_trip = lambda: threading.Timer(0.2, proxy.reset, [1 << 40]).start()
    try:
        done = push(layout.root, f"127.0.0.1:{proxy.port}/mnist", "--tag", "v1")
        assert pushed(done, f"127.0.0.1:{proxy.port}/mnist") == layout.single_manifest().digest
        assert proxy.trips == 1
        assert inspect(f"{registry.host}/mnist:v1")["Digest"] == layout.single_manifest().digest
    finally:
        proxy.close()


def test_multi_arch_index_runs_on_both_arches(images, make_registry, tmp_path):
    require("qemu-aarch64")
    out = tmp_path / "multi"
    run(sys.executable, "-m", "kiln.build_rules.oci.index", "--out", str(out), str(images["amd64"].root),
        str(images["arm64"].root))
    registry = make_registry()
    repository = f"{registry.host}/mnist"
    digest = pushed(push(out, repository, "--tag", "multi"), repository)
    raw = json.loads(run("skopeo", "inspect", "--tls-verify=false", "--raw", f"docker://{repository}:multi").stdout)
    assert raw["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["platform"]["architecture"], m["platform"].get("variant")) for m in raw["manifests"]] == \
        [("amd64", None), ("arm64", "v8")]
    assert digest == Layout.open(out).single_manifest().digest
    bundle = pull_and_unpack(f"{repository}:multi", tmp_path / "arm64", "--override-arch", "arm64")
    rootfs = bundle / "rootfs"
    emulated = run("qemu-aarch64", "-L", str(rootfs), str(rootfs / "app" / "prog"), "world").stdout
    assert emulated == "hello from kiln: world sqrt=4.0\n"
    assert run_in_bundle(pull_and_unpack(f"{repository}:multi", tmp_path / "amd64", "--override-arch", "amd64")) \
        == "hello from kiln: world sqrt=4.0\n"
