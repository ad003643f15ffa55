"""Run an action's command where only its declared inputs are visible and there is no network.

With bubblewrap: a fresh mount namespace holding the system directories, the tools' own
directories (read-only) and the execution root at a fixed path, with every namespace unshared
(no network). Without it: a private execution root holding only the declared inputs.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import threading
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
    timed_out: bool = False
    interrupted: bool = False  # kiln was told to stop (SIGINT, SIGTERM) while it ran


# Every running action's process, so that a signal to kiln alone stops them all.
_running: set[subprocess.Popen] = set()
_running_lock = threading.Lock()
_stopping = threading.Event()


def stop_all() -> None:
    """Stop the running actions and start no more (kiln got SIGINT or SIGTERM)."""
    _stopping.set()
    with _running_lock:
        for process in _running:
            _kill(process)


def _kill(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the action runs in a session (and group) of its own
    except ProcessLookupError:
        pass


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


def run_sandboxed(argv: list[str], execroot: Path, env: dict[str, str], mounts: list[str],
                  timeout: float | None = None) -> Result:
    """Run argv (paths relative to the execution root) and capture its output; after `timeout`
    seconds the command and everything it started are killed."""
    command, cwd = sandbox_command(argv, execroot, mounts)
    with _running_lock:
        if _stopping.is_set():
            return Result(-signal.SIGKILL, "", "", interrupted=True)
        try:
            process = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, start_new_session=True)
        except OSError as error:
            return Result(127, "", f"cannot run {argv[0]}: {error.strerror}")
        _running.add(process)
    timed_out = False
    try:
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            _kill(process)
            out, err = process.communicate()
    finally:
        with _running_lock:
            _running.discard(process)
    return Result(process.returncode, out.decode(errors="replace"), err.decode(errors="replace"), timed_out,
                  _stopping.is_set())


def sandbox_command(argv: list[str], execroot: Path, mounts: list[str]) -> tuple[list[str], str]:
    """The full command line that runs argv in the sandbox, and the directory to start it from."""
    bwrap = bwrap_path()
    if bwrap:
        return [*_bwrap_prefix(bwrap, execroot, mounts), *argv], "/"
    return argv, os.fspath(execroot)


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
