"""An arm64 Debian 12 root that runs kiln under qemu-user on an x86_64 machine (issue 19 item 6).

The root holds Debian's arm64 python3.11 and the libraries it and kiln's wheels link, fetched as .debs
through kiln's own apt helpers, plus kiln's dependencies as aarch64 wheels at exactly the versions this
Python has. It is built once under $XDG_CACHE_HOME/kiln-tests/ and reused.

How arm64 programs start without the machine's binfmt_misc: `command()` runs kiln in a user and mount
namespace of its own, mounts a binfmt_misc instance there (one per user namespace since Linux 6.7) and
registers aarch64 ELF files to a static x86_64 program (fixtures/arm64/qemu_prefix.c, built with kiln's
zig) that runs qemu-aarch64 with the root as its library prefix. So every arm64 program kiln starts
(python for its actions, zig and zig's own children) runs through qemu, inside kiln's bwrap sandbox too.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from kiln.toolchain import debian
from kiln.toolchain.lockfile import Artifact
from kiln.toolchain.zig import zig_path

SUITE = "bookworm"
# python3.11 and what its standard library, llvmlite, numpy, onnx and zig link, besides glibc.
DEBS = ("libc6", "libgcc-s1", "libstdc++6", "python3.11-minimal", "libpython3.11-minimal",
        "libpython3.11-stdlib", "zlib1g", "libexpat1", "libssl3", "libffi8", "libbz2-1.0", "liblzma5",
        "libsqlite3-0", "libuuid1", "libcrypt1", "libzstd1")
# The newest glibc Debian 12 has down to the manylinux2014 baseline: what pip may pick for this root.
PLATFORMS = [f"manylinux_2_{minor}_aarch64" for minor in range(36, 16, -1)] + ["manylinux2014_aarch64"]
PYTHON = "usr/bin/python3.11"
SITE = "usr/lib/python3/dist-packages"
QEMU = "usr/libexec/kiln/qemu-aarch64"
INTERPRETER_SOURCE = Path(__file__).parent / "fixtures" / "arm64" / "qemu_prefix.c"
# A binfmt_misc rule for 64-bit little-endian ELF files of machine 183 (EM_AARCH64); F opens the
# interpreter now, so it is found in any mount namespace.
_BINFMT = (r":kiln-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:"
           r"\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:{}:F")
_ENTER = """set -e
binfmt=$(mktemp -d)
mount -t binfmt_misc binfmt_misc "$binfmt"
printf '%s' "$0" > "$binfmt/register"
exec "$@"
"""


def kiln_pins() -> list[str]:
    """name==version of every distribution kiln requires (no extras), as installed here."""
    pins: dict[str, str] = {}
    wanted = ["kiln"]
    while wanted:
        name = canonicalize_name(wanted.pop())
        if name in pins:
            continue
        dist = metadata.distribution(name)
        pins[name] = dist.version
        wanted += [r.name for r in map(Requirement, dist.requires or [])
                   if r.marker is None or r.marker.evaluate({"extra": ""})]
    del pins["kiln"]
    return sorted(f"{name}=={version}" for name, version in pins.items())


def cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def root(cache: Path) -> Path:
    """The arm64 root for kiln's current pins, built under `cache` on first use."""
    pins = kiln_pins()
    described = [*DEBS, *pins, _ENTER, _BINFMT, INTERPRETER_SOURCE.read_text()]
    key = hashlib.sha256("\n".join(described).encode()).hexdigest()[:16]
    top = cache / "kiln-tests" / "arm64"
    done = top / f"root-{key}"
    top.mkdir(parents=True, exist_ok=True)
    with open(top / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.is_dir():
            work = top / f".root-{key}.partial"
            shutil.rmtree(work, ignore_errors=True)
            _build(work, done, top, pins)
            work.rename(done)
    return done


def _build(work: Path, final: Path, top: Path, pins: list[str]) -> None:
    for name in DEBS:
        debian.extract(_deb(name, top / "debs"), work)
    _merge_usr(work)
    # Python's purelib, which Debian's postinst makes: kiln's sandbox mounts it.
    (work / "usr/local/lib/python3.11/dist-packages").mkdir(parents=True)
    wheels = top / "wheels"
    platform = [f"--platform={p}" for p in PLATFORMS]
    target = ["--only-binary=:all:", "--python-version=3.11", "--implementation=cp", "--abi=cp311",
              "--abi=abi3", "--abi=none", *platform, "--no-deps", "--progress-bar=off"]
    _pip("download", f"--dest={wheels}", *target, *pins)
    _pip("install", f"--target={work / SITE}", "--no-index", f"--find-links={wheels}", "--no-compile", *target,
         *pins)
    _build_interpreter(work / QEMU, final)


def _build_interpreter(output: Path, final: Path) -> None:
    output.parent.mkdir(parents=True)
    defines = [f'-DQEMU="{shutil.which("qemu-aarch64")}"', f'-DROOT="{final}"']
    done = subprocess.run([zig_path(), "cc", "-target", "x86_64-linux-musl", "-static", "-O2", *defines,
                           "-o", os.fspath(output), os.fspath(INTERPRETER_SOURCE)], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"zig could not build the qemu interpreter of the arm64 root: {done.stderr.strip()}")


def _deb(name: str, debs: Path) -> Path:
    """The newest .deb of `name` for arm64 in the suite, downloaded once."""
    found = sorted((debs / name).glob("*.deb"))
    if found:
        return found[0]
    unpinned = Artifact(name, "deb", "arm64", "", "", 0, "", "arm64 test root", SUITE)
    artifact = Artifact(name, "deb", "arm64", debian.candidate(unpinned), "", 0, "", "arm64 test root", SUITE)
    return debian.download(artifact, debs / name)


def _merge_usr(tree: Path) -> None:
    """/lib's files into /usr/lib, as on an installed Debian 12: kiln's sandbox mounts only the usr/
    of the interpreter's prefix, and qemu finds the dynamic loader and libraries there."""
    for directory in ("lib", "bin", "sbin"):
        if (tree / directory).is_dir():
            shutil.copytree(tree / directory, tree / "usr" / directory, symlinks=True, dirs_exist_ok=True)
            shutil.rmtree(tree / directory)
            (tree / directory).symlink_to(f"usr/{directory}")


def _pip(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip {args[0]} for the arm64 root failed: {done.stderr.strip()[-2000:]}")


def install_kiln(tree: Path, source: Path) -> None:
    """kiln's packages from the checkout `source`, laid out as pyproject's package-dir maps them."""
    mapping = tomllib.loads((source / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    for package, directory in mapping.items():
        destination = tree / SITE / package.replace(".", "/")
        shutil.rmtree(destination, ignore_errors=True)
        shutil.copytree(source / directory, destination, ignore=shutil.ignore_patterns("__pycache__"))


def command(tree: Path, argv: list[str]) -> list[str]:
    """argv (an arm64 program of the root first) run so that it and every arm64 program it starts
    run under qemu-aarch64."""
    register = _BINFMT.format(tree / QEMU)
    return ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", _ENTER, register, *argv]


def kiln_command(tree: Path) -> list[str]:
    """The root's kiln, to be followed by its arguments."""
    return command(tree, [os.fspath(tree / PYTHON), "-m", "kiln.build_rules"])
