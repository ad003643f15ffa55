"""kiln's own apt configuration, one per Debian suite a pin names: private package lists and cache
under the kiln cache, every architecture kiln pins for, and the machine's own Debian mirror (taken
from its apt sources, never written into the repo). So neither the host's `dpkg` architectures nor a
host-wide `apt-get update` matter, and a pin from another suite (trixie on a bookworm host) fetches
like any other. The machine's apt.conf (proxies, APT_CONFIG) still applies."""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from kiln.toolchain.errors import FetchError
from kiln.toolchain.fsio import atomic_write

ETC = Path("/etc/apt")
ARCHITECTURES = ("amd64", "arm64")


@dataclass(frozen=True)
class Source:
    """One `deb` entry of the machine's apt sources."""
    uri: str
    suite: str
    components: tuple[str, ...]
    signed_by: str = ""


def host_sources(etc: Path = ETC) -> list[Source]:
    """The `deb` entries of sources.list, sources.list.d/*.list and the deb822 *.sources files."""
    files = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    sources = [s for f in files if f.is_file() for s in _one_line_entries(f.read_text())]
    for f in sorted((etc / "sources.list.d").glob("*.sources")):
        sources += _deb822_entries(f.read_text())
    return sources


def _one_line_entries(text: str) -> list[Source]:
    entries = []
    for line in text.splitlines():
        found = re.match(r"\s*deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)", line)
        if found:
            options = dict(o.split("=", 1) for o in (found.group(1) or "").split() if "=" in o)
            entries.append(Source(found.group(2), found.group(3), tuple(found.group(4).split()),
                                  options.get("signed-by", "")))
    return entries


def _deb822_entries(text: str) -> list[Source]:
    entries = []
    for stanza in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"(?m)^([\w-]+):\s*(.*)$", stanza))
        if "deb" not in fields.get("Types", "").split() or fields.get("Enabled", "yes") == "no":
            continue
        for uri in fields.get("URIs", "").split():
            entries += [Source(uri, suite, tuple(fields.get("Components", "").split()), fields.get("Signed-By", ""))
                        for suite in fields.get("Suites", "").split()]
    return entries


def host_codename(os_release: Path = Path("/etc/os-release")) -> str:
    found = re.search(r'(?m)^VERSION_CODENAME="?(\w+)', os_release.read_text()) if os_release.is_file() else None
    if not found:
        raise FetchError("cannot tell this machine's Debian release (no VERSION_CODENAME in /etc/os-release)")
    return found.group(1)


def sources_for(suite: str, sources: list[Source], codename: str, kind: str = "deb") -> str:
    """sources.list lines for `suite`: each of the machine's entries for its own release (and its
    -updates/-security pockets), with the release renamed to `suite`. kind "deb-src" gives the
    source-package lines of the same mirrors instead."""
    lines = []
    for s in sources:
        release, _, pocket = s.suite.partition("-")
        if release != codename or "main" not in s.components:
            continue
        signed = f" signed-by={s.signed_by}" if s.signed_by else ""
        renamed = f"{suite}-{pocket}" if pocket else suite
        options = f"arch={','.join(ARCHITECTURES)}{signed}" if kind == "deb" else signed.strip()
        lines.append(f"{kind} [{options}] {s.uri} {renamed} main" if options else f"{kind} {s.uri} {renamed} main")
    if not lines:
        raise FetchError(f"the machine's apt sources name no Debian '{codename}' main archive to take a mirror from")
    return "\n".join(sorted(set(lines))) + "\n"


class PrivateApt:
    """apt-get/apt-cache options that point apt at kiln's own state for one suite (binary packages,
    or with kind "deb-src" source packages)."""

    def __init__(self, suite: str, cache: Path, etc: Path = ETC, kind: str = "deb") -> None:
        self.suite = suite
        text = sources_for(suite, host_sources(etc), host_codename(), kind)
        self.root = cache / "apt" / f"{suite}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
        for sub in ("lists/partial", "archives/partial", "sources.list.d", "preferences.d"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        if not (self.root / "sources.list").is_file():
            atomic_write(self.root / "sources.list", text)
        (self.root / "status").touch()

    @property
    def options(self) -> list[str]:
        settings = {
            "Dir::State::Lists": self.root / "lists", "Dir::State::status": self.root / "status",
            "Dir::Cache": self.root, "Dir::Cache::archives": self.root / "archives",
            "Dir::Etc::SourceList": self.root / "sources.list", "Dir::Etc::SourceParts": self.root / "sources.list.d",
            "Dir::Etc::Preferences": self.root / "preferences", "Dir::Etc::PreferencesParts": self.root / "preferences.d",
            "Acquire::Languages": "none", "APT::Sandbox::User": "root" if os.geteuid() == 0 else "",
        }
        options = [f"-o{key}={value}" for key, value in settings.items() if value != ""]
        return options + [f"-oAPT::Architectures::={arch}" for arch in ARCHITECTURES]

    def has_lists(self) -> bool:
        return any((self.root / "lists").glob("*_Packages*")) or any((self.root / "lists").glob("*_Sources*"))

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One apt at a time on this state (apt's own lock would fail the second process, not wait)."""
        with open(self.root / "kiln.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
