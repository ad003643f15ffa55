"""What loading produces and analysis consumes: a rule's schema and the targets BUILD files declare."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from kiln.build_rules.attrs import Attr
from kiln.build_rules.labels import Label


@dataclass(frozen=True)
class RuleSpec:
    name: str
    attrs: dict[str, Attr]
    implementation: Callable[..., Any]  # RuleContext -> Providers (analysis.py)
    doc: str = ""
    # checks of attribute values that need no deps, run while the BUILD file is evaluated so an error
    # names the file, line and column of the call; raises UserError
    check: Callable[[dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class Target:
    label: Label
    rule: RuleSpec
    attrs: dict[str, Any]
    build_file: str  # workspace-relative
    line: int = 0  # of the call that declared it, when the BUILD file names it literally (0: unknown)
    column: int = 0

    @property
    def location(self) -> str:
        """`pkg/BUILD.kiln:LINE:COL` of the declaring call, or just the file."""
        return f"{self.build_file}:{self.line}:{self.column}" if self.line else self.build_file
