"""The SPDX 2.3 SBOM every archive and image carries: vendor files, model files and toolchain pins."""

from __future__ import annotations

from importlib import metadata

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.providers import ModelInfo
from kiln.build_rules.rules.toolchains import python_tool


def toolchain_pins(host: str) -> list[str]:
    """The tools every bundle is built with, as NAME==VERSION@TARGET: by the target they produced
    code for, not by their own checksum, which differs between build hosts (an arm64 laptop's zig is
    not an x86-64 server's) while the bundle's bytes do not."""
    return [f"ziglang=={metadata.version('ziglang')}@{host}"]


def sbom_action(ctx: RuleContext, model: ModelInfo, name: str, pins: list[str]) -> Artifact:
    output = ctx.declare_file(name)
    argv = [python_tool("kiln.runtime_trim", "kiln.toolchain"), "-m", "kiln.runtime_trim", "sbom",
            "--name", model.name, "--out", output]
    argv += [a for source in model.sources for a in ("--model", source)]
    argv += [a for _, report in model.runtime_reports for a in ("--report", report)]
    argv += [f"--pin={pin}" for pin in sorted({*toolchain_pins(ctx.config.host), *pins})]
    inputs = [*model.sources, *(report for _, report in model.runtime_reports)]
    ctx.action("Sbom", argv, inputs, [output], progress=f"Writing the SBOM of {ctx.label}")
    return output
