"""The workspace: the directory tree under a `MODULE.kiln`, and its packages."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from kiln.build_rules.errors import UserError

MODULE_FILE = "MODULE.kiln"
BUILD_FILES = ("BUILD.kiln", "BUILD")
OUTPUT_DIR = "kiln-out"


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def output_root(self) -> Path:
        return self.root / OUTPUT_DIR

    def build_file(self, package: str) -> Path | None:
        directory = self.root / package
        for name in BUILD_FILES:
            if (directory / name).is_file():
                return directory / name
        return None

    def packages(self, under: str = "") -> list[str]:
        """Every package at or below `under`, sorted; kiln-out and hidden directories skipped."""
        found = []
        start = self.root / under
        for directory, subdirs, files in os.walk(start):
            subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d != OUTPUT_DIR
                                and not (Path(directory) / d / MODULE_FILE).exists())
            if any(name in files for name in BUILD_FILES):
                found.append(Path(directory).relative_to(self.root).as_posix().strip("."))
        return sorted(found)

    def package_of(self, directory: Path) -> str:
        return directory.resolve().relative_to(self.root).as_posix().strip(".")


def find_workspace(start: Path) -> Workspace:
    start = start.resolve()
    for directory in (start, *start.parents):
        if (directory / MODULE_FILE).is_file():
            return Workspace(directory)
    raise UserError(f"not in a kiln workspace: no {MODULE_FILE} in {start} or any parent directory")
