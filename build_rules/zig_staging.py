"""zig's cache as one action sees it, so that no action can change what another reads from it.

kiln warms the shared cache itself (libc start files and stubs, compiler-rt: `zig.warm_cache`). An
action gets a private copy of it under `.zig-cache/` in its execution root, plus an empty cache for
its own compilations; whatever it writes there is thrown away with the execution root. The zig
tool's environment names these directories relative to the execution root, the working directory.
"""

from __future__ import annotations

import shutil
from pathlib import Path

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
