"""The content-addressed store cannot be changed from inside an action or through kiln-out: inputs
and directory outputs are copies of its blobs, never hard links to them."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from test_mnist_e2e import EXAMPLES, kiln

# b rewrites its input in place and puts the mtime back, so a size-and-mtime check cannot see it.
TAMPER = ("cp -p $< /tmp/ref && printf X | dd of=$< bs=1 count=1 conv=notrunc 2>/dev/null && "
          "touch -r /tmp/ref $< && cp $< $@")
BUILD = f'''
genrule(name = "a", srcs = ["in.txt"], outs = ["a.txt"], cmd = "cp $< $@")
genrule(name = "b", srcs = [":a"], outs = ["b.txt"], cmd = "{TAMPER}")
genrule(name = "c", srcs = [":a", ":b"], outs = ["c.txt"], cmd = "cp $(location :a) $@")
'''


def blob(cache: Path, digest: str) -> Path:
    return cache / "kiln" / "cas" / digest[:2] / digest


def test_an_action_rewriting_its_input_cannot_change_what_others_read(workspace):
    workspace.write("p/in.txt", "original\n")
    workspace.write("p/BUILD.kiln", BUILD)
    workspace.kiln("build", "//p:c", check=True)  # c runs after b, in the same build
    assert workspace.out("p/b.txt").read_text() == "Xriginal\n"  # what b did to its own input
    assert workspace.out("p/c.txt").read_text() == "original\n"
    digest = hashlib.sha256(b"original\n").hexdigest()
    assert blob(workspace.cache, digest).read_bytes() == b"original\n"


def test_editing_kiln_out_never_writes_into_the_store(workspace):
    workspace.write("p/in.txt", "original\n")
    workspace.write("p/BUILD.kiln", BUILD)
    workspace.kiln("build", "//p:a", check=True)
    out = workspace.out("p/a.txt")
    with open(out, "r+b") as f:  # in place, as an editor that keeps the inode would
        f.write(b"E")
    assert blob(workspace.cache, hashlib.sha256(b"original\n").hexdigest()).read_bytes() == b"original\n"
    workspace.kiln("build", "//p:a", check=True)
    assert out.read_text() == "original\n"


@pytest.mark.e2e
def test_a_corrupt_layer_blob_is_repaired_in_the_image_layout(kiln_cache, tmp_path):
    examples = tmp_path / "examples"
    shutil.copytree(EXAMPLES, examples, ignore=shutil.ignore_patterns("kiln-out"))
    kiln("build", "//mnist:image", cache=kiln_cache, cwd=examples)
    blobs = examples / "kiln-out/linux-amd64-cpu/mnist/image/blobs/sha256"
    layer = max(blobs.iterdir(), key=lambda p: p.stat().st_size)
    stored = blob(kiln_cache, layer.name)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))  # a flipped byte in the store
    assert hashlib.sha256(layer.read_bytes()).hexdigest() == layer.name  # kiln-out holds its own copy
    rebuilt = kiln("build", "//mnist:image", cache=kiln_cache, cwd=examples)
    assert "corrupted" in rebuilt.stderr
    for path in blobs.iterdir():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == path.name, path.name
