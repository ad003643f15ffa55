"""README's copy-and-run lines, verbatim, on a minimal server: a root holding only Debian's tar, gzip,
coreutils, dash and glibc (no zstd, no Python)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import REPO
from test_mnist_e2e import kiln, predicted_class, reference_classes

pytestmark = pytest.mark.e2e

# The Debian packages of a minimal server's userland, and the libraries tar links.
PACKAGES = ("tar", "gzip", "coreutils", "dash", "libc6", "libacl1", "libselinux1", "libpcre2-8-0", "libattr1")
MERGED_USR = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}


def readme_run_line() -> str:
    """The README's 'unpack the archive anywhere and run it' command."""
    return next(line for line in (REPO / "README.md").read_text().splitlines() if line.startswith("tar -xf "))


def package_binds() -> list[str]:
    """--ro-bind for every file the packages install, at its merged-/usr path."""
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True, check=True).stdout.strip()
    listing = subprocess.run(["dpkg", "-L", *(f"{p}:{arch}" for p in PACKAGES)], capture_output=True, text=True,
                             check=True).stdout
    binds = {}
    for path in listing.splitlines():
        if os.path.isfile(path) and not path.startswith("/etc"):
            binds[os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))] = path
    return [arg for dest, src in sorted(binds.items()) for arg in ("--ro-bind", src, dest)]


def test_readme_copy_and_run_on_a_minimal_server(tmp_path, kiln_cache):
    if not shutil.which("bwrap") or not shutil.which("dpkg"):
        pytest.skip("bubblewrap or dpkg is not installed")
    workspace = tmp_path / "examples"
    shutil.copytree(REPO / "examples", workspace, ignore=shutil.ignore_patterns("kiln-out"))
    kiln("build", "//mnist:archive", cache=kiln_cache, cwd=workspace)
    line = readme_run_line()
    archive, sample = re.match(r"tar -xf (\S+) .* --input (\S+)$", line).groups()
    server = tmp_path / "server"
    for relative in (archive, sample):
        (server / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(workspace / relative, server / relative)
    links = [arg for link, target in MERGED_USR.items() for arg in ("--symlink", target, link)]
    done = subprocess.run(["bwrap", "--unshare-all", "--clearenv", "--setenv", "PATH", "/usr/bin:/bin",
                           *links, *package_binds(), "--bind", str(server), "/srv", "--tmpfs", "/tmp",
                           "--proc", "/proc", "--dev", "/dev", "--chdir", "/srv", "/bin/sh", "-c", line],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert predicted_class(done.stdout) == reference_classes()[Path(sample).name]


def test_minimal_server_has_no_zstd():
    if not shutil.which("dpkg"):
        pytest.skip("dpkg is not installed")
    assert not [a for a in package_binds() if os.path.basename(a) in ("zstd", "unzstd", "python3")]
