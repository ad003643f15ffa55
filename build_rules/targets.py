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


@dataclass(frozen=True)
class Target:
    label: Label
    rule: RuleSpec
    attrs: dict[str, Any]
    build_file: str  # workspace-relative
