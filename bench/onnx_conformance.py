"""ONNX's node conformance suite through kiln (issue 14, item 4), reported per case and per op.

    python bench/onnx_conformance.py [--backend cpu|gpu|stablehlo] [--out bench/onnx_conformance.md]
                                     [-k PATTERN] [--jobs N] [--timeout S]

The node test cases are generated with onnx's own generators (`onnx.backend.test.case.node`) into
$XDG_CACHE_HOME/kiln/onnx-node-cases/<onnx version>/ (never into the repository), in the layout
`backend-test-tools generate-data` writes: <case>/model.onnx and <case>/test_data_set_0/{input,output}_N.pb.
Every case is compiled by kiln and run on its inputs, and its outputs are compared with onnx's
reference outputs as onnx's backend test runner does (assert_allclose with the case's rtol/atol,
1e-3/1e-7; NaN where NaN is expected; same dtype and shape). onnx's node cases feed axes, shapes
and weights as graph inputs; kiln compiles them as build-time values, so a case that kiln refuses
because an input must be known at build time is compiled again with every input after the first
made an initializer holding the case's value, and if the first must be known too, with every input
made one (what `input_values` does for a user's model; the case's line names them).

Runners (in worker processes, so a case that crashes or hangs costs its worker, which is replaced,
and never the run):
- cpu: kiln.compiler.driver.compile for cpu, run by kiln.compiler.jit.JitModel (the best variant
  this host runs), as tests/onnx_models.py:kiln_run does;
- gpu: the GPU kernel description (backend/gpu/codegen.build_kernels) lowered to CPU loops and run
  by backend/gpu/emulate.EmulatedDevice, as tests/gpu_harness.py does;
- stablehlo: the StableHLO program run by the C launcher on XLA's CPU PJRT plugin
  (conformance_pjrt.py, as tests/pjrt_harness.py does).

Each case is `pass`, `fail` (compiled but wrong, or crashed: the one-line reason), `unsupported`
(kiln's CompileError says an op, dtype or attribute is not supported) or `excluded` (by the rule
named: string, sequence, optional and training ops, and inputs/outputs other than
float32/int64/int32/int8/uint8/bool tensors). The markdown report (conformance_report.py) is deterministic
apart from the kiln commit in its header.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shlex
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import wait
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conformance_cases import Case, case_root, load_cases  # noqa: E402
from conformance_pjrt import run_stablehlo  # noqa: E402
from conformance_report import Result, render  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
TENSOR_DTYPES = {TensorProto.FLOAT, TensorProto.INT64, TensorProto.INT32, TensorProto.INT8, TensorProto.UINT8,
                 TensorProto.BOOL}
SEQUENCE_OPS = {"SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase", "SequenceInsert",
                "SequenceLength", "SequenceMap", "SplitToSequence", "ConcatFromSequence"}
OPTIONAL_OPS = {"Optional", "OptionalHasElement", "OptionalGetElement"}
STRING_OPS = {"StringConcat", "StringNormalizer", "StringSplit", "RegexFullMatch", "TfIdfVectorizer"}
TRAINING_DOMAIN = "ai.onnx.preview.training"
# kiln's CompileError messages that name a limitation of kiln rather than a wrong result
UNSUPPORTED = re.compile(r"unsupported|not support|is supported|are supported|supported:"
                         r"|must be (a )?constant|expects f32")
STARTUP_SECONDS = 120  # for a worker to import kiln
# kiln's CompileError messages that ask for a value at build time that the case feeds at run time
BUILD_TIME = re.compile(r"must be known at build time|must be constant|need build-time")


# --- exclusion ----------------------------------------------------------------------------------

def _nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from _nodes(sub)


def _value_rule(vi: onnx.ValueInfoProto) -> str | None:
    kind = vi.type.WhichOneof("value")
    if kind == "sequence_type":
        return "sequence"
    if kind == "optional_type":
        return "optional"
    if kind != "tensor_type":
        return f"{kind} value"
    elem = vi.type.tensor_type.elem_type
    if elem == TensorProto.STRING:
        return "string"
    if elem not in TENSOR_DTYPES:
        return f"dtype {TensorProto.DataType.Name(elem).lower()}"
    return None


def exclusion(case: Case, model: onnx.ModelProto) -> str | None:
    """The rule that keeps this case out of the conformance set, or None."""
    ops = {(n.domain, n.op_type) for n in _nodes(model.graph)}
    if "training" in case.name or any(d == TRAINING_DOMAIN for d, _ in ops):
        return "training"
    for rule, names in (("sequence", SEQUENCE_OPS), ("optional", OPTIONAL_OPS), ("string", STRING_OPS)):
        if any(op in names for _, op in ops):
            return rule
    for vi in [*model.graph.input, *model.graph.output]:
        rule = _value_rule(vi)
        if rule:
            return rule
    return None


# --- one case, in a worker --------------------------------------------------------------------

def _read_tensors(folder: Path, prefix: str, count: int) -> list[np.ndarray]:
    arrays = []
    for i in range(count):
        proto = TensorProto()
        proto.ParseFromString((folder / f"{prefix}_{i}.pb").read_bytes())
        arrays.append(numpy_helper.to_array(proto))
    return arrays


def _run_cpu(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from kiln.compiler import driver
    from kiln.compiler.jit import JitModel

    compiled = driver.compile(path)
    return JitModel(compiled).run(*[feeds[i["name"]] for i in compiled.manifest["inputs"]])


def _run_gpu(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    from kiln.compiler.artifacts import safetensors_bytes
    from kiln.compiler.backend.gpu.codegen import build_kernels
    from kiln.compiler.backend.gpu.emulate import EmulatedDevice
    from kiln.compiler.frontend.onnx import load_onnx
    from kiln.compiler.ir.graph import DTYPES
    from kiln.compiler.passes.pipeline import run_pipeline

    graph = run_pipeline(load_onnx(path))
    kernels, plan = build_kernels(graph)
    weights, start = safetensors_bytes(plan.weights)
    device = EmulatedDevice(kernels, plan, weights[start:])
    outs = [(v.type.shape, np.dtype(DTYPES[v.type.dtype])) for v in graph.outputs]
    return device.run([feeds[v.name] for v in graph.inputs], outs)


RUNNERS = {"cpu": _run_cpu, "gpu": _run_gpu, "stablehlo": run_stablehlo}


def mismatch(got: list[np.ndarray], want: list[np.ndarray], case: Case) -> str | None:
    """Why kiln's outputs differ from onnx's reference outputs (as onnx's backend runner checks)."""
    if len(got) != len(want):
        return f"{len(got)} outputs, expected {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        if g.dtype != w.dtype or g.shape != w.shape:
            return f"output {i}: {g.dtype}{list(g.shape)}, expected {w.dtype}{list(w.shape)}"
        try:
            if w.dtype.kind == "f":
                np.testing.assert_allclose(g, w, rtol=case.rtol, atol=case.atol, equal_nan=True)
            else:
                np.testing.assert_array_equal(g, w)
        except AssertionError as e:
            lines = [x.strip().rstrip(":") for x in str(e).splitlines() if "ismatch" in x]
            return f"output {i}: {lines[0] if lines else 'values differ'}"
    return None


def run_case(case: Case, backend: str) -> Result:
    from kiln.compiler.errors import CompileError

    model = onnx.load(str(case.model_path), load_external_data=False)
    feeds = dict(zip([v.name for v in model.graph.input],
                     _read_tensors(case.data_dir, "input", len(model.graph.input))))
    want = _read_tensors(case.data_dir, "output", len(model.graph.output))
    note = ""
    try:
        with np.errstate(all="ignore"), tempfile.TemporaryDirectory() as scratch:
            try:
                got = RUNNERS[backend](case.model_path, feeds)
            except CompileError as e:
                if not BUILD_TIME.search(str(e)):
                    raise
                path, kept, note = _fold_inputs(model, feeds, Path(scratch), keep_first=True)
                try:
                    got = RUNNERS[backend](path, kept)
                except CompileError as again:
                    if not (kept and BUILD_TIME.search(str(again))):
                        raise
                    path, kept, note = _fold_inputs(model, feeds, Path(scratch), keep_first=False)
                    got = RUNNERS[backend](path, kept)
    except CompileError as e:
        status = "unsupported" if UNSUPPORTED.search(str(e)) else "fail"
        return Result(case, status, _join(note, str(e) if status == "unsupported" else f"CompileError: {e}"))
    except Exception as e:  # noqa: BLE001 - every crash of kiln on a case is that case's failure
        return Result(case, "fail", _join(note, f"{type(e).__name__}: {_first_line(e)}"))
    reason = mismatch(got, want, case)
    return Result(case, "fail", _join(note, reason)) if reason else Result(case, "pass", note)


def _fold_inputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray], scratch: Path, keep_first: bool
                 ) -> tuple[Path, dict[str, np.ndarray], str]:
    """The model with every input after the first (with `keep_first`; else, or of a one-input model,
    every input) made an initializer holding the case's value, as a deployed model holds its weights,
    axes and shapes: (its path, the remaining feeds, a note)."""
    folded = onnx.ModelProto()
    folded.CopyFrom(model)
    names = [vi.name for vi in model.graph.input]
    keep = names[:1] if keep_first and len(names) > 1 else []
    fold = names[len(keep):]
    folded.graph.initializer.extend(numpy_helper.from_array(feeds[n], n) for n in fold)
    del folded.graph.input[len(keep):]
    path = scratch / "model.onnx"
    onnx.save(folded, str(path))
    return path, {n: feeds[n] for n in keep}, f"inputs {', '.join(fold)} as initializers"


def _join(note: str, reason: str) -> str:
    return f"{note}; {reason}" if note else reason


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""


def _serve(conn, backend: str) -> None:
    """Worker: say it is ready (kiln imported), then run the cases the parent sends until None."""
    import kiln.compiler.driver  # noqa: F401 - the import is not any case's time
    import kiln.compiler.jit  # noqa: F401

    conn.send("ready")
    while (case := conn.recv()) is not None:
        conn.send(run_case(case, backend))


# --- the pool ---------------------------------------------------------------------------------

@dataclass
class Worker:
    process: multiprocessing.Process
    conn: object
    case: Case | None = None
    deadline: float = 0.0


class Pool:
    """Worker processes that each run one case at a time; a worker that dies or passes the
    deadline is killed and replaced, and its case fails with the reason."""

    def __init__(self, backend: str, jobs: int, timeout: float) -> None:
        self.context = multiprocessing.get_context("spawn")
        self.backend, self.timeout = backend, timeout
        self.workers = [self._start() for _ in range(jobs)]

    def _start(self) -> Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=_serve, args=(child, self.backend), daemon=True)
        process.start()
        child.close()
        if not parent.poll(STARTUP_SECONDS) or parent.recv() != "ready":
            raise RuntimeError(f"a conformance worker did not start within {STARTUP_SECONDS} s")
        return Worker(process, parent)

    def run(self, cases: list[Case], progress: Callable[[int, Result], None]) -> list[Result]:
        pending, results = deque(cases), []
        while pending or any(w.case for w in self.workers):
            for w in self.workers:
                if w.case is None and pending:
                    w.case, w.deadline = pending.popleft(), time.monotonic() + self.timeout
                    try:
                        w.conn.send(w.case)
                    except OSError:  # it died between cases: _collect fails this case and replaces it
                        pass
            busy = [w for w in self.workers if w.case]
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                 timeout=max(0.0, min(w.deadline for w in busy) - time.monotonic()))
            for i, w in enumerate(self.workers):
                result = self._collect(i, w)
                if result:
                    results.append(result)
                    progress(len(results), result)
        return results

    def _collect(self, index: int, w: Worker) -> Result | None:
        if w.case is None:
            return None
        try:
            if w.conn.poll():
                result, w.case = w.conn.recv(), None
                return result
        except (EOFError, OSError):
            pass
        if w.process.is_alive() and time.monotonic() < w.deadline:
            return None
        reason = (f"timed out after {self.timeout:g} s" if w.process.is_alive()
                  else f"worker process died (exit code {w.process.exitcode})")
        w.process.kill()
        w.process.join()
        self.workers[index] = self._start()
        return Result(w.case, "fail", reason)

    def close(self) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
            except OSError:  # it died after its last case
                pass
            w.process.join(5)
            if w.process.is_alive():
                w.process.kill()


# --- command line -----------------------------------------------------------------------------

def classify(cases: list[Case]) -> tuple[list[Case], list[Result]]:
    """(cases to run, results of the excluded ones)."""
    runnable, excluded = [], []
    for case in cases:
        rule = exclusion(case, onnx.load(str(case.model_path), load_external_data=False))
        if rule:
            excluded.append(Result(case, "excluded", rule))
        else:
            runnable.append(case)
    return runnable, excluded


def conform(backend: str, pattern: str | None, jobs: int, timeout: float) -> list[Result]:
    cases = [c for c in load_cases(case_root()) if not pattern or re.search(pattern, c.name)]
    runnable, excluded = classify(cases)
    start = time.monotonic()

    def progress(done: int, result: Result) -> None:
        print(f"[{done}/{len(runnable)} {time.monotonic() - start:.0f}s] {result.status:11} {result.case.name}",
              file=sys.stderr)

    pool = Pool(backend, jobs, timeout)
    try:
        results = pool.run(runnable, progress)
    finally:
        pool.close()
    print(f"{len(runnable)} cases run in {time.monotonic() - start:.0f} s with {jobs} workers", file=sys.stderr)
    return sorted(results + excluded, key=lambda r: r.case.name)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(RUNNERS), default="cpu")
    parser.add_argument("--out", type=Path, help="write the markdown report here (default: stdout)")
    parser.add_argument("-k", dest="pattern", help="only the cases whose name matches this regex")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = parser.parse_args(argv)
    if args.jobs < 1 or args.timeout <= 0:
        parser.error("--jobs and --timeout must be positive")
    results = conform(args.backend, args.pattern, args.jobs, args.timeout)
    command = shlex.join(["python", "bench/onnx_conformance.py", *(argv if argv is not None else sys.argv[1:])])
    text = render(results, args.backend, command, REPO)
    if args.out:
        args.out.write_text(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
