"""Command line: `python -m kiln.compiler compile|inspect ...`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import CompileError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m kiln.compiler")
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("compile", help="compile an ONNX model (cpu: an object file; tpu, cpu-xla: StableHLO)")
    c.add_argument("model", type=Path)
    c.add_argument("--platform", default="cpu",
                   help="cpu, tpu, cpu-xla, cuda[:sm_80,...] or rocm[:gfx90a,...]")
    c.add_argument("--ptxas", type=Path, help="ptxas to check CUDA kernels with (default: the pinned one)")
    c.add_argument("--host", default="linux-amd64", choices=["linux-amd64", "linux-arm64"])
    c.add_argument("--weights", type=Path)
    c.add_argument("--batch", type=int, default=1)
    c.add_argument("--name")
    c.add_argument("-o", "--output", type=Path, required=True, help="output directory")
    i = sub.add_parser("inspect", help="print the graph after the compiler passes")
    i.add_argument("model", type=Path)
    i.add_argument("--weights", type=Path)
    i.add_argument("--batch", type=int, default=1)
    i.add_argument("--passes", action="store_true", help="print the graph after every pass")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "compile" and args.platform.split(":")[0] in ("cuda", "rocm"):
            from .gpu_driver import compile_gpu
            compile_gpu(args.model, args.weights, args.platform, args.batch, args.name,
                        args.ptxas).write(args.output)
        elif args.command == "compile" and args.platform not in ("cpu", "tpu", "cpu-xla"):
            raise CompileError(f"unknown platform {args.platform}")
        elif args.command == "compile" and args.platform != "cpu":
            from .pjrt_driver import compile_pjrt
            compile_pjrt(args.model, args.weights, args.platform, args.batch, args.name).write(args.output)
        elif args.command == "compile":
            from .driver import compile_model
            compile_model(args.model, args.weights, args.host, args.batch, args.name).write(args.output)
        else:
            from .inspect import inspect_model
            sys.stdout.write(inspect_model(args.model, args.weights, args.batch, args.passes))
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
