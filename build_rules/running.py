"""`kiln run`: execute a built target's program with the user's arguments."""

from __future__ import annotations

import os
import shutil
import subprocess

from kiln.build_rules.actions import Artifact
from kiln.build_rules.config import Configuration, machine_host
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label
from kiln.build_rules.providers import Providers, RunInfo
from kiln.build_rules.workspace import Workspace

_EMULATORS = {"linux-arm64": "qemu-aarch64", "linux-amd64": "qemu-x86_64"}


def run_target(workspace: Workspace, label: Label, providers: Providers, config: Configuration,
               args: list[str]) -> int:
    run_info = providers.get(RunInfo)
    if run_info is None and providers.default.executable is not None:
        run_info = RunInfo((providers.default.executable,))
    if run_info is None:
        raise UserError(f"kiln run: {label} is not executable (its rule makes no program)")

    def resolve(value: str | Artifact) -> str:
        return os.fspath(workspace.root / value.path) if isinstance(value, Artifact) else value

    argv = [resolve(a) for a in run_info.argv]
    if isinstance(run_info.argv[0], Artifact):
        argv = [*_emulator(config.host), *argv]
    env = {**os.environ, **{k: resolve(v) for k, v in run_info.env},
           "BUILD_WORKSPACE_DIRECTORY": os.fspath(workspace.root), "BUILD_WORKING_DIRECTORY": os.getcwd()}
    try:
        return subprocess.run([*argv, *args], env=env).returncode
    except OSError as error:
        raise UserError(f"kiln run: cannot start {argv[0]}: {error.strerror}") from None


def _emulator(host: str) -> list[str]:
    if host == machine_host():
        return []
    emulator = shutil.which(_EMULATORS[host])
    if emulator is None:
        raise UserError(f"kiln run: the program is built for {host} and this machine is {machine_host()}; "
                        f"install {_EMULATORS[host]} (Debian package qemu-user) to run it emulated")
    return [emulator]
