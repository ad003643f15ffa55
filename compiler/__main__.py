"""Command line: `python -m kiln.compiler compile|inspect ...`; platforms come from platforms.py."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from kiln.toolchain.zig import HANDED_ZIG

from .errors import CompileError
from .platforms import HOSTS, PLATFORMS, PRECISIONS


def _shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name or not shape:
        raise argparse.ArgumentTypeError(f"'{text}': expected NAME=D0,D1,... (e.g. images=1,3,640,640)")
    return name, shape


def input_value(text: str) -> tuple[str, tuple[float, ...]]:
    """NAME=V0,V1,... as (name, values): ints unless written as floats."""
    name, sep, numbers = text.partition("=")
    try:
        values = tuple(float(v) if any(c in v for c in ".eEn") else int(v) for v in numbers.split(","))
    except ValueError:
        values = ()
    if not sep or not name or not values:
        raise argparse.ArgumentTypeError(f"'{text}': expected NAME=V0,V1,... (e.g. sr=16000)")
    return name, values


def batch_sizes(text: str) -> tuple[int, ...]:
    """B0,B1,... as ints (checked further by the compile)."""
    try:
        return tuple(int(b) for b in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected B0,B1,... (e.g. 1,8,32)") from None


def shapes_list(text: str) -> list[dict]:
    """A JSON list of {input name: shape} (model(shapes)), checked further by the compile."""
    try:
        entries = json.loads(text)
    except ValueError:
        entries = None
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise argparse.ArgumentTypeError(f"'{text}': expected a JSON list like [{{\"ids\": [1, 16]}}]")
    return entries


def pad_value(text: str) -> tuple[str, float]:
    name, _, number = text.partition("=")
    try:
        return name, float(number)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}': expected NAME=NUMBER (e.g. attention_mask=0)") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kiln.compiler")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model for one platform (code, weights, manifest.json)")
    c.add_argument("model", type=Path)
    c.add_argument("--platform", default="cpu", help=", ".join(p.usage() for p in PLATFORMS.values())
                   + "; several archs as cuda:sm_80,sm_90")
    c.add_argument("--ptxas", type=Path, help="ptxas to check CUDA kernels with (default: the pinned one)")
    c.add_argument("--zig", type=Path, help="zig to link code objects with (default: the ziglang package's)")
    c.add_argument("--host", default="linux-amd64", choices=list(HOSTS))
    c.add_argument("--precision", default="highest", choices=PRECISIONS,
                   help="StableHLO dots and convolutions: f32 throughout, or the plugin's default (bf16 on TPU)")
    c.add_argument("--weights", type=Path)
    c.add_argument("--batch", type=int, default=1)
    c.add_argument("--batch-sizes", type=batch_sizes, default=(), metavar="B0,B1,...",
                   help="compile one shape bucket per leading batch dim instead of --batch")
    c.add_argument("--shapes", type=shapes_list, default=[], metavar="JSON",
                   help="compile one shape bucket per entry of this list of {input: shape}")
    c.add_argument("--pad-value", type=pad_value, action="append", default=[], metavar="NAME=NUMBER",
                   help="let the launcher pad this input's non-leading dims with NUMBER up to a bucket's")
    c.add_argument("--input-shape", type=_shape, action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix an input's symbolic dims (repeat per input)")
    c.add_argument("--input-value", type=input_value, action="append", default=[], metavar="NAME=V0,V1,...",
                   help="fix an input's value at build time; it folds and leaves the inputs (repeat per input)")
    c.add_argument("--name")
    c.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    i = sub.add_parser("inspect", help="print the graph after the compiler passes")
    i.add_argument("model", type=Path)
    i.add_argument("--weights", type=Path)
    i.add_argument("--batch", type=int, default=1)
    i.add_argument("--batch-sizes", type=batch_sizes, default=(), metavar="B0,B1,...",
                   help="print every shape bucket's graph, as compile --batch-sizes builds them")
    i.add_argument("--shapes", type=shapes_list, default=[], metavar="JSON",
                   help="print every shape bucket's graph, as compile --shapes builds them")
    i.add_argument("--input-shape", type=_shape, action="append", default=[], metavar="NAME=D0,D1,...",
                   help="fix an input's symbolic dims (repeat per input)")
    i.add_argument("--input-value", type=input_value, action="append", default=[], metavar="NAME=V0,V1,...",
                   help="fix an input's value at build time; it folds and leaves the inputs (repeat per input)")
    i.add_argument("--platform", default="cpu", help="show the graph this platform's backend receives")
    i.add_argument("--passes", action="store_true", help="print the graph after every pass")
    i.add_argument("--check", action="store_true", help="list everything kiln cannot compile (exit 1 if any)")
    i.add_argument("--profile", action="store_true",
                   help="compile, printing the time of each pass, kernel and LLVM step, and the peak RSS")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "compile":
            from .driver import compile
            if args.zig:
                os.environ[HANDED_ZIG] = os.fspath(args.zig.absolute())
            compile(args.model, args.platform, args.weights, args.batch, args.name, args.host,
                    args.ptxas, input_shapes=dict(args.input_shape), precision=args.precision,
                    input_values=dict(args.input_value), overlap_llvm=True,
                    batch_sizes=args.batch_sizes, shapes=args.shapes,
                    pad_values=dict(args.pad_value)).write(args.output)
        elif args.check:
            from .check import check_model, report
            problems = check_model(args.model, args.weights, args.batch, args.platform, dict(args.input_shape),
                                   dict(args.input_value))
            sys.stdout.write(report(args.model, problems, args.platform))
            return 1 if problems else 0
        elif args.profile:
            from .profile import profile_compile
            sys.stdout.write(profile_compile(args.model, args.weights, args.batch, args.platform,
                                             dict(args.input_shape), input_values=dict(args.input_value)))
        elif args.batch_sizes:
            from .inspect import inspect_buckets
            sys.stdout.write(inspect_buckets(args.model, args.batch_sizes, args.weights, args.platform,
                                             dict(args.input_shape), dict(args.input_value)))
        elif args.shapes:
            from .inspect import inspect_shapes
            sys.stdout.write(inspect_shapes(args.model, args.shapes, args.weights, args.platform,
                                            dict(args.input_shape), dict(args.input_value)))
        else:
            from .inspect import inspect_model
            sys.stdout.write(inspect_model(args.model, args.weights, args.batch, args.passes, args.platform,
                                           dict(args.input_shape), dict(args.input_value)))
    except CompileError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # a compiler bug: still one line, distinct exit code
        print(f"internal compiler error: {type(e).__name__}: {' '.join(str(e).split())}",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
