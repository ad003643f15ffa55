"""Trim a platform's vendor trees to what the launcher needs: closure, bundle, report."""

from __future__ import annotations

import shutil
from pathlib import Path

from kiln.runtime_trim import bundle, closure, isa_table, report
from kiln.runtime_trim.sysroot import Sysroot
from kiln.toolchain.lockfile import Lock


def trim(platform: str, archs: list[str], roots: list[Path], entries: list[str], trees: list[Path], out: Path,
         lock: Lock, host: tuple[str, ...] = ()) -> dict:
    """Trim `trees` to what the roots and the platform's entry libraries need; returns the report.
    `host` are extra host-provided soname patterns (e.g. libstdc++.so.6 when the base layer has it)."""
    vendor = lock.vendor(platform)
    known = frozenset(name for other in lock.vendors.values() if other is not vendor
                      for name in (*other.entry, *(d.opens for d in other.dlopen), *(d.by for d in other.dlopen)))
    sysroot = Sysroot(trees)
    kept = closure.compute(vendor, sysroot, roots, [*vendor.entry, *entries], archs, known, host)
    if vendor.arch_table:
        isa_table.check(kept, vendor.arch_table, archs, sysroot)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (out / "lib" / platform, out / "share" / platform):
        shutil.rmtree(stale, ignore_errors=True)
    bundled = bundle.write(kept, out)
    _check_versions(bundled, sysroot)
    result = report.build(kept, bundled, sysroot, archs)
    report.write(result, out)
    return result


def _check_versions(bundled: list[bundle.Bundled], sysroot: Sysroot) -> None:
    """Every symbol version a bundled library needs from another bundled one is defined there (two
    suites can pin one library: the bundle must hold the copy its users were built against)."""
    provider = {b.kept.name: b for b in bundled if b.info}
    for b in bundled:
        for needed, versions in (b.info.version_needs.items() if b.info else ()):
            other = provider.get(needed)
            missing = sorted(set(versions) - other.info.version_defs) if other else []
            if missing:
                package = sysroot.package(other.kept.located.tree)
                copy = f"{package['name']} {package['version']}" if package else other.kept.located.rel
                raise closure.ClosureError(f"{b.kept.name} needs {missing[-1]} from {needed}, which the bundled "
                                           f"copy ({copy}) does not define")
