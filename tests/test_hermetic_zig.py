"""A BUILD file cannot change zig's shared cache: actions get a copy of it, and flags that choose
where zig writes are refused at analysis (issue: a `-o` into the cache replaced crt1.o for every
later link, and the poisoned outputs were cached)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HELLO = '#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n'


def shared_cache_digests(cache: Path) -> dict[str, str]:
    root = cache / "kiln" / "zig-cache"
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((root / "o").rglob("*")) if p.is_file()}


def crt1(cache: Path) -> Path:
    found = sorted((cache / "kiln" / "zig-cache" / "o").glob("*/crt1.o"))
    assert found, "the warmed cache holds no crt1.o"
    return found[0]


@pytest.mark.parametrize("flags", [
    'copts = ["-c"], linkopts = ["-o", "CRT1"]',
    'linkopts = ["-Wl,-o,CRT1"]',
    'copts = ["--cache-dir=/tmp/x"]',
    'copts = ["-femit-bin=CRT1"]',
])
def test_flags_that_choose_where_zig_writes_are_refused(workspace, flags):
    workspace.write("p/hello.c", HELLO)
    workspace.write("p/BUILD.kiln", f'executable(name = "hello", srcs = ["hello.c"], {flags.replace("CRT1", "/x/crt1.o")})\n')
    done = workspace.kiln("build", "//p:hello")
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "is not allowed: the rule alone decides where zig writes" in last and "//p:hello" in last


def dependency_file_flags(path: str) -> str:
    """clang writes its dependency file wherever it is told: a write the flag check lets through."""
    return f'copts = ["-Xclang", "-dependency-file", "-Xclang", "{path}", "-Xclang", "-MT", "-Xclang", "x"]'


@pytest.mark.parametrize("sandbox", ["bwrap", "none"])
def test_an_action_writing_into_the_zig_cache_changes_only_its_own_copy(workspace, tmp_path, sandbox):
    if sandbox == "bwrap" and not shutil.which("bwrap"):
        pytest.skip("bubblewrap is not installed")
    cache = tmp_path / "cache"
    env = {"KILN_SANDBOX": sandbox}
    workspace.write("p/hello.c", HELLO)
    workspace.write("p/BUILD.kiln", 'executable(name = "hello", srcs = ["hello.c"])\n')
    workspace.kiln("build", "//p:hello", cache=cache, env=env, check=True)
    before, target = shared_cache_digests(cache), crt1(cache)
    # Aimed at the action's own copy of crt1.o by a relative path and, where a mount namespace hides
    # the rest of the machine, at the shared crt1.o by its absolute path. zig then fails the action.
    aims = [f".zig-cache/global/o/{target.parent.name}/crt1.o"] + ([str(target)] if sandbox == "bwrap" else [])
    rules = [f'executable(name = "aim{i}", srcs = ["hello.c"], {dependency_file_flags(a)})' for i, a in enumerate(aims)]
    workspace.write("p/BUILD.kiln", "\n".join(rules) + '\nexecutable(name = "after", srcs = ["hello.c"], copts = ["-DAFTER"])\n')
    for i in range(len(aims)):
        workspace.kiln("build", f"//p:aim{i}", cache=cache, env=env)
    assert shared_cache_digests(cache) == before
    workspace.kiln("build", "//p:after", cache=cache, env=env, check=True)
    done = subprocess.run([workspace.out("p/after")], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout == "hello\n"
