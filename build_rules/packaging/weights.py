"""One copy of each distinct weight file in a bundle: `python -m kiln.build_rules.packaging.weights`.

    weights.py --name mnist --primary cpu \\
        --platform cpu=kiln-out/.../mnist.cpu/manifest.json,kiln-out/.../mnist.cpu/weights.safetensors \\
        --platform cuda=kiln-out/.../mnist.cuda/manifest.json,kiln-out/.../mnist.cuda/weights.safetensors \\
        --manifests-out share-tree --weights-out weights-tree

Writes two trees to lay under `<name>/` in a bundle: the weight files, and the manifests with the report.

Files are told apart by the sha256 of their bytes, never by name: platforms whose compiles wrote equal
bytes (cuda and rocm; tpu and cpu-xla) read one file. The primary platform's file stays where the
launcher looks by default, `weights/<name>.safetensors`; every other distinct file goes to
`share/weights/<name>-<digest12>.safetensors`. Each platform's manifest is rewritten so `weights.file`
(relative to `share/<platform>/`) names the file it reads. `share/weights.json`, the bundle's weights
report, lists every file with its bytes and readers and, for each file beyond the first, the tensors
no earlier file holds (by the manifests' per-tensor sha256): the layouts that platform's code needs and
the bytes they cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from kiln.toolchain.fetch import sha256_file
from kiln.toolchain.fsio import human_bytes

REPORT = "share/weights.json"


@dataclass(frozen=True)
class PlatformWeights:
    platform: str
    manifest: Path
    weights: Path


@dataclass
class WeightFile:
    path: str  # inside the bundle, under <name>/
    source: Path
    sha256: str
    platforms: list[str]


def parse_platform(text: str) -> PlatformWeights:
    platform, sep, files = text.partition("=")
    manifest, comma, weights = files.partition(",")
    if not sep or not comma or not platform:
        raise SystemExit(f"weights: bad --platform '{text}': expected PLATFORM=MANIFEST,WEIGHTS")
    return PlatformWeights(platform, Path(manifest), Path(weights))


def distinct_files(name: str, primary: str, inputs: list[PlatformWeights]) -> list[WeightFile]:
    """One WeightFile per distinct content, the primary platform's first; readers in input order."""
    files: dict[str, WeightFile] = {}
    for item in sorted(inputs, key=lambda i: i.platform != primary):
        digest = sha256_file(item.weights)
        if digest in files:
            files[digest].platforms.append(item.platform)
            continue
        path = f"weights/{name}.safetensors" if item.platform == primary else \
            f"share/weights/{name}-{digest[:12]}.safetensors"
        files[digest] = WeightFile(path, item.weights, digest, [item.platform])
    return list(files.values())


def tensors(manifest: dict) -> list[dict]:
    return manifest.get("weights", {}).get("tensors", [])


def report(files: list[WeightFile], manifests: dict[str, dict]) -> dict:
    """Each file's bytes and readers; past the first, what it holds that no earlier file does, and why."""
    seen: set[str] = set()
    entries = []
    for file in files:
        listed = tensors(manifests[file.platforms[0]])
        own = [t for t in listed if t["sha256"] not in seen]
        entry = {"path": file.path, "sha256": file.sha256, "bytes": file.source.stat().st_size,
                 "platforms": file.platforms, "tensors": len(listed),
                 "tensor_bytes_no_earlier_file_holds": sum(t["nbytes"] for t in own)}
        if seen:
            entry["why"] = _why(file.platforms, own, len(listed))
        seen.update(t["sha256"] for t in listed)
        entries.append(entry)
    per_platform = sum(f.source.stat().st_size * len(f.platforms) for f in files)
    total = sum(e["bytes"] for e in entries)
    shared = "; ".join(f"{', '.join(f.platforms)} share one" for f in files if len(f.platforms) > 1)
    readers = sum(len(f.platforms) for f in files)
    summary = "" if readers == 1 else (
        f"weights: {len(files)} distinct file{'s' if len(files) > 1 else ''} for {readers} platforms, "
        f"{human_bytes(total)} ({human_bytes(per_platform)} as one per platform){'; ' + shared if shared else ''}"
        f"{'; why each extra file: share/weights.json' if len(files) > 1 else ''}")
    return {"summary": summary, "files": entries, "bytes": total, "bytes_one_file_per_platform": per_platform}


def _why(platforms: list[str], own: list[dict], listed: int) -> str:
    readers = ", ".join(platforms)
    if not own:
        return (f"{readers} code reads tensors whose bytes an earlier file holds, under other names or in "
                "another order: only a file shared tensor by tensor would drop this copy")
    names = ", ".join(t["name"] for t in own[:8]) + (", ..." if len(own) > 8 else "")
    return (f"{readers} code reads its own layout: {len(own)} of {listed} tensors ({names}) are stored in a "
            "form no earlier file holds")


def relative_to_share(platform: str, path: str) -> str:
    return os.path.relpath(path, f"share/{platform}")


def place(source: Path, target: Path) -> None:
    """Hard-link a store file into the output tree (copy across filesystems)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_trees(name: str, primary: str, inputs: list[PlatformWeights], manifests_out: Path,
                weights_out: Path) -> None:
    files = distinct_files(name, primary, inputs)
    manifests = {i.platform: json.loads(i.manifest.read_text()) for i in inputs}
    for file in files:
        place(file.source, weights_out / file.path)
        for platform in file.platforms:
            manifests[platform]["weights"]["file"] = relative_to_share(platform, file.path)
    for platform, manifest in manifests.items():
        target = manifests_out / "share" / platform / "manifest.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (manifests_out / REPORT).write_text(json.dumps(report(files, manifests), indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the model's name")
    parser.add_argument("--primary", required=True, help="the platform whose file is weights/<name>.safetensors")
    parser.add_argument("--platform", action="append", required=True, type=parse_platform,
                        metavar="PLATFORM=MANIFEST,WEIGHTS")
    parser.add_argument("--manifests-out", required=True, type=Path, help="tree for share/<platform>/manifest.json")
    parser.add_argument("--weights-out", required=True, type=Path, help="tree for the distinct weight files")
    args = parser.parse_args(argv)
    if args.primary not in {i.platform for i in args.platform}:
        print(f"weights: error: --primary {args.primary} is not among the --platform entries", file=sys.stderr)
        return 1
    try:
        write_trees(args.name, args.primary, args.platform, args.manifests_out, args.weights_out)
    except (OSError, ValueError, KeyError) as e:
        print(f"weights: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
