"""zig's cache as one action sees it, so that no action can change what another reads from it.

kiln warms the shared cache itself (libc start files and stubs, compiler-rt: `zig.warm_cache`). An
action gets a private copy of it under `.zig-cache/` in its execution root, plus an empty cache for
its own compilations; whatever it writes there is thrown away with the execution root. The zig
tool's environment names these directories relative to the execution root, the working directory.
A remote action gets the same warmed cache as files of its input root, so a worker does not build
zig's libc again for every link.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from kiln.build_rules.digests import DigestCache
from kiln.build_rules.remote.base import InputFile
from kiln.toolchain import zig

STAGED = ".zig-cache"
ENV = (("ZIG_GLOBAL_CACHE_DIR", f"{STAGED}/global"), ("ZIG_LOCAL_CACHE_DIR", f"{STAGED}/local"))


def stage(shared: Path, target: str, execroot: Path) -> None:
    """Lay out zig's caches in `execroot` for an action that links for `target`."""
    zig.warm_cache(shared, target)
    with zig.cache_lock(shared, exclusive=False):
        shutil.copytree(shared, execroot / STAGED / "global", symlinks=True,
                        ignore=shutil.ignore_patterns("kiln-warm"))
    (execroot / STAGED / "local").mkdir()


def remote_inputs(shared: Path, target: str, digests: DigestCache) -> dict[str, InputFile]:
    """The warmed cache as input-root files of a remote action that links for `target` (zig makes the
    empty local cache itself)."""
    zig.warm_cache(shared, target)
    with zig.cache_lock(shared, exclusive=False):
        files = [p for p in sorted(shared.rglob("*")) if p.is_file() and p.relative_to(shared).parts[0] != "kiln-warm"]
        return {f"{STAGED}/global/{p.relative_to(shared).as_posix()}":
                InputFile(p, digests.digest(p), bool(p.stat().st_mode & 0o100)) for p in files}
