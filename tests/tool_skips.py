"""Skips for a missing tool: the reason starts with MISSING_TOOL, and under CI=true conftest turns
such a skip into a failure (CI installs every tool in .ci/run, so none may be silently skipped).
Skips for missing hardware (a GPU, a TPU, a CPU level) or data outside the repo do not use these."""
from __future__ import annotations

import pytest

MISSING_TOOL = "missing tool: "


def needs_tool(what: str, present: bool) -> pytest.MarkDecorator:
    return pytest.mark.skipif(not present, reason=MISSING_TOOL + what)


def require_tool(what: str, present: bool) -> None:
    if not present:
        pytest.skip(MISSING_TOOL + what)
