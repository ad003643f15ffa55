"""`kiln info`: where things are and which tools a build uses."""

from __future__ import annotations

import os
from pathlib import Path

from kiln.build_rules.config import parse_platforms
from kiln.build_rules.errors import UserError
from kiln.build_rules.sandbox import sandbox_name
from kiln.build_rules.store import cache_root
from kiln.build_rules.workspace import find_workspace


def collect() -> dict[str, str]:
    facts: dict[str, str] = {}
    try:
        workspace = find_workspace(Path.cwd())
        facts["workspace"] = os.fspath(workspace.root)
        facts["kiln-out"] = os.fspath(workspace.output_root)
    except UserError:
        facts["workspace"] = "(not in a workspace)"
    facts["cache"] = os.fspath(cache_root())
    facts["default-platform"] = parse_platforms(None).flag
    facts["sandbox"] = sandbox_name()
    facts["jobs"] = str(os.cpu_count())
    try:
        from importlib import metadata
        facts["zig"] = f"ziglang {metadata.version('ziglang')}"
    except metadata.PackageNotFoundError:
        facts["zig"] = "(ziglang not installed)"
    return facts
