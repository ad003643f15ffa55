"""Wheels through the machine's own pip (`pip download --no-deps --only-binary=:all:`), for any target
platform: the tags pip must ask for are read back from the pinned file name."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from kiln.toolchain.errors import FetchError
from kiln.toolchain.lockfile import Artifact

MACHINES = {"amd64": "x86_64", "arm64": "aarch64"}
# Newest manylinux glibc a pin may need: the base image is Debian 12 (glibc 2.36).
MAX_GLIBC_MINOR = 36
_UNREACHABLE = re.compile(r"Could not fetch URL (\S+?): connection error")
_CAUSE = re.compile(r"(Failed to establish a new connection|Read timed out|Temporary failure in name resolution"
                    r"|Name or service not known|certificate verify failed)[^'\")]*")


def tag_options(filename: str) -> list[str]:
    """pip options selecting exactly the tags in a wheel file name (`name-ver-py-abi-plat.whl`)."""
    python, abi, platforms = filename.removesuffix(".whl").split("-")[-3:]
    options = [f"--platform={p}" for p in platforms.split(".")]
    cpython = re.fullmatch(r"cp(\d)(\d+)", python)
    if cpython:
        options += [f"--python-version={cpython.group(1)}.{cpython.group(2)}", "--implementation=cp", f"--abi={abi}"]
    return options


def platform_options(arch: str) -> list[str]:
    """Every manylinux tag up to MAX_GLIBC_MINOR for `arch`, newest first (pip does not widen --platform)."""
    machine = MACHINES[arch]
    oldest = 5 if machine == "x86_64" else 17
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(MAX_GLIBC_MINOR, oldest - 1, -1)]
    legacy = {"manylinux2014": 17, "manylinux2010": 12, "manylinux1": 5}
    tags += [f"{name}_{machine}" for name, minor in legacy.items() if minor >= oldest]
    return [f"--platform={tag}" for tag in tags]


def download(artifact: Artifact, directory: Path) -> Path:
    """`pip download` of the pinned wheel into `directory`; returns the file."""
    return _pip(f"{artifact.name}=={artifact.version}", tag_options(artifact.filename), artifact.label, directory)


def download_newest(name: str, arch: str, directory: Path) -> Path:
    """`pip download` of the newest wheel of `name` for `arch`."""
    return _pip(name, platform_options(arch), f"{name} ({arch})", directory)


def _pip(requirement: str, options: list[str], what: str, directory: Path) -> Path:
    argv = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--progress-bar=off",
            "-vv", "-d", str(directory), *options, requirement]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        output = done.stdout + done.stderr
        errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
        unreachable = _UNREACHABLE.search(output)
        if unreachable:
            cause = _CAUSE.search(output)
            raise FetchError(f"{what}: pip could not reach the package index at {unreachable.group(1)} "
                             f"({cause.group(0) if cause else 'connection error'})")
        if "No matching distribution found" in output:
            raise FetchError(f"{what}: not available from the package index for these tags ({errors[0][7:]})")
        raise FetchError(f"{what}: pip download failed ({(errors or output.splitlines() or ['no output'])[-1]})")
    wheels = sorted(directory.glob("*.whl"))
    if len(wheels) != 1:
        raise FetchError(f"{what}: pip download left {len(wheels)} wheels, expected one")
    return wheels[0]


def extract(wheel: Path, destination: Path) -> None:
    """Unzip `wheel` into `destination`, keeping executable bits (ptxas must stay runnable)."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            for info in archive.infolist():
                path = Path(archive.extract(info, destination))
                mode = info.external_attr >> 16
                if not info.is_dir() and mode & stat.S_IXUSR:
                    path.chmod(0o755)
    except zipfile.BadZipFile as e:
        raise FetchError(f"{wheel.name}: not a wheel ({e})") from None
