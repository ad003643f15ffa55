"""The hermetic tools rules hand to actions, wrapped as `Tool`s."""

from __future__ import annotations

import functools

from kiln.build_rules.actions import Tool
from kiln.build_rules.errors import UserError
from kiln.build_rules import zig_staging
from kiln.toolchain import python, zig

PYTHON_TOOL = "python:"  # the name of every Python tool starts so: python:<package>+<package>
ZIG_TOOL = "zig"


@functools.cache
def zig_tool() -> Tool:
    try:
        home = zig.zig_home()
    except zig.ToolchainError as error:
        raise UserError(str(error)) from None
    return Tool(ZIG_TOOL, zig.zig_path(), zig.zig_digest(), mounts=(str(home),), env=zig_staging.ENV)


@functools.cache
def python_tool(*packages: str) -> Tool:
    """Python running kiln's own code (`python -m <package>...`), keyed by the sources of `packages`."""
    return Tool(f"{PYTHON_TOOL}{'+'.join(packages)}", python.python_path(), python.python_digest(*packages),
                mounts=tuple(python.python_mounts()),
                env=(("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONHASHSEED", "0")))


def pinned(name: str, arch: str):
    """The lock's entry for an external artifact (kiln.toolchain.lockfile.Artifact)."""
    from kiln.toolchain import lockfile
    try:
        return _lock().find(name, arch)
    except lockfile.FetchError as error:
        raise UserError(str(error)) from None


def external_tree(name: str, arch: str, program: str = "") -> Tool:
    """The unpacked tree of a pinned artifact from toolchain/lock.toml (or the `program` inside it),
    fetched when an action needs it."""
    return artifact_tree(pinned(name, arch), program)


def artifact_tree(artifact, program: str = "") -> Tool:
    """external_tree of one lock entry (kiln.toolchain.lockfile.Artifact): a name pinned from two
    Debian suites (libstdc++6 for the base image and for ROCm) is fetched from its own suite."""
    from kiln.toolchain import fetch
    tree = str(fetch.external_root() / artifact.sha256)
    path = f"{tree}/{program}" if program else tree
    return Tool(f"{artifact.name}:{artifact.arch}{'/' + program if program else ''}", path, artifact.sha256,
                mounts=(tree,), fetch=(artifact.name, artifact.arch, artifact.suite))


def vendor_trees(platform: str, arch: str) -> list[Tool]:
    """The unpacked trees a platform's runtime is trimmed from (the lock's [vendor.NAME] `sets`), as tools."""
    from kiln.toolchain import lockfile
    lock = _lock()
    try:
        sets = lock.vendor(platform).sets
    except lockfile.LockError as error:
        raise UserError(str(error)) from None
    if not lock.matching(sets[0], arch):  # the vendor's own set; the C++ runtime sets exist for every arch
        raise UserError(f"no pinned runtime for platform {platform} on {arch} in {lock.path.name}")
    return [artifact_tree(a) for provides in sets for a in lock.matching(provides, arch)]


@functools.cache
def _lock():
    from kiln.toolchain import lockfile
    try:
        return lockfile.load()
    except lockfile.FetchError as error:
        raise UserError(str(error)) from None
