"""`kiln run`: execute a built target's program with the user's arguments."""

from __future__ import annotations

import os
import shutil
import subprocess

from kiln.build_rules.config import Configuration, machine_host
from kiln.build_rules.errors import UserError
from kiln.build_rules.labels import Label
from kiln.build_rules.providers import Providers, RunInfo
from kiln.build_rules.workspace import Workspace

_EMULATORS = {"linux-arm64": "qemu-aarch64", "linux-amd64": "qemu-x86_64"}


def run_target(workspace: Workspace, label: Label, providers: Providers, config: Configuration,
               args: list[str]) -> int:
    run_info = providers.get(RunInfo)
    if run_info is not None:
        argv = [os.fspath(workspace.root / a.path) if hasattr(a, "path") else a for a in run_info.argv]
        env = dict(run_info.env)
    elif providers.default.executable is not None:
        argv = [*_emulator(config.host), os.fspath(workspace.root / providers.default.executable.path)]
        env = {}
    else:
        raise UserError(f"kiln run: {label} is not executable (its rule makes no program)")
    env = {**os.environ, **env, "BUILD_WORKSPACE_DIRECTORY": os.fspath(workspace.root),
           "BUILD_WORKING_DIRECTORY": os.getcwd()}
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
