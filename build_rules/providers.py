"""Providers: what a configured target hands to the targets that depend on it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kiln.build_rules.actions import Artifact


@dataclass(frozen=True)
class DefaultInfo:
    files: tuple[Artifact, ...] = ()
    executable: Artifact | None = None
    runfiles: tuple[Artifact, ...] = ()  # files the executable needs beside it when run


@dataclass(frozen=True)
class RunInfo:
    """How `kiln run` runs a target that is not a plain executable (push, load)."""

    argv: tuple[str | Artifact, ...]  # an Artifact first is a program built for the configured host
    env: tuple[tuple[str, str | Artifact], ...] = ()


@dataclass(frozen=True)
class ModelInfo:
    """A compiled model: its launcher for the configured host, weights, and a manifest per platform."""

    name: str
    launcher: Artifact
    weights: Artifact
    manifests: tuple[tuple[str, Artifact], ...]
    sources: tuple[Artifact, ...] = ()  # the ONNX graph and weights the user gave, for the SBOM
    runtime_reports: tuple[tuple[str, Artifact], ...] = ()  # trim-report.json per accelerator platform
    programs: tuple[tuple[str, Artifact], ...] = ()  # files the launcher reads from share/<platform>/ (StableHLO)
    runtimes: tuple[tuple[str, Artifact], ...] = ()  # trimmed vendor trees holding lib/<platform>/
    platform_weights: tuple[tuple[str, Artifact], ...] = ()  # weights.safetensors each platform's compile wrote


@dataclass(frozen=True)
class Providers:
    default: DefaultInfo
    extra: dict[type, Any] = field(default_factory=dict)

    def get(self, kind: type) -> Any:
        return self.default if kind is DefaultInfo else self.extra.get(kind)
