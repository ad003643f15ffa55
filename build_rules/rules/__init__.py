"""The rule set. Each rule is one module holding a `RULE` spec; this registry lists them."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from kiln.build_rules.attrs import Attr

if TYPE_CHECKING:
    from kiln.build_rules.analysis import RuleContext
    from kiln.build_rules.providers import Providers


@dataclass(frozen=True)
class RuleSpec:
    name: str
    attrs: dict[str, Attr]
    implementation: Callable[["RuleContext"], "Providers"]
    doc: str = ""


@functools.cache
def all_rules() -> dict[str, RuleSpec]:
    """Every rule by name (imported on first use: rule modules depend on the analysis phase)."""
    from kiln.build_rules.rules import archive, executable, filegroup, genrule, model, oci_image, oci_load, oci_push
    rules = (filegroup, genrule, executable, model, archive, oci_image, oci_push, oci_load)
    return {r.RULE.name: r.RULE for r in rules}
