"""The rule set. Each rule is one module holding a `RULE` spec; this registry lists them."""

from __future__ import annotations

from kiln.build_rules.rules import archive, executable, filegroup, genrule, k8s_deployment, model, oci_image, \
    oci_load, oci_push
from kiln.build_rules.targets import RuleSpec

_RULES = (filegroup, genrule, executable, model, archive, oci_image, oci_push, oci_load, k8s_deployment)


def all_rules() -> dict[str, RuleSpec]:
    """Every rule by name."""
    return {r.RULE.name: r.RULE for r in _RULES}
