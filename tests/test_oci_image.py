"""OCI layouts without a daemon: digests are reproducible, configs carry what was asked, peers accept them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from fixtures.registry.peers import require, run
from kiln.build_rules.oci import base_layer, image, index
from kiln.build_rules.oci.layout import LAYER, Descriptor, Layout
from kiln.build_rules.packaging.tar import Entry, write_tar


@pytest.fixture
def inputs(tmp_path) -> Path:
    """A base tar (with a symlink) and two app files."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "prog").write_bytes(b"#!/bin/sh\necho hi\n")
    (src / "data.bin").write_bytes(bytes(range(256)) * 64)
    (src / "libc.so.6").write_bytes(b"\x7fELF fake libc")
    with (tmp_path / "base.tar").open("wb") as out:
        write_tar([Entry("usr/lib/libc.so.6", src / "libc.so.6"), Entry("lib", link="usr/lib")], out)
    return tmp_path


def build(inputs: Path, out: str, *extra: str, compression: str = "gzip") -> Layout:
    argv = ["--out", str(inputs / out), "--compression", compression, "--layer-tar", str(inputs / "base.tar"),
            "--layer", f"app/prog={inputs}/src/prog:x", f"app/data.bin={inputs}/src/data.bin",
            "--entrypoint=/app/prog", "--cmd=--fast", "--env", "GREETING=hi", "--workdir", "/app",
            "--label", "org.opencontainers.image.title=demo", "--accelerator", "cuda", "--accelerator", "cpu", *extra]
    assert image.main(argv) == 0
    return Layout.open(inputs / out)


def image_parts(layout: Layout) -> tuple[Descriptor, dict, dict]:
    top = layout.single_manifest()
    manifest = layout.read_json(top)
    return top, manifest, layout.read_json(Descriptor.from_json(manifest["config"]))


@pytest.mark.parametrize("compression", sorted(LAYER))
def test_same_inputs_give_same_digests(inputs, compression):
    first, second = build(inputs, "a", compression=compression), build(inputs, "b", compression=compression)
    assert (first.root / "index.json").read_bytes() == (second.root / "index.json").read_bytes()
    blobs = sorted(p.name for p in (first.root / "blobs" / "sha256").iterdir())
    assert blobs == sorted(p.name for p in (second.root / "blobs" / "sha256").iterdir())
    assert len(blobs) == 4  # config, manifest, two layers; no temporary files left behind
    for name in blobs:
        assert hashlib.sha256((first.root / "blobs" / "sha256" / name).read_bytes()).hexdigest() == name


@pytest.mark.parametrize("compression", sorted(LAYER))
def test_layers_decompress_to_their_diff_ids(inputs, compression):
    layout = build(inputs, "img", compression=compression)
    _, manifest, config = image_parts(layout)
    for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
        assert layer["mediaType"] == LAYER[compression]
        blob = layout.blob(layer["digest"]).read_bytes()
        tar = {"gzip": gzip.decompress, "zstd": zstandard.ZstdDecompressor().decompress,
               "none": bytes}[compression](blob)
        assert "sha256:" + hashlib.sha256(tar).hexdigest() == diff_id
    if compression == "gzip":
        assert blob[3] == 0 and blob[4:8] == b"\0\0\0\0"  # no file name, mtime 0


def test_layers_stack_in_the_order_given(inputs):
    layout = build(inputs, "img")
    _, manifest, _ = image_parts(layout)
    base, app = (tarfile.open(fileobj=io.BytesIO(gzip.decompress(layout.blob(d["digest"]).read_bytes())))
                 for d in manifest["layers"])
    assert base.getmember("lib").issym() and base.getmember("lib").linkname == "usr/lib"
    prog = app.getmember("app/prog")
    assert (prog.mode, prog.mtime, prog.uid, prog.gid) == (0o755, 0, 0, 0)
    assert app.getnames() == ["app", "app/data.bin", "app/prog"]


def test_split_layers_cut_big_files_into_parts_and_layers_of_at_most_the_limit(inputs, monkeypatch):
    weights = inputs / "src" / "weights"
    weights.mkdir()
    (weights / "big.safetensors").write_bytes(bytes(range(256)) * 40)  # 10240 bytes: parts of 4096
    (weights / "small.safetensors").write_bytes(b"s" * 3000)
    monkeypatch.setattr(image, "SPLIT_LAYER_BYTES", 4096)
    layouts = [build(inputs, out, "--split-layers", f"app={weights}") for out in ("a", "b")]
    assert (layouts[0].root / "index.json").read_bytes() == (layouts[1].root / "index.json").read_bytes()
    _, manifest, _ = image_parts(layouts[0])
    _, app, *split = [tarfile.open(fileobj=io.BytesIO(gzip.decompress(layouts[0].blob(d["digest"]).read_bytes())))
                      for d in manifest["layers"]]
    files = [[m for m in tar.getmembers() if m.isfile()] for tar in split]
    assert [[(m.name, m.size) for m in layer] for layer in files] == [
        [("app/big.safetensors.part-000", 4096)], [("app/big.safetensors.part-001", 4096)],
        [("app/big.safetensors.part-002", 2048)], [("app/small.safetensors", 3000)]]
    joined = b"".join(tar.extractfile(layer[0]).read() for tar, layer in zip(split[:3], files))
    assert joined == (weights / "big.safetensors").read_bytes()
    assert app.getnames() == ["app", "app/data.bin", "app/prog"]


def test_config_carries_what_was_asked(inputs, monkeypatch):
    _, _, config = image_parts(build(inputs, "epoch"))
    assert config["created"] == "1970-01-01T00:00:00Z"
    assert (config["os"], config["architecture"]) == ("linux", "amd64") and "variant" not in config
    assert config["config"] == {"Entrypoint": ["/app/prog"], "Cmd": ["--fast"], "Env": ["GREETING=hi"],
                                "WorkingDir": "/app", "Labels": {"org.opencontainers.image.title": "demo",
                                                                 "dev.kiln.platforms": "cpu,cuda"}}
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    top, _, config = image_parts(build(inputs, "arm", "--arch", "arm64"))
    assert config["created"] == "1970-01-02T00:00:00Z"
    assert (config["architecture"], config["variant"]) == ("arm64", "v8")
    assert top.platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert top.annotations == {"org.opencontainers.image.ref.name": "latest"}


def test_a_serving_image_exposes_its_port(inputs):
    _, _, config = image_parts(build(inputs, "serve", "--expose", "8000/tcp", "--expose", "9090/tcp"))
    assert config["config"]["ExposedPorts"] == {"8000/tcp": {}, "9090/tcp": {}}
    _, _, config = image_parts(build(inputs, "cli"))
    assert "ExposedPorts" not in config["config"]


def test_index_lists_each_platform_once(inputs, capsys):
    amd64, arm64 = build(inputs, "amd64"), build(inputs, "arm64", "--arch", "arm64")
    assert index.main(["--out", str(inputs / "multi"), str(amd64.root), str(arm64.root)]) == 0
    multi = Layout.open(inputs / "multi")
    top = multi.single_manifest()
    assert capsys.readouterr().out.strip().endswith(top.digest)
    listed = multi.read_json(top)["manifests"]
    assert [m["platform"]["architecture"] for m in listed] == ["amd64", "arm64"]
    assert [m["digest"] for m in listed] == [amd64.single_manifest().digest, arm64.single_manifest().digest]
    assert len(list(multi.walk(top))) == 1 + 2 * 4  # every blob of both images is there
    assert index.main(["--out", str(inputs / "dup"), str(amd64.root), str(amd64.root)]) == 1
    assert "are both amd64" in capsys.readouterr().err


def fake_deb(root: Path, files: dict[str, str]) -> Path:
    """An unpacked package tree: path -> content, or '->target' for a symlink."""
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if content.startswith("->"):
            target.symlink_to(content[2:])
        else:
            target.write_text(content)
    return root


def test_base_layer_keeps_only_the_runtime(tmp_path):
    libc = fake_deb(tmp_path / "libc6", {
        "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": "ld", "lib/x86_64-linux-gnu/libc.so.6": "c",
        "lib/x86_64-linux-gnu/libm.so.6": "m", "lib/x86_64-linux-gnu/libnss_dns.so.2": "nss",
        "lib64/ld-linux-x86-64.so.2": "->/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "usr/lib/x86_64-linux-gnu/gconv/UTF-16.so": "gconv", "usr/share/doc/libc6/copyright": "doc",
        "usr/share/locale/de/LC_MESSAGES/libc.mo": "mo", "etc/ld.so.conf.d/x86_64-linux-gnu.conf": "conf"})
    cxx = fake_deb(tmp_path / "libstdc++6", {
        "usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30": "cxx", "usr/lib/x86_64-linux-gnu/libstdc++.so.6":
        "->libstdc++.so.6.0.30", "usr/share/gcc/python/libstdcxx/__init__.py": ""})
    entries = {e.name: e for e in base_layer.base_entries([libc, cxx], "amd64", libstdcxx=True)}
    assert sorted(entries) == ["lib", "lib64", "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
                               "usr/lib/x86_64-linux-gnu/libc.so.6", "usr/lib/x86_64-linux-gnu/libm.so.6",
                               "usr/lib/x86_64-linux-gnu/libstdc++.so.6",
                               "usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30", "usr/lib64/ld-linux-x86-64.so.2"]
    assert entries["lib64"].link == "usr/lib64"
    assert entries["usr/lib64/ld-linux-x86-64.so.2"].link == "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    without = [e.name for e in base_layer.base_entries([libc, cxx], "amd64")]
    assert not [n for n in without if "stdc++" in n]
    with pytest.raises(base_layer.BaseLayerError, match="libc.so.6"):
        base_layer.base_entries([cxx], "amd64")


def test_errors_are_one_line(inputs):
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.image", "--out", str(inputs / "x"),
                           "--layer-tar", str(inputs / "missing.tar")], capture_output=True, text=True)
    assert done.returncode == 1 and "missing.tar" in done.stderr and len(done.stderr.splitlines()) == 1
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.image", "--out", str(inputs / "src")],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "not empty" in done.stderr and "Traceback" not in done.stderr
    (inputs / "base.tar.gz").write_bytes(gzip.compress((inputs / "base.tar").read_bytes()))
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules.oci.image", "--out", str(inputs / "y"),
                           "--layer-tar", str(inputs / "base.tar.gz")], capture_output=True, text=True)
    assert done.returncode == 1 and "base.tar.gz is not an uncompressed tar" in done.stderr


@pytest.mark.e2e
def test_skopeo_and_umoci_accept_the_layout(inputs):
    require("skopeo", "umoci")
    layout = build(inputs, "img")
    inspected = json.loads(run("skopeo", "inspect", f"oci:{layout.root}").stdout)
    assert inspected["Digest"] == layout.single_manifest().digest
    assert inspected["Labels"]["dev.kiln.platforms"] == "cpu,cuda"
    run("umoci", "stat", "--image", f"{layout.root}:latest")
    run("umoci", "unpack", "--rootless", "--image", f"{layout.root}:latest", str(inputs / "bundle"))
    process = json.loads((inputs / "bundle" / "config.json").read_text())["process"]
    assert (process["args"], process["cwd"]) == (["/app/prog", "--fast"], "/app") and "GREETING=hi" in process["env"]
    assert (inputs / "bundle" / "rootfs" / "app" / "prog").read_bytes() == (inputs / "src" / "prog").read_bytes()
    assert (inputs / "bundle" / "rootfs" / "lib").readlink() == Path("usr/lib")
