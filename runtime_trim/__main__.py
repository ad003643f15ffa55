"""Command line of the runtime trimmer, run by build actions inside the sandbox (it never fetches):

    python -m kiln.runtime_trim trim --platform rocm --arch gfx90a --root bin/mnist \\
        --vendor-tree DIR [--vendor-tree DIR ...] [--entry libamdhip64.so.5] --out OUTDIR
    python -m kiln.runtime_trim why --report OUTDIR/trim-report.json libdrm_amdgpu.so.1
    python -m kiln.runtime_trim sbom --name mnist --report OUTDIR/trim-report.json \\
        --model mnist.onnx --pin ziglang==0.17.1@linux-amd64 --out sbom.spdx.json

`trim` writes OUTDIR/lib/<platform>/ (libraries, RUNPATH $ORIGIN), OUTDIR/share/<platform>/ (data
files), OUTDIR/trim-report.json and OUTDIR/trim-report.txt, and prints the summary line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from kiln.runtime_trim import bundle, closure, report, sbom
from kiln.runtime_trim.elf import ElfError
from kiln.runtime_trim.trim import trim
from kiln.toolchain.lockfile import DEFAULT_LOCK, LockError, load


def _components(models: list[Path], pins: list[str]) -> list[sbom.Component]:
    components = [sbom.Component(m.name, "", hashlib.sha256(m.read_bytes()).hexdigest(), "model") for m in models]
    return components + [_pin(pin) for pin in pins]


def _pin(pin: str) -> sbom.Component:
    """NAME==VERSION:SHA256 (a pinned package) or NAME==VERSION@TARGET (a toolchain, by what it built for)."""
    name, _, rest = pin.partition("==")
    version, at, target = rest.partition("@")
    if at:
        if not (name and version and target):
            raise ValueError(f"--pin {pin}: expected NAME==VERSION@TARGET")
        return sbom.Component(name, version, "", "toolchain", target)
    version, _, digest = rest.rpartition(":")
    if not (name and version and len(digest) == 64):
        raise ValueError(f"--pin {pin}: expected NAME==VERSION:SHA256 or NAME==VERSION@TARGET")
    return sbom.Component(name, version, digest, "toolchain")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m kiln.runtime_trim", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    t = commands.add_parser("trim", help="keep only the vendor files the roots need")
    t.add_argument("--platform", required=True, help="a [vendor.NAME] table of the lock: rocm, cuda, tpu")
    t.add_argument("--arch", action="append", default=[], help="GPU arch whose data files to keep (gfx942, sm_90)")
    t.add_argument("--root", action="append", default=[], type=Path, help="the launcher (or another root ELF file)")
    t.add_argument("--entry", action="append", default=[], help="another entry library (libcublasLt.so.13)")
    t.add_argument("--host-lib", action="append", default=[], help="also host-provided (glob): libstdc++.so.6")
    t.add_argument("--vendor-tree", action="append", required=True, type=Path, help="an unpacked pinned artifact")
    t.add_argument("--out", required=True, type=Path)
    t.add_argument("--report-out", type=Path,
                   help="move trim-report.json here (and drop the .txt), leaving OUTDIR the bundle tree alone")
    t.add_argument("--lock", type=Path, default=DEFAULT_LOCK, help="lock file with the vendor facts")
    w = commands.add_parser("why", help="why a file is (or is not) in a bundle")
    w.add_argument("--report", required=True, type=Path)
    w.add_argument("file")
    s = commands.add_parser("sbom", help="write an SPDX 2.3 JSON SBOM")
    s.add_argument("--name", required=True)
    s.add_argument("--report", action="append", default=[], type=Path)
    s.add_argument("--model", action="append", default=[], type=Path, help="a model file (hashed)")
    s.add_argument("--pin", action="append", default=[], help="a pin: NAME==VERSION:SHA256, or NAME==VERSION@TARGET for a toolchain")
    s.add_argument("--out", required=True, type=Path)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "trim":
            result = trim(args.platform, args.arch, args.root, args.entry, args.vendor_tree, args.out, load(args.lock),
                          tuple(args.host_lib))
            print(result["summary"])
            if args.report_out is not None:
                shutil.move(args.out / "trim-report.json", args.report_out)
                (args.out / "trim-report.txt").unlink()
        elif args.command == "why":
            print(report.explain(args.report, args.file))
        else:
            reports = [json.loads(r.read_text()) for r in args.report]
            sbom.write(args.out, args.name, reports, _components(args.model, args.pin))
    except (closure.ClosureError, ElfError, bundle.BundleError, LockError, OSError, ValueError) as e:
        print(f"runtime_trim: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
