"""filegroup: a name for a set of files.

    filegroup(name = "weights", srcs = ["mnist.safetensors", ":generated"])
"""

from __future__ import annotations

from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, Providers
from kiln.build_rules.targets import RuleSpec


def _implementation(ctx: RuleContext) -> Providers:
    files = tuple(dict.fromkeys(f for dep in ctx.attr["srcs"] for f in dep.files))
    return Providers(DefaultInfo(files=files))


RULE = RuleSpec(
    name="filegroup",
    attrs={"srcs": Attr("label_list", (), doc="Files and targets whose files make up the group.")},
    implementation=_implementation,
    doc=__doc__,
)
