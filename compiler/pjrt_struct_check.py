"""PJRT forward compatibility, asked of a plugin itself: a plugin rejects an argument struct smaller
than the one it was built with, so the probe (runtime/probes/pjrt_struct_sizes.c) calls each function
the launcher uses with struct_size 1; the plugin's "expected N" comes back in its error (or, for the
two error functions that return nothing, in its log), and N must not exceed the size kiln builds the
struct with. Run by tests and by `kiln lock --update` for the PJRT plugins before a new pin is kept."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from .errors import CompileError
from .launcher import RUNTIME_DIR
from kiln.toolchain.zig import zig_path

PROBE = RUNTIME_DIR / "probes" / "pjrt_struct_sizes.c"
_TYPED = re.compile(r"\(\*(PJRT_\w+)\)\(")
_EXPECTED = re.compile(r"Unexpected (\w+) size: expected (\d+), got 1")


def functions_kiln_calls() -> set[str]:
    return set(_TYPED.findall((RUNTIME_DIR / "pjrt_api.h").read_text()))


def build_probe(out: Path) -> Path:
    done = subprocess.run([zig_path(), "cc", "-target", "x86_64-linux-gnu.2.28", "-I", os.fspath(RUNTIME_DIR), "-o",
                           os.fspath(out), os.fspath(PROBE)], capture_output=True, text=True)
    if done.returncode != 0:
        raise CompileError(f"building the PJRT struct-size probe failed: {done.stderr.strip()}")
    return out


def problems(probe: Path, plugin: Path) -> list[str]:
    """One line per PJRT function whose struct the plugin wants larger than kiln's, or that did not say."""
    done = subprocess.run([os.fspath(probe), os.fspath(plugin)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        return [f"{plugin.name}: the probe failed: {done.stderr.strip()[-300:]}"]
    logged = {name: int(n) for name, n in _EXPECTED.findall(done.stderr)}
    found, seen = [], set()
    for line in done.stdout.splitlines():
        name, size, message = line.split("\t")
        m = _EXPECTED.search(message)
        expected = int(m.group(2)) if m else logged.get(f"{name}_Args")
        if expected is None:
            found.append(f"{plugin.name}: {name} did not say what size it expects: {message}")
        elif expected > int(size):
            found.append(f"{plugin.name}: {name} needs {expected} bytes, kiln passes {size}")
        seen.add(name)
    found += [f"{plugin.name}: the probe never called {name}" for name in sorted(functions_kiln_calls() - seen)]
    return found
