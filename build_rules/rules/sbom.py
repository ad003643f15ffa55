"""The SPDX 2.3 SBOM every archive and image carries: vendor files, model files and toolchain pins."""

from __future__ import annotations

from importlib import metadata

from kiln.build_rules.actions import Artifact
from kiln.build_rules.analysis import RuleContext
from kiln.build_rules.providers import ModelInfo
from kiln.build_rules.rules.toolchains import python_tool, zig_tool


def toolchain_pins() -> list[str]:
    """The tools every bundle is built with, as NAME==VERSION:SHA256."""
    return [f"ziglang=={metadata.version('ziglang')}:{zig_tool().digest}"]


def sbom_action(ctx: RuleContext, model: ModelInfo, name: str, pins: list[str]) -> Artifact:
    output = ctx.declare_file(name)
    argv = [python_tool("kiln.runtime_trim", "kiln.toolchain"), "-m", "kiln.runtime_trim", "sbom",
            "--name", model.name, "--out", output]
    argv += [a for source in model.sources for a in ("--model", source)]
    argv += [a for _, report in model.runtime_reports for a in ("--report", report)]
    argv += [f"--pin={pin}" for pin in sorted({*toolchain_pins(), *pins})]
    inputs = [*model.sources, *(report for _, report in model.runtime_reports)]
    ctx.action("Sbom", argv, inputs, [output], progress=f"Writing the SBOM of {ctx.label}")
    return output
