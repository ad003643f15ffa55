"""The lock file `toolchain/lock.toml`: every external artifact by name, version and sha256, plus
per-vendor facts the runtime trimmer needs (entry libraries, dlopen lists, data files).

    [[artifact]]                      [vendor.rocm]
    name = "libhsakmt1"               sets = ["rocm", "base c++ runtime"]
    kind = "deb"                      entry = ["libhsa-runtime64.so.1"]
    arch = "amd64"                    dlopen = [{ by = "libamdhip64.so.5", opens = "libamd_comgr.so.2" }]
    version = "5.2.3+dfsg-1"          data = [{ by = "libdrm_amdgpu.so.1", paths = ["usr/share/libdrm/amdgpu.ids"] }]
    filename = "libhsakmt1_..._amd64.deb"
    size = 54204
    sha256 = "8e57..."
    provides = "rocm runtime"
    suite = "bookworm"

It never names a download host: the ordinary clients (pip, apt-get) decide where bytes come from.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

from kiln.toolchain.errors import FetchError
from kiln.toolchain.fsio import atomic_write

DEFAULT_LOCK = Path(__file__).with_name("lock.toml")
KINDS = ("wheel", "deb", "dsc")  # dsc: a Debian source package, pinned by its upstream tarball
ARCHS = ("amd64", "arm64")
PINNED_KEYS = ("version", "filename", "size", "sha256")
ARTIFACT_FILE = ".kiln-artifact.json"  # in each unpacked tree: the artifact it was unpacked from


class LockError(FetchError):
    """The lock file is malformed or has no pin for what was asked."""


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str
    arch: str  # amd64 | arm64 | all (architecture-independent .deb)
    version: str
    filename: str
    size: int
    sha256: str
    provides: str
    suite: str = ""  # a .deb's (or source package's) Debian release (bookworm, trixie): kiln's private apt lists for it fetch the pin

    @property
    def label(self) -> str:
        return f"{self.name} {self.version or '(unpinned)'} ({self.kind}, {self.arch})"

    def pinned(self, version: str, filename: str, size: int, sha256: str) -> Artifact:
        return replace(self, version=version, filename=filename, size=size, sha256=sha256)


@dataclass(frozen=True)
class Dlopen:
    by: str  # soname (or file name) of the library that calls dlopen
    opens: str
    optional: bool = False  # the library copes when the target is absent


@dataclass(frozen=True)
class DataFiles:
    by: str  # soname of the library that opens the files; kept only when it is in the bundle
    paths: tuple[str, ...]  # globs relative to the unpacked trees; `{isa}` = GPU arch without "gfx"/"sm_"


@dataclass(frozen=True)
class Vendor:
    name: str
    sets: tuple[str, ...]  # `provides` groups whose trees the runtime is trimmed from
    entry: tuple[str, ...]
    dlopen: tuple[Dlopen, ...]
    data: tuple[DataFiles, ...]
    arch_data: tuple[DataFiles, ...]
    arch_table: str = ""  # the library whose ISA table must name every requested arch (runtime_trim/isa_table.py)


@dataclass(frozen=True)
class Lock:
    path: Path
    artifacts: tuple[Artifact, ...]
    vendors: dict[str, Vendor]

    def find(self, name: str, arch: str, suite: str = "") -> Artifact:
        """The pin of `name` for `arch` (from `suite` when a name is pinned in several; else the first)."""
        pins = [a for a in self.artifacts if a.name == name and (not suite or a.suite == suite)]
        if not pins:
            raise LockError(f"{name}{' from ' + suite if suite else ''} is not in {self.path.name}")
        for artifact in pins:
            if artifact.arch in (arch, "all"):
                return artifact
        have = ", ".join(sorted(a.arch for a in pins))
        raise LockError(f"{name} has no pin for {arch} in {self.path.name} (pinned: {have})")

    def matching(self, provides: str, arch: str) -> list[Artifact]:
        """Artifacts whose `provides` is `provides` or starts with it as whole words ("rocm" matches "rocm hip")."""
        return [a for a in self.artifacts
                if a.arch in (arch, "all") and (a.provides == provides or a.provides.startswith(provides + " "))]

    def vendor(self, name: str) -> Vendor:
        if name not in self.vendors:
            raise LockError(f"{self.path.name} has no [vendor.{name}] table (have: {', '.join(sorted(self.vendors))})")
        return self.vendors[name]


def load(path: Path = DEFAULT_LOCK) -> Lock:
    try:
        raw = tomllib.loads(path.read_text())
        artifacts = tuple(_artifact(entry) for entry in raw.get("artifact", []))
        vendors = {name: _vendor(name, table) for name, table in raw.get("vendor", {}).items()}
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as e:
        raise LockError(f"{path}: {type(e).__name__}: {e}") from None
    return Lock(path, artifacts, vendors)


def _artifact(entry: dict) -> Artifact:
    artifact = Artifact(name=entry["name"], kind=entry["kind"], arch=entry["arch"], version=entry["version"],
                        filename=entry["filename"], size=int(entry["size"]), sha256=entry["sha256"],
                        provides=entry["provides"], suite=entry.get("suite", ""))
    if artifact.kind in ("deb", "dsc") and not re.fullmatch(r"[a-z]+", artifact.suite):
        raise ValueError(f"{artifact.name}: a deb pin needs suite = \"<Debian release>\" (bookworm, trixie)")
    if artifact.kind not in KINDS or artifact.arch not in (*ARCHS, "all"):
        raise ValueError(f"{artifact.name}: kind must be one of {KINDS} and arch one of {ARCHS} or 'all'")
    if artifact.sha256 and not re.fullmatch(r"[0-9a-f]{64}", artifact.sha256):
        raise ValueError(f"{artifact.name}: sha256 must be 64 lowercase hex digits")
    return artifact


def _vendor(name: str, table: dict) -> Vendor:
    def files(key: str) -> tuple[DataFiles, ...]:
        return tuple(DataFiles(d["by"], tuple(d["paths"])) for d in table.get(key, []))
    return Vendor(name=name, sets=tuple(table["sets"]), entry=tuple(table.get("entry", [])),
                  dlopen=tuple(Dlopen(d["by"], d["opens"], d.get("optional", False)) for d in table.get("dlopen", [])),
                  data=files("data"), arch_data=files("arch_data"), arch_table=table.get("arch_table", ""))


def rewrite_pin(path: Path, artifact: Artifact) -> None:
    """Rewrite the pinned fields of one [[artifact]] block in place, keeping every comment and other line."""
    text = path.read_text()
    blocks = re.split(r"(?m)^(?=\[)", text)
    keys = {"name": artifact.name, "arch": artifact.arch, **({"suite": artifact.suite} if artifact.suite else {})}
    matches = [i for i, block in enumerate(blocks) if block.startswith("[[artifact]]")
               and all(re.search(rf'(?m)^{key} = "{re.escape(value)}"$', block) for key, value in keys.items())]
    if len(matches) != 1:
        raise LockError(f"{path.name}: expected one [[artifact]] block for {artifact.name} ({artifact.arch}), "
                        f"found {len(matches)}")
    block = blocks[matches[0]]
    for key in PINNED_KEYS:
        value = getattr(artifact, key)
        rendered = str(value) if isinstance(value, int) else f'"{value}"'
        block = re.sub(rf"(?m)^{key} = .*$", lambda _: f"{key} = {rendered}", block)
    blocks[matches[0]] = block
    atomic_write(path, "".join(blocks))
