"""Run an action's command where only its declared inputs are visible and there is no network.

With bubblewrap: a fresh mount namespace holding the system directories, the tools' own
directories (read-only) and the execution root at a fixed path, with every namespace unshared
(no network). Without it: a private execution root holding only the declared inputs.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from kiln.build_rules.errors import UserError

SANDBOX_EXECROOT = "/kiln/execroot"
_SYSTEM_DIRS = ("/usr", "/bin", "/lib", "/lib64", "/lib32", "/sbin", "/etc")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@functools.cache
def bwrap_path() -> str | None:
    """bwrap, if present and able to create namespaces here."""
    choice = os.environ.get("KILN_SANDBOX", "auto")
    if choice not in ("auto", "bwrap", "none"):
        raise UserError(f"KILN_SANDBOX={choice}: expected auto, bwrap or none")
    path = shutil.which("bwrap") if choice != "none" else None
    if path:
        probe = subprocess.run([path, "--unshare-all", "--ro-bind", "/", "/", "true"], capture_output=True)
        path = path if probe.returncode == 0 else None
    if choice == "bwrap" and not path:
        raise UserError("KILN_SANDBOX=bwrap but bubblewrap is missing or cannot create namespaces here")
    return path


def sandbox_name() -> str:
    return "bwrap" if bwrap_path() else "private execroot"


def run_sandboxed(argv: list[str], execroot: Path, env: dict[str, str], mounts: list[str]) -> Result:
    """Run argv (paths relative to the execution root) and capture its output."""
    bwrap = bwrap_path()
    if bwrap:
        command = [*_bwrap_prefix(bwrap, execroot, mounts), *argv]
        cwd = "/"
    else:
        command, cwd = argv, os.fspath(execroot)
    try:
        done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, stdin=subprocess.DEVNULL)
    except OSError as error:
        return Result(127, "", f"cannot run {argv[0]}: {error.strerror}")
    return Result(done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))


def execroot_path(execroot: Path) -> str:
    """Where the execution root appears to the command."""
    return SANDBOX_EXECROOT if bwrap_path() else os.fspath(execroot)


def _bwrap_prefix(bwrap: str, execroot: Path, mounts: list[str]) -> list[str]:
    args = [bwrap, "--unshare-all", "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for directory in _SYSTEM_DIRS:
        args += ["--ro-bind-try", directory, directory]
    for directory in sorted(set(mounts)):
        args += ["--ro-bind", directory, directory]
    return [*args, "--bind", os.fspath(execroot), SANDBOX_EXECROOT, "--chdir", SANDBOX_EXECROOT]
