"""executable: a C program compiled and linked by the hermetic zig toolchain for the configured host.

    executable(
        name = "hello",
        srcs = ["hello.c", "greet.h"],
        copts = ["-Wall"],
    )

Sources ending in .c are compiled, .o and .a files are linked, everything else (headers) is
only made visible. The output is deterministic: fixed flags, no timestamps, no build paths.
"""

from __future__ import annotations

from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.attrs import Attr
from kiln.build_rules.providers import DefaultInfo, Providers
from kiln.build_rules.targets import RuleSpec
from kiln.build_rules.rules.toolchains import zig_tool
from kiln.toolchain.zig import zig_target

_COMPILED = (".c",)
_LINKED = (".o", ".a")
# --strip-debug: zig's cached libc start files carry debug info naming the directory they were built in.
DETERMINISTIC_FLAGS = ["-O2", "-g0", "-ffile-prefix-map=$EXECROOT=.", "-Wl,--build-id=none", "-Wl,--strip-debug"]
# Flags that choose where zig writes: only the rule does (the declared output; zig's caches).
_WHERE_TO_WRITE = ("-o", "--output", "-femit-", "-fno-emit-", "--cache-dir", "--global-cache-dir", "--zig-lib-dir",
                   "-MF", "-MJ", "-save-temps")


def check_flags(ctx: RuleContext, attribute: str) -> list[str]:
    """The attribute's flags, refusing any that would make zig write outside the declared output."""
    flags = list(ctx.attr[attribute])
    for flag in flags:
        parts = flag.split(",")[1:] if flag.startswith("-Wl,") else [flag]
        if any(part.startswith(_WHERE_TO_WRITE) for part in parts):
            raise ctx.fail(f"{attribute}: '{flag}' is not allowed: the rule alone decides where zig writes "
                           "(its output and caches)")
    return flags


def zig_cc_argv(ctx: RuleContext, sources: list, output, copts: list[str], linkopts: list[str]) -> list:
    """`zig cc` for the configured host; shared by every rule that links a program."""
    return [zig_tool(), "cc", "-target", zig_target(ctx.config.host), *DETERMINISTIC_FLAGS, *copts,
            "-o", output, *sources, *linkopts]


def _implementation(ctx: RuleContext) -> Providers:
    files = [f for dep in ctx.attr["srcs"] for f in dep.files]
    sources = [f for f in files if f.path.endswith(_COMPILED + _LINKED)]
    if not any(f.path.endswith(_COMPILED) for f in sources):
        raise ctx.fail("executable needs at least one .c file in srcs")
    output = ctx.declare_file(ctx.label.name)
    header_dirs = sorted({f.path.rsplit("/", 1)[0] for f in files if f.path.endswith(".h") and "/" in f.path})
    include = [flag for d in [ctx.label.package or ".", *header_dirs] for flag in ("-I", d)]
    argv = zig_cc_argv(ctx, sources, output, include + check_flags(ctx, "copts"), check_flags(ctx, "linkopts"))
    ctx.action("CLink", argv, files, [output], zig_target=zig_target(ctx.config.host),
               progress=f"Linking {ctx.label} ({ctx.config.host})")
    runfiles = tuple(f for dep in ctx.attr["data"] for f in dep.files)
    return Providers(DefaultInfo(files=(output,), executable=output, runfiles=runfiles))


RULE = RuleSpec(
    name="executable",
    attrs={
        "srcs": Attr("label_list", (), mandatory=True, doc="C sources, headers, objects."),
        "copts": Attr("string_list", (), doc="Extra compiler flags."),
        "linkopts": Attr("string_list", (), doc="Extra linker flags, e.g. -lm."),
        "data": Attr("label_list", (), doc="Files the program needs when `kiln run` runs it."),
    },
    implementation=_implementation,
    doc=__doc__,
)
