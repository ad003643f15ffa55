"""`--sandbox_debug`: a failed action's execution root is kept, with a script beside it that replays
the command exactly as kiln ran it (sandbox, environment and all)."""

from __future__ import annotations

import os
import shlex
import shutil
from pathlib import Path

from kiln.build_rules.actions import Action
from kiln.build_rules.sandbox import sandbox_command


def keep(action: Action, execroot: Path, keep_root: Path, argv: list[str], env: dict[str, str],
         mounts: list[str]) -> Path:
    """Copy `execroot` under `keep_root` and write `<copy>.replay.sh`; returns the script's path."""
    kept = keep_root / execroot.name
    keep_root.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(kept, ignore_errors=True)
    shutil.copytree(execroot, kept, symlinks=True)
    argv = [a.replace(os.fspath(execroot), os.fspath(kept)) for a in argv]  # without bwrap paths are real
    command, cwd = sandbox_command(argv, kept, mounts)
    environment = " ".join(shlex.quote(f"{k}={v}") for k, v in sorted(env.items()))
    script = Path(f"{kept}.replay.sh")
    script.write_text("\n".join([
        "#!/bin/sh",
        f"# {action.describe()}: the failed command as kiln ran it (kiln build --sandbox_debug)",
        f"cd {shlex.quote(cwd)}",
        f"exec env -i {environment} {shlex.join(command)}",
        "",
    ]))
    script.chmod(0o755)
    return script
