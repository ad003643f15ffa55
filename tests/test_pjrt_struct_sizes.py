"""PJRT forward compatibility, asked of the pinned plugins themselves: a plugin rejects an argument
struct smaller than the one it was built with, so each function kiln calls is called with struct_size 1
on XLA's CPU plugin and on libtpu (loading it needs no TPU), the plugin's "expected N" is read from its
error (or, for the two error functions that return nothing, from its log), and N must not exceed the
size kiln builds the struct with."""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from kiln.compiler.launcher import RUNTIME_DIR
from kiln.toolchain.fetch import ensure
from kiln.toolchain.zig import zig_path
from pjrt_harness import plugin_path

PROBE = Path(__file__).parent / "fixtures" / "pjrt" / "struct_sizes.c"
_TYPED = re.compile(r"\(\*(PJRT_\w+)\)\(")
_EXPECTED = re.compile(r"Unexpected (\w+) size: expected (\d+), got 1")


def _plugins() -> dict[str, Path]:
    return {"cpu-xla": plugin_path(), "tpu": ensure("libtpu", "amd64") / "libtpu" / "libtpu.so"}


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pjrt-probe") / "struct_sizes"
    subprocess.run([zig_path(), "cc", "-target", "x86_64-linux-gnu.2.28", "-I", os.fspath(RUNTIME_DIR), "-o",
                    os.fspath(out), os.fspath(PROBE)], check=True)
    return out


def _functions_kiln_calls() -> set[str]:
    return set(_TYPED.findall((RUNTIME_DIR / "pjrt_api.h").read_text()))


@pytest.mark.parametrize("platform", ["cpu-xla", "tpu"])
def test_kiln_struct_sizes_are_at_least_the_plugins(probe, platform):
    done = subprocess.run([os.fspath(probe), os.fspath(_plugins()[platform])], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    logged = {name: int(n) for name, n in _EXPECTED.findall(done.stderr)}
    seen = set()
    for line in done.stdout.splitlines():
        name, size, message = line.split("\t")
        m = _EXPECTED.search(message)
        expected = int(m.group(2)) if m else logged.get(f"{name}_Args")
        assert expected is not None, f"{platform}: {name} did not say what size it expects: {message}"
        assert expected <= int(size), f"{platform}: {name} needs {expected} bytes, kiln passes {size}"
        seen.add(name)
    assert seen == _functions_kiln_calls()
