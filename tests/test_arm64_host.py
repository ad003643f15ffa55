"""Issue 19 item 6: kiln on an arm64 build host (Debian 12 under qemu-aarch64) builds a linux-amd64
mnist archive byte-identical to the one kiln builds on x86_64. The arm64 root comes from
arm64_root.py and is reused from $XDG_CACHE_HOME; each build starts from an empty kiln cache."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from tool_skips import require_tool

import arm64_root
from conftest import REPO

pytestmark = pytest.mark.e2e
ARCHIVE = "kiln-out/linux-amd64-cpu/mnist/mnist.tar.gz"
BUILD = ["build", "//mnist:archive", "--platform=cpu,linux-amd64"]


def build(argv: list[str], workspace: Path, cache: Path) -> tuple[Path, float]:
    """Build the archive with `argv` (a kiln command line) in a fresh copy of the examples."""
    shutil.copytree(REPO / "examples", workspace, ignore=shutil.ignore_patterns("kiln-out"))
    started = time.monotonic()
    done = subprocess.run([*argv, *BUILD], cwd=workspace, env={**os.environ, "XDG_CACHE_HOME": os.fspath(cache)},
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return workspace / ARCHIVE, time.monotonic() - started


def member_digests(archive: Path) -> dict[str, str]:
    with tarfile.open(archive) as tar:
        return {m.name: hashlib.sha256(tar.extractfile(m).read()).hexdigest() if m.isfile() else m.linkname
                for m in tar}


def test_arm64_host_builds_the_same_linux_amd64_archive(tmp_path):
    require_tool("qemu-aarch64 (qemu-user)", shutil.which("qemu-aarch64") is not None)
    require_tool("unshare (util-linux)", shutil.which("unshare") is not None)
    root = arm64_root.root(arm64_root.cache_home())
    arm64_root.install_kiln(root, REPO)
    x86, _ = build([sys.executable, "-m", "kiln.build_rules"], tmp_path / "x86", tmp_path / "x86-cache")
    arm64, seconds = build(arm64_root.kiln_command(root), tmp_path / "arm64", tmp_path / "arm64-cache")
    print(f"arm64 build under qemu: {seconds:.0f} s")
    if x86.read_bytes() != arm64.read_bytes():
        ours, theirs = member_digests(x86), member_digests(arm64)
        differ = sorted(n for n in ours.keys() | theirs.keys() if ours.get(n) != theirs.get(n))
        pytest.fail(f"the arm64 host's archive differs from the x86_64 one in: {', '.join(differ) or 'tar metadata'}")
