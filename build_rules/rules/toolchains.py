"""The hermetic tools rules hand to actions, wrapped as `Tool`s."""

from __future__ import annotations

import functools

from kiln.build_rules.actions import Tool
from kiln.build_rules.errors import UserError
from kiln.build_rules.store import cache_root
from kiln.toolchain import python, zig


@functools.cache
def zig_tool() -> Tool:
    try:
        home = zig.zig_home()
    except zig.ToolchainError as error:
        raise UserError(str(error)) from None
    cache = zig.zig_cache_dir(cache_root())
    env = (("ZIG_GLOBAL_CACHE_DIR", cache), ("ZIG_LOCAL_CACHE_DIR", cache))
    return Tool("zig", zig.zig_path(), zig.zig_digest(), mounts=(str(home),), env=env)


def zig_cache() -> str:
    return zig.zig_cache_dir(cache_root())


@functools.cache
def python_tool(package: str) -> Tool:
    """Python running one of kiln's packages (`python -m <package>...`), keyed by that package's sources."""
    return Tool(f"python:{package}", python.python_path(), python.python_digest(package),
                mounts=tuple(python.python_mounts()),
                env=(("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONHASHSEED", "0")))
