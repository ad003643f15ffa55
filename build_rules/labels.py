"""Labels (`//pkg:name`, `:name`, `//pkg`) and target patterns (`//...`, `//pkg:all`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kiln.build_rules.errors import UserError

_NAME = re.compile(r"^[A-Za-z0-9_.+=,@~\-][A-Za-z0-9_.+=,@~/\-]*$")
_PACKAGE = re.compile(r"^([A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*)?$")


@dataclass(frozen=True, order=True)
class Label:
    package: str
    name: str

    def __str__(self) -> str:
        return f"//{self.package}:{self.name}"


def parse_label(text: str, package: str = "") -> Label:
    """Parse `text` relative to `package` (the package of the BUILD file it appears in)."""
    if text.startswith("//"):
        pkg, sep, name = text[2:].partition(":")
        if not sep:
            name = pkg.rsplit("/", 1)[-1]
    elif text.startswith(":"):
        pkg, name = package, text[1:]
    elif text.startswith("@"):
        raise UserError(f"invalid label '{text}': external repositories are not supported")
    else:
        pkg, name = package, text
    if not _PACKAGE.match(pkg) or any(part in (".", "..") for part in pkg.split("/")):
        raise UserError(f"invalid label '{text}': bad package name '{pkg}'")
    if not name or not _NAME.match(name) or ".." in name.split("/"):
        raise UserError(f"invalid label '{text}': bad target name '{name}'")
    return Label(pkg, name)


@dataclass(frozen=True)
class Pattern:
    """`//pkg:name`, `//pkg:all` (every target in pkg) or `//pkg/...` (pkg and below)."""

    package: str
    name: str | None  # None: every target
    recursive: bool

    def matches_package(self, package: str) -> bool:
        if not self.recursive:
            return package == self.package
        return not self.package or package == self.package or package.startswith(self.package + "/")


def parse_pattern(text: str) -> Pattern:
    if text in ("//...", "..."):
        return Pattern("", None, True)
    if text.endswith("/..."):
        return Pattern(parse_label(text[:-4]).package, None, True)
    if text.endswith(":all") or text.endswith(":*"):
        return Pattern(parse_label(text.rsplit(":", 1)[0]).package, None, False)
    if not text.startswith("//"):
        text = "//" + text if ":" in text or "/" in text else "//:" + text
    label = parse_label(text)
    return Pattern(label.package, label.name, False)
