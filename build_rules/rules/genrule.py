"""genrule: run a shell command that turns `srcs` into `outs`.

    genrule(
        name = "greeting",
        srcs = ["name.txt"],
        outs = ["greeting.txt"],
        cmd = "echo hello $$(cat $(location name.txt)) > $@",
    )

Make variables: `$(location L)`, `$(locations L)` (also `execpath(s)`) for labels in srcs or
tools, `$@` (the only output), `$<` (the only source), `$(SRCS)`, `$(OUTS)`, `$(RULEDIR)`, `$$`.
"""

from __future__ import annotations

import re

from kiln.build_rules.analysis import Dep, RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.labels import parse_label
from kiln.build_rules.providers import DefaultInfo, Providers
from kiln.build_rules.targets import RuleSpec

_VARIABLE = re.compile(r"\$\$|\$@|\$<|\$\((\w+)(?:\s+([^)]*))?\)")


def _implementation(ctx: RuleContext) -> Providers:
    if not ctx.attr["outs"]:
        raise ctx.fail("genrule needs at least one entry in outs")
    outs = [ctx.declare_file(name) for name in ctx.attr["outs"]]
    srcs = [f for dep in ctx.attr["srcs"] for f in dep.files]
    deps = {dep.label: dep for dep in (*ctx.attr["srcs"], *ctx.attr["tools"])}
    command = _expand(ctx, ctx.attr["cmd"], deps, srcs, outs)
    tools = [f for dep in ctx.attr["tools"] for f in (*_files(dep), *dep.providers.default.runfiles)]
    inputs = srcs + tools
    ctx.action("Genrule", ["/bin/sh", "-c", command], inputs, outs, progress=f"Executing genrule {ctx.label}")
    executable = outs[0] if ctx.attr["executable"] and len(outs) == 1 else None
    return Providers(DefaultInfo(files=tuple(outs), executable=executable))


def _files(dep: Dep) -> list:
    return [dep.executable] if dep.executable else list(dep.files)


def _expand(ctx: RuleContext, cmd: str, deps: dict, srcs: list, outs: list) -> str:
    def paths_of(text: str, single: bool) -> str:
        label = parse_label(text.strip(), ctx.label.package)
        if label not in deps:
            raise ctx.fail(f"$(location {text}): '{label}' is not in srcs or tools")
        files = _files(deps[label])
        if single and len(files) != 1:
            raise ctx.fail(f"$(location {text}) expands to {len(files)} files; use $(locations {text})")
        return " ".join(f.path for f in files)

    def replace(match: re.Match) -> str:
        whole, name, argument = match.group(0), match.group(1), match.group(2)
        if whole == "$$":
            return "$"
        if whole == "$@":
            return _only(ctx, outs, "$@", "outs")
        if whole == "$<":
            return _only(ctx, srcs, "$<", "srcs")
        if name in ("location", "execpath") and argument:
            return paths_of(argument, True)
        if name in ("locations", "execpaths") and argument:
            return paths_of(argument, False)
        if name == "SRCS":
            return " ".join(f.path for f in srcs)
        if name == "OUTS":
            return " ".join(f.path for f in outs)
        if name == "RULEDIR":
            return outs[0].path.rsplit("/", 1)[0]
        raise ctx.fail(f"unknown make variable {whole} in cmd")

    return _VARIABLE.sub(replace, cmd)


def _only(ctx: RuleContext, files: list, variable: str, attribute: str) -> str:
    if len(files) != 1:
        raise ctx.fail(f"{variable} needs exactly one file in {attribute}, there are {len(files)}")
    return files[0].path


RULE = RuleSpec(
    name="genrule",
    attrs={
        "srcs": Attr("label_list", (), doc="Input files."),
        "outs": Attr("output_list", (), mandatory=True, doc="Output file names, relative to the package."),
        "cmd": Attr("string", mandatory=True, doc="Shell command, run by /bin/sh in the sandbox."),
        "tools": Attr("label_list", (), executable_config=True, doc="Programs the command runs, built for this machine."),
        "executable": Attr("bool", False, doc="The single output is a program `kiln run` can run."),
    },
    implementation=_implementation,
    doc=__doc__,
)
