"""The trim report: `trim-report.json` (for tools, `kiln why`, the SBOM) and `trim-report.txt` (for people).

Every kept file with its size and the chain that requires it, bytes kept against the whole vendor
set, the glibc and libstdc++ the bundle needs at least, and what was left out and why.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from kiln.runtime_trim.bundle import Bundled
from kiln.runtime_trim.closure import Closure, host_provided
from kiln.runtime_trim.elf import ElfInfo
from kiln.runtime_trim.sysroot import Sysroot
from kiln.toolchain.fsio import human_bytes

FORMAT = "kiln-trim-report/1"


def build(closure: Closure, bundled: list[Bundled], sysroot: Sysroot, archs: list[str]) -> dict:
    full = [(tree, rel) for tree, rel in sysroot.files if not (tree / rel).is_symlink()]
    full_bytes = sum((tree / rel).stat().st_size for tree, rel in full)
    kept_bytes = sum(b.size for b in bundled)
    objects = [(info.path.name, info) for info in closure.roots] + [(b.kept.name, b.info) for b in bundled if b.info]
    report = {
        "format": FORMAT,
        "platform": closure.platform,
        "archs": archs,
        "roots": [info.path.name for info in closure.roots],
        "kept": [_kept(b, sysroot) for b in bundled],
        "full_set": {"files": len(full), "bytes": full_bytes},
        "kept_bytes": kept_bytes,
        # RUNPATH rewriting can grow a kept file, so a bundle that keeps everything may exceed the set
        "removed_percent": max(0.0, round(100 * (1 - kept_bytes / full_bytes), 1)) if full_bytes else 0.0,
        "glibc_floor": _floor(objects, r"(libc|libm|libpthread|libdl|librt)\.so\.\d|ld-linux.*", r"GLIBC_([\d.]+)"),
        "glibcxx_floor": _floor(objects, r"libstdc\+\+\.so\.6", r"GLIBCXX_([\d.]+)"),
        "host_provided": [{"name": n, "needed_by": by, "why": why} for n, (by, why) in sorted(closure.host.items())],
        "absent_optional": [{"name": n, "opened_by": by} for n, by in closure.absent_optional],
        "possible_dlopen": [{"name": n, "found_in": where} for n, where in closure.possible_dlopen],
        "missing_data": closure.missing_data,
        "not_kept": _not_kept(sysroot, bundled),
    }
    report["summary"] = summary(report)
    return report


def _kept(b: Bundled, sysroot: Sysroot) -> dict:
    package = sysroot.package(b.kept.located.tree)
    identity = {key: package[key] for key in ("name", "version", "kind", "arch", "sha256")} if package else None
    source = b.kept.located.real.relative_to(b.kept.located.tree).as_posix()
    return {"name": b.kept.name, "path": b.path, "kind": "library" if b.kept.info else "data", "size": b.size,
            "sha256": b.sha256, "sha1": b.sha1, "source": source, "package": identity,
            "chain": [{"name": step.name, "how": step.how} for step in b.kept.chain],
            **({"c23_repointed": list(b.repointed)} if b.repointed else {})}


def _not_kept(sysroot: Sysroot, bundled: list[Bundled]) -> list[dict]:
    kept_real = {b.kept.located.real for b in bundled}
    kept_rels = {b.kept.located.rel for b in bundled}
    left = []
    for tree, rel in sysroot.files:
        located = sysroot.lookup(rel)
        if rel not in kept_rels and (located is None or located.real not in kept_real):
            left.append({"path": rel, "package": sysroot.package(tree).get("name")})
    return left


def _floor(objects: list[tuple[str, ElfInfo]], files: str, version: str) -> dict | None:
    """The newest version of `files` any object needs, and the object that needs it."""
    found = [(tuple(int(p) for p in m.group(1).split(".")), name)
             for name, info in objects for needed, versions in info.version_needs.items() if re.fullmatch(files, needed)
             for v in versions if (m := re.fullmatch(version, v))]
    if not found:
        return None
    newest, by = max(found)
    return {"version": ".".join(map(str, newest)), "set_by": by}


def summary(report: dict) -> str:
    glibc, glibcxx = report["glibc_floor"], report["glibcxx_floor"]
    needs = [f"glibc >= {glibc['version']} ({glibc['set_by']})"] if glibc else []
    needs += [f"libstdc++ >= GLIBCXX_{glibcxx['version']} ({glibcxx['set_by']})"] if glibcxx else []
    return (f"{report['platform']}: kept {len(report['kept'])} of {report['full_set']['files']} files, "
            f"{human_bytes(report['kept_bytes'])} of {human_bytes(report['full_set']['bytes'])} "
            f"({report['removed_percent']:.1f}% removed)" + (f"; needs {', '.join(needs)}" if needs else ""))


def chain_text(chain: list[dict]) -> str:
    return " -> ".join(step["name"] if step["how"] == "root" else f"{step['name']} ({step['how']})" for step in chain)


def text(report: dict) -> str:
    width = max([len(k["path"]) for k in report["kept"]] + [4])
    lines = [report["summary"] + (f"  [archs: {', '.join(report['archs'])}]" if report["archs"] else ""), "",
             f"{'size':>8}  {'file':<{width}}  required by"]
    lines += [f"{human_bytes(k['size']):>8}  {k['path']:<{width}}  {chain_text(k['chain'])}" for k in report["kept"]]
    notes = [("host-provided, never bundled",
              [f"{h['name']} (needed by {h['needed_by']}): {h['why']}" for h in report["host_provided"]]),
             ("declared optional dlopen targets absent",
              [f"{a['name']} (by {a['opened_by']})" for a in report["absent_optional"]]),
             ("possible dlopen targets (soname-like strings, not declared in the lock)",
              [f"{p['name']} (in {p['found_in']})" for p in report["possible_dlopen"]]),
             ("declared data files not found", report["missing_data"]),
             ("C23 glibc 2.38 imports re-pointed to their pre-C23 names (they differ only in 0b literals and %b)",
              [f"{k['path']}: {', '.join(k['c23_repointed'])}" for k in report["kept"] if k.get("c23_repointed")])]
    for title, items in notes:
        if items:
            lines += ["", f"{title}:", *(f"  {item}" for item in items)]
    return "\n".join(lines) + "\n"


def write(report: dict, out: Path) -> None:
    (out / "trim-report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    (out / "trim-report.txt").write_text(text(report))


def explain(report_json_path: Path, filename: str) -> str:
    """Why `filename` (a soname, file name or bundle path) is in the bundle, or why it is not."""
    report = json.loads(Path(report_json_path).read_text())
    platform = report["platform"]
    base = filename.rsplit("/", 1)[-1]
    for kept in report["kept"]:
        if filename in (kept["name"], kept["path"], kept["source"]) or base in (kept["name"].rsplit("/", 1)[-1],
                                                                                kept["source"].rsplit("/", 1)[-1]):
            origin = f", from {kept['package']['name']} {kept['package']['version']}" if kept["package"] else ""
            steps = [f"  {'' if i == 0 else '-> '}{s['name']}" + ("" if s["how"] == "root" else f"  [{s['how']}]")
                     for i, s in enumerate(kept["chain"])]
            return "\n".join([f"{kept['path']} is in the {platform} bundle ({human_bytes(kept['size'])}{origin}):", *steps])
    for host in report["host_provided"]:
        if base == host["name"]:
            return f"{base} is not in the {platform} bundle: {host['why']} (needed by {host['needed_by']})"
    if host_provided(base, ()):
        return f"{base} is not in the {platform} bundle: {host_provided(base, ())}"
    for left in report["not_kept"]:
        if base == left["path"].rsplit("/", 1)[-1] or filename == left["path"]:
            origin = f" (package {left['package']})" if left["package"] else ""
            return (f"{base} is not in the {platform} bundle: it is in the vendor set as {left['path']}{origin}, "
                    f"but nothing the launcher loads needs it")
    return f"{base} is not in the {platform} bundle and not in its vendor set"
