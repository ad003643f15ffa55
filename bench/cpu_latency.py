"""CPU latency (and batch throughput) of kiln's compiled launcher and its peers, side by side, in one run.

    python3 bench/cpu_latency.py [--runs 100] [--processes 5] [--threads 1,2] [--batch 1]
                                 [--models mlp,cnn,resnet18,mobilenet_v2,transformer]
                                 [--peers onnxruntime,tract,iree,torch] [--launches 10]

The peers install with `pip install -r bench/requirements.txt`; one that is not installed gets a
one-line note and "not installed" cells, and the run goes on. TVM (apache-tvm) is left out by
default: its wheel works, but without MetaSchedule tuning (hours per model) its CPU code is untuned
single-threaded loops (about 2 s for one ResNet-18), which would take the run far past its budget;
add it with --peers onnxruntime,tract,iree,torch,tvm.

For each model of bench/models.py, each batch size (--batch 8,32: the model exported with that static
batch; rows of batch > 1 also go into a throughput table, images/s = batch / p50) and each thread count:
- kiln builds the model's ONNX export with `kiln build` in a scratch workspace, and its launcher
  times itself (`--bench RUNS`: median, p90 and p99 of RUNS runs after a warm-up of RUNS/10 + 1 runs
  and at least 0.2 s);
- each peer runs in a worker process of its own (bench/peers.py says how each is set up and limited
  to the thread count) and is timed there: median, p90 and p99 of RUNS runs after the same warm-up;
- before timing, every runtime's output for the model's input is checked against onnxruntime's at
  the same thread count: a WARNING line when the max abs error exceeds 1e-3 of the largest |output|;
- every runtime is timed in PROCESSES fresh processes per cell (a launcher run, or a new peer worker
  that loads the model again), in turn, in an order that rotates each time: thread placement and
  memory layout differ between processes, and so can a runtime's speed. A cell is the median over
  its processes of their p50, p90 and p99, and its spread, the slowest process's median over the
  fastest's.

Printed on stdout (progress goes to stderr): the machine and the runtimes' versions; numpy's sgemm
peak (2048^3 float32, OpenBLAS limited to each thread count with threadpoolctl); a markdown table
with, per model and thread count, every runtime's p50 / p90 / p99 ms, kiln's and onnxruntime's spread,
kiln / onnxruntime at p50 and p99 (below 1: kiln is faster), kiln's GFLOP/s (bench/models.flops over
kiln's p50) and that as % of the sgemm peak at that thread count, kiln's speed-up over its 1-thread
time and how many full cores the host gave that many threads meanwhile (see host_cores); how each
peer was run; the CPU each peer kept busy while timed and the largest output error
of each runtime; and exec-to-first-result: the wall time of a whole process answering one MNIST
image, kiln's launcher (examples/mnist) against `python -c` importing onnxruntime, loading the same
model and running it once, median of LAUNCHES launches each.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import os
import platform
import re
import selectors
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import models  # noqa: E402  (bench/ is on the path only now)
from peers import PEERS, Peer  # noqa: E402

DEFAULT_PEERS = ("onnxruntime", "tract", "iree", "torch")
REFERENCE = "onnxruntime"
TOLERANCE = 1e-3    # max abs error over the largest |reference output|
SETTLE_S = 0.3      # pause before timing a runtime: thread pools of the one before stop spinning
SGEMM_N = 2048
PROBE_N = 768  # host_cores: ~10 ms a matmul on one core
SGEMM_SCRIPT = """
import sys, time, numpy as np
from threadpoolctl import threadpool_info, threadpool_limits
threads, n, repeats = (int(a) for a in sys.argv[1:4])
a, b = (np.random.default_rng(seed).random((n, n), dtype=np.float32) for seed in (0, 1))
c = np.empty_like(a)
with threadpool_limits(limits=threads, user_api="blas"):
    np.matmul(a, b, out=c)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        np.matmul(a, b, out=c)
        best = min(best, time.perf_counter() - start)
blas = [i for i in threadpool_info() if i["user_api"] == "blas"][0]
print(2 * n ** 3 / best / 1e9, blas["internal_api"], blas["version"], blas.get("architecture"))
"""
ORT_FIRST_RESULT = ("import sys, numpy as np, onnxruntime as ort; "
                    "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider']); "
                    "print(s.run(None, {'input': np.load(sys.argv[2])})[0].argmax())")


@dataclass(frozen=True)
class Process:
    """One timed process: ms percentiles of its runs."""
    p50: float
    p90: float
    p99: float


@dataclass
class Cell:
    """One runtime at one model and thread count: its processes' timings, or why it has none."""
    processes: list[Process] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    status: str = ""            # "not installed" or "failed" when it was not timed

    @property
    def ms(self) -> float | None:
        return self.median("p50")

    def median(self, percentile: str) -> float | None:
        """The median over the processes of their `percentile` ("p50", "p90", "p99")."""
        if not self.processes or self.status:
            return None
        return statistics.median(getattr(p, percentile) for p in self.processes)

    @property
    def spread(self) -> float:
        """The slowest process's median over the fastest's."""
        return max(p.p50 for p in self.processes) / min(p.p50 for p in self.processes)


class WorkerError(Exception):
    pass


class Worker:
    """One peer at one thread count in its own process (the protocol is in bench/peers.py)."""

    def __init__(self, peer: Peer, threads: int, log: Path) -> None:
        self.peer, self.threads, self.log = peer, threads, log
        with open(log, "w") as stderr:
            self.process = subprocess.Popen([sys.executable, str(REPO / "bench" / "peers.py"), peer.name,
                                             str(threads)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=stderr, text=True, bufsize=1)

    def ask(self, line: str, timeout: float) -> str:
        try:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            reply = self.process.stdout.readline() if selector.select(timeout) else None
        if reply is None:
            self.process.kill()
            raise WorkerError(f"no answer in {timeout:.0f} s (killed)")
        if not reply:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-1:] or ["no message"]
            raise WorkerError(f"worker exited ({tail[0][:300]})")
        reply = reply.strip()
        if reply.startswith("error "):
            raise WorkerError(reply[6:])
        return reply

    def load(self, name: str, onnx_path: Path, input_npy: Path, output_npy: Path) -> None:
        self.ask(f"load {name} {onnx_path} {input_npy} {output_npy}", timeout=1800)

    def time(self, runs: int) -> tuple[Process, float]:
        """Percentiles and CPU time / wall time of `runs` timed runs."""
        reply = self.ask(f"time {runs} {runs // 10 + 1}", timeout=3600)
        *ms, cpu = re.fullmatch(r"ms (\S+) p90 (\S+) p99 (\S+) cpu (\S+)", reply).groups()
        return Process(*map(float, ms)), float(cpu)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()


def build_launcher(workspace: Path, name: str, graph: Path, weights: Path | None = None) -> tuple[Path, Path]:
    """`kiln build //name` of the ONNX file `graph` (and its safetensors weights): the launcher and its weights."""
    package = workspace / name
    package.mkdir(parents=True)
    shutil.copy(graph, package / graph.name)
    attrs = ""
    if weights:
        shutil.copy(weights, package / weights.name)
        attrs = f', weights = "{weights.name}"'
    (package / "BUILD.kiln").write_text(f'model(name = "{name}", graph = "{graph.name}"{attrs})\n')
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", "build", f"//{name}"], cwd=workspace,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"kiln build //{name} failed:\n{done.stderr}")
    out = workspace / "kiln-out" / "linux-amd64-cpu" / name
    return out / name, out / f"{name}.cpu" / "weights.safetensors"


def kiln_args(launcher: Path, weights: Path, input_npy: Path, threads: int) -> list[str]:
    return [str(launcher), "--weights", str(weights), "--threads", str(threads), "--input", f"input={input_npy}"]


def kiln_process(launcher: Path, weights: Path, input_npy: Path, threads: int, runs: int) -> Process:
    """One launcher process timing itself."""
    done = subprocess.run([*kiln_args(launcher, weights, input_npy, threads), "--bench", str(runs)],
                          capture_output=True, text=True, check=True)
    found = re.search(r"median ([0-9.]+) ms, p90 ([0-9.]+) ms, p99 ([0-9.]+) ms", done.stdout)
    return Process(*map(float, found.groups()))


def sgemm_gflops(threads: int) -> list[tuple[float, str]]:
    """numpy's float32 SGEMM_N^3 matmul with `threads` BLAS threads: best GFLOP/s of 5, per OpenBLAS kernel.

    OpenBLAS fixes its kernel per process, and an environment may pin one (OPENBLAS_CORETYPE): each is
    measured in a fresh process as the environment sets it and, when pinned, as OpenBLAS picks it
    for this CPU. Empty when threadpoolctl (or numpy's OpenBLAS) is missing.
    """
    pinned = os.environ.get("OPENBLAS_CORETYPE")
    variants = {f"OPENBLAS_CORETYPE={pinned} from the environment" if pinned else "picked for this CPU": os.environ}
    if pinned:
        variants["picked for this CPU"] = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    results = []
    for how, env in variants.items():
        done = subprocess.run([sys.executable, "-c", SGEMM_SCRIPT, str(threads), str(SGEMM_N), "5"], env=env,
                              capture_output=True, text=True)
        if done.returncode == 0:
            gflops, api, version, kernel = done.stdout.split()
            results.append((float(gflops), f"{api} {version}, {kernel} kernel {how}"))
    return results


def host_cores(threads: int) -> float | None:
    """How many full cores `threads` threads get right now: numpy's sgemm on 1 BLAS thread over
    on `threads` (best of 3 each). A VM host may run two vCPUs on one physical core for a while,
    and then every runtime's multi-thread figure drops. None without threadpoolctl."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    a = np.random.default_rng(0).random((PROBE_N, PROBE_N), dtype=np.float32)

    def best_s(limit: int) -> float:
        with threadpool_limits(limits=limit, user_api="blas"):
            np.matmul(a, a)
            times = []
            for _ in range(3):
                start = time.perf_counter()
                np.matmul(a, a)
                times.append(time.perf_counter() - start)
        return min(times)

    return best_s(1) / best_s(threads)


def disagreement(output: np.ndarray, reference: np.ndarray) -> tuple[float, float]:
    """Max abs error, and that over the largest |reference| (both inf when the sizes differ)."""
    if output.size != reference.size:
        return float("inf"), float("inf")
    error = float(np.max(np.abs(output.reshape(reference.shape).astype(np.float64) - reference)))
    return error, error / max(float(np.max(np.abs(reference))), 1e-30)


def installed_version(peer: Peer) -> str | None:
    versions = []
    for dist in peer.dists:
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            return None
    return ", ".join(versions)


def cpu_name() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"^model name\s*:\s*(.+)$", text, re.M).group(1).strip()
    except (OSError, AttributeError):
        return platform.processor() or "unknown CPU"


def first_result(workspace: Path, launches: int) -> list[str]:
    """Exec-to-first-result of kiln's mnist launcher against python + onnxruntime, as markdown lines."""
    mnist = REPO / "examples" / "mnist"
    launcher, weights = build_launcher(workspace, "mnist", mnist / "mnist.onnx", mnist / "mnist.safetensors")
    image = mnist / "samples" / "digit_7.npy"
    commands = {"kiln launcher": [str(launcher), "--weights", str(weights), "--input", f"input={image}"],
                "python + onnxruntime": [sys.executable, "-c", ORT_FIRST_RESULT, str(mnist / "mnist.onnx"),
                                         str(image)]}
    times: dict[str, list[float]] = {name: [] for name in commands}
    answers: dict[str, str] = {}
    for launch in range(launches + 1):      # launch 0 warms the page cache and is not counted
        for name, command in commands.items():
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            elapsed = (time.perf_counter() - start) * 1e3
            if done.returncode:
                return [f"exec-to-first-result: `{name}` failed: {done.stderr.strip()[-300:]}"]
            answers[name] = " ".join(done.stdout.split())[:100]
            if launch:
                times[name].append(elapsed)
    kiln_ms, ort_ms = (statistics.median(t) for t in times.values())
    print(f"mnist first result  kiln {kiln_ms:8.1f} ms  python+onnxruntime {ort_ms:8.1f} ms", file=sys.stderr)
    lines = [f"Exec-to-first-result: one whole process answering examples/mnist/samples/digit_7.npy with "
             f"examples/mnist's model (default threads), median of {launches} launches:", "",
             "| process | ms | what it printed |", "|---|---|---|"]
    for name, ms in zip(commands, (kiln_ms, ort_ms)):
        lines.append(f"| {name} | {ms:.1f} | `{answers[name]}` |")
    lines += ["", f"kiln / python+onnxruntime: {kiln_ms / ort_ms:.3f}"]
    return lines


@dataclass
class Results:
    cells: dict[tuple[str, int], dict[str, Cell]] = field(default_factory=dict)   # (model, threads) -> runtime
    errors: dict[str, dict[str, float]] = field(default_factory=dict)   # model -> runtime -> largest rel. error
    gflop: dict[str, float] = field(default_factory=dict)               # model -> GFLOP per inference
    batch: dict[str, int] = field(default_factory=dict)                 # model -> its batch size
    cores: dict[tuple[str, int], list[float]] = field(default_factory=dict)  # host_cores before each set
    notes: list[str] = field(default_factory=list)                      # failures, printed under the table

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"WARNING: {text}", flush=True)


def check_outputs(results: Results, name: str, threads: int, outputs: dict[str, np.ndarray]) -> None:
    """Compare every runtime's output with onnxruntime's (torch's if it has none): WARNING lines past TOLERANCE."""
    reference = REFERENCE if REFERENCE in outputs else "torch" if "torch" in outputs else "kiln"
    errors = results.errors.setdefault(name, {})
    for runtime, output in outputs.items():
        absolute, relative = disagreement(output, outputs[reference])
        errors[runtime] = max(errors.get(runtime, 0.0), relative)
        if relative > TOLERANCE:
            print(f"WARNING: {runtime} disagrees with {reference} on {name} ({threads} threads): max abs error "
                  f"{absolute:.3g}, {relative:.3g} of the largest |output| (tolerance {TOLERANCE:g})", flush=True)


@dataclass(frozen=True)
class Subject:
    """One model at one batch size as every runtime gets it."""
    model: str              # its name in bench/models.py
    name: str               # the row's name: the model's, with the batch when it is not 1
    onnx_path: Path
    input_npy: Path
    launcher: Path          # kiln's
    weights: Path
    data: Path              # scratch directory for outputs and worker logs


def peer_process(peer: Peer, threads: int, subject: Subject) -> tuple[Worker, Path]:
    """A fresh worker process for `peer` with the model loaded, and where it saved the model's output."""
    output = subject.data / f"{subject.name}-{peer.name}-{threads}.npy"
    worker = Worker(peer, threads, subject.data / f"{peer.name}-{threads}.log")
    try:
        worker.load(subject.model, subject.onnx_path, subject.input_npy, output)
    except WorkerError:
        worker.close()
        raise
    return worker, output


def one_process(runtime: str, threads: int, subject: Subject, runs: int) -> tuple[Process, float | None]:
    """Time `runtime` in a process of its own: its percentiles, and for a peer the CPU it kept busy."""
    if runtime == "kiln":
        return kiln_process(subject.launcher, subject.weights, subject.input_npy, threads, runs), None
    worker, _ = peer_process(PEERS[runtime], threads, subject)
    try:
        return worker.time(runs)
    finally:
        worker.close()


def check_row(results: Results, row: dict[str, Cell], subject: Subject, peers: list[Peer], installed: set[str],
              threads: int) -> None:
    """Run every runtime once on the model's input and compare the outputs; mark the ones that cannot run."""
    kiln_out = subject.data / f"{subject.name}-kiln-{threads}.npy"
    subprocess.run([*kiln_args(subject.launcher, subject.weights, subject.input_npy, threads), "--output",
                    f"output={kiln_out}"], capture_output=True, check=True)
    outputs = {"kiln": np.load(kiln_out)}
    for peer in peers:
        if peer.name not in installed:
            row[peer.name].status = "not installed"
            continue
        print(f"{subject.name} {threads}t: {peer.name} load", file=sys.stderr, flush=True)
        try:
            worker, output = peer_process(peer, threads, subject)
            worker.close()
            outputs[peer.name] = np.load(output)
        except WorkerError as error:
            row[peer.name].status = "failed"
            results.note(f"{peer.name} failed on {subject.name} ({threads} threads): {error}")
    check_outputs(results, subject.name, threads, outputs)


def measure_model(results: Results, model_name: str, batch: int, workspace: Path, data: Path, peers: list[Peer],
                  installed: set[str], thread_counts: list[int], runs: int, processes: int) -> None:
    """Build the model at `batch` with kiln, check every runtime's output, time each in `processes` fresh
    processes."""
    name = model_name if batch == 1 else f"{model_name}_b{batch}"
    model = models.onnx_model(models.torch_model(model_name), model_name, batch)
    results.gflop[name], results.batch[name] = models.flops(model) / 1e9, batch
    onnx_path, input_npy = data / f"{name}.onnx", data / f"{name}.input.npy"
    onnx_path.write_bytes(model.SerializeToString())
    np.save(input_npy, models.input_array(model_name, batch=batch))
    print(f"{name}: kiln build", file=sys.stderr, flush=True)
    subject = Subject(model_name, name, onnx_path, input_npy, *build_launcher(workspace, name, onnx_path), data)
    for threads in thread_counts:
        row = results.cells[(name, threads)] = {"kiln": Cell(), **{peer.name: Cell() for peer in peers}}
        check_row(results, row, subject, peers, installed, threads)
        timed = [runtime for runtime, cell in row.items() if not cell.status]
        for launch in range(processes):   # each time one runtime later
            if threads > 1 and (cores := host_cores(threads)) is not None:
                results.cores.setdefault((name, threads), []).append(cores)
            shift = launch % len(timed)
            for runtime in timed[shift:] + timed[:shift]:
                cell = row[runtime]
                if cell.status:
                    continue
                time.sleep(SETTLE_S)  # let the last runtime's spinning threads go to sleep first
                try:
                    process, cpu = one_process(runtime, threads, subject, runs)
                except WorkerError as error:
                    cell.status = "failed"
                    results.note(f"{runtime} failed timing {name} ({threads} threads): {error}")
                    continue
                cell.processes.append(process)
                if cpu is not None:
                    cell.cpu.append(cpu)
        print(f"{name:12s} {threads}t  " + "  ".join(
            f"{r} p50 {', '.join(f'{p.p50:.3f}' for p in c.processes)} p99 {', '.join(f'{p.p99:.3f}' for p in c.processes)}"
            if c.ms is not None else f"{r} {c.status}" for r, c in row.items()) + " ms", file=sys.stderr, flush=True)


def print_sgemm(sgemm: dict[int, list[tuple[float, str]]]) -> None:
    print(f"\nsgemm peak: numpy float32 {SGEMM_N}^3 matmul, BLAS threads limited with threadpoolctl, best of 5, "
          "measured before and after the models; the best kernel's is the peak:")
    for threads, measured in sgemm.items():
        text = "; ".join(f"{gflops:.1f} GFLOP/s ({how})" for gflops, how in sorted(measured, reverse=True))
        print(f"- {threads} thread{'s' * (threads > 1)}: "
              + (text or "not measured: threadpoolctl is not installed (pip install -r bench/requirements.txt)"))


def print_throughput(results: Results, runtimes: list[str]) -> None:
    """Images per second (batch / p50) of the rows with a batch above 1."""
    rows = [(key, row) for key, row in results.cells.items() if results.batch[key[0]] > 1]
    if not rows:
        return
    print("\nBatch throughput, images/s = batch / p50 (higher is better); kiln / onnxruntime above 1: kiln is "
          "faster:\n")
    print("| model | batch | threads | " + " | ".join(f"{r} images/s" for r in runtimes)
          + " | kiln / onnxruntime |\n" + "|---" * (len(runtimes) + 4) + "|")
    for (name, threads), row in rows:
        batch = results.batch[name]
        rates = {r: batch / (c.ms * 1e-3) for r, c in row.items() if c.ms}
        ratio = f"{rates['kiln'] / rates[REFERENCE]:.2f}" if "kiln" in rates and REFERENCE in rates else "n/a"
        print(f"| {name.rsplit('_b', 1)[0]} | {batch} | {threads} | "
              + " | ".join(f"{rates[r]:.0f}" if r in rates else row[r].status or "-" for r in runtimes)
              + f" | {ratio} |")


def print_tables(results: Results, peers: list[Peer], peaks: dict[int, float | None], runs: int,
                 processes: int) -> None:
    """The latency table, how each runtime ran, the CPU each peer kept busy and the output errors."""
    runtimes = ["kiln", *(peer.name for peer in peers)]

    def cell_text(runtime: str, threads: int, cell: Cell) -> str:
        if cell.ms is None:
            return cell.status
        peer = PEERS.get(runtime)
        capped = peer is not None and peer.max_threads is not None and threads > peer.max_threads
        p50, p90, p99 = (cell.median(p) for p in ("p50", "p90", "p99"))
        return f"{p50:.3f} / {p90:.3f} / {p99:.3f}" + ("†" if capped else "")

    def ratio(row: dict[str, Cell], percentile: str) -> str:
        kiln, reference = row["kiln"].median(percentile), row[REFERENCE].median(percentile) if REFERENCE in row else None
        return f"{kiln / reference:.2f}" if kiln and reference else "n/a"

    spread_of = ["kiln", REFERENCE] if REFERENCE in runtimes else ["kiln"]
    print(f"ms of {runs} runs per process, p50 / p90 / p99, each the median over {processes} fresh processes; "
          "spread: the slowest process's median over the fastest's; kiln / onnxruntime below 1: kiln is faster. "
          "GFLOP counts a direct convolution's multiply-adds; kiln's Winograd route does fewer, so its GFLOP/s "
          "can pass the sgemm peak.\n")
    print("| model | GFLOP | threads | " + " | ".join(f"{r} p50 / p90 / p99 ms" for r in runtimes)
          + "".join(f" | {r} spread" for r in spread_of)
          + " | kiln / onnxruntime p50 | kiln / onnxruntime p99 | kiln GFLOP/s | % of sgemm peak"
            " | kiln speed-up over 1 thread | host cores |")
    print("|---" * (len(runtimes) + len(spread_of) + 9) + "|")
    for (name, threads), row in results.cells.items():
        kiln_ms = row["kiln"].ms
        spreads = "".join(f" | {row[r].spread:.2f}" if row[r].ms else " | -" for r in spread_of)
        achieved = results.gflop[name] / (kiln_ms * 1e-3) if kiln_ms else None
        rate = f"{achieved:.1f}" if achieved else "n/a"
        share = f"{100 * achieved / peaks[threads]:.1f}%" if achieved and peaks[threads] else "n/a"
        single = results.cells.get((name, 1), {}).get("kiln")
        speedup = f"{single.ms / kiln_ms:.2f}" if threads > 1 and kiln_ms and single and single.ms else "-"
        cores = results.cores.get((name, threads))
        host = "-" if not cores else f"{statistics.median(cores):.2f} ({min(cores):.2f}-{max(cores):.2f})"
        print(f"| {name} | {results.gflop[name]:.3f} | {threads} | "
              + " | ".join(cell_text(r, threads, c) for r, c in row.items()) + spreads
              + f" | {ratio(row, 'p50')} | {ratio(row, 'p99')} | {rate} | {share} | {speedup} | {host} |")

    print("\nHow each ran:\n- kiln: the launcher's own `--bench RUNS` timer (after RUNS/10 + 1 and >= 0.2 s of "
          "warm-up runs), `--threads` = threads")
    for peer in peers:
        print(f"- {peer.name}: {peer.note}")
    if any(peer.max_threads for peer in peers):
        print("- †: ran on fewer threads than the row's (see above)")
    print("- every process's p50 and p99 are on stderr")
    print("- host cores: before each set of processes of a multi-thread row, numpy's sgemm on 1 BLAS thread over "
          "on the row's threads (median, and range over the sets). On a VM it drops towards 1 when the host "
          "runs the vCPUs on one physical core, or when other processes keep the cores busy; every runtime's "
          "figures in that row suffer then")
    for note in results.notes:
        print(f"- {note}")

    print_throughput(results, runtimes)

    names = [peer.name for peer in peers]
    print("\nCPU each peer kept busy while timed (its process's CPU time / wall time; spinning thread pools "
          "count too):\n")
    print("| model | threads | " + " | ".join(names) + " |\n" + "|---" * (len(names) + 2) + "|")
    for (name, threads), row in results.cells.items():
        print(f"| {name} | {threads} | " + " | ".join(
            f"{statistics.median(row[p].cpu):.2f}" if row[p].cpu else "-" for p in names) + " |")

    print(f"\nLargest output error against {REFERENCE} (max abs error / largest |output|, over the thread counts; "
          f"tolerance {TOLERANCE:g}):\n")
    print("| model | " + " | ".join(runtimes) + " |\n" + "|---" * (len(runtimes) + 1) + "|")
    for name, errors in results.errors.items():
        print(f"| {name} | " + " | ".join(f"{errors[r]:.1e}" if r in errors else "-" for r in runtimes) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100,
                        help="timed runs per process (>= 100 for a p99 that is not just the slowest run)")
    parser.add_argument("--processes", type=int, default=5, help="fresh processes per runtime and cell")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--batch", default="1", help="batch sizes, e.g. 1,8,32")
    parser.add_argument("--models", default=",".join(models.MODELS))
    parser.add_argument("--peers", default=",".join(DEFAULT_PEERS), help=f"of {', '.join(PEERS)}")
    parser.add_argument("--launches", type=int, default=10, help="process launches for exec-to-first-result")
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    batches = [int(b) for b in args.batch.split(",")]
    model_names, peer_names = args.models.split(","), args.peers.split(",")
    unknown = [p for p in peer_names if p not in PEERS] + [m for m in model_names if m not in models.MODELS]
    if unknown:
        parser.error(f"unknown peer or model: {', '.join(unknown)}")
    peers = [PEERS[p] for p in peer_names]
    versions = {peer.name: installed_version(peer) for peer in peers}

    started = time.monotonic()
    print(f"# kiln vs peers, CPU latency at batch {args.batch}\n\nMachine: {cpu_name()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, numpy {np.__version__}; load average at the start "
          f"{os.getloadavg()[0]:.2f} (other busy processes slow everything, the 2-thread rows most)\n")
    print(f"- kiln {importlib.metadata.version('kiln')}")
    for peer in peers:
        print(f"- {peer.name}: {versions[peer.name] or 'not installed (pip install -r bench/requirements.txt)'}")
    if "tvm" not in peer_names:
        print("- tvm: not run by default (apache-tvm 0.27 installs, but untuned it is ~100x slower; see --help)")
    sys.stdout.flush()
    sgemm = {t: sgemm_gflops(t) for t in thread_counts}

    results = Results()
    with tempfile.TemporaryDirectory() as scratch:
        workspace, data = Path(scratch) / "workspace", Path(scratch) / "data"
        workspace.mkdir()
        data.mkdir()
        (workspace / "MODULE.kiln").write_text("")
        installed = {peer.name for peer in peers if versions[peer.name]}
        for name in model_names:
            for batch in batches:
                measure_model(results, name, batch, workspace, data, peers, installed, thread_counts, args.runs,
                              args.processes)
        first = first_result(workspace, args.launches)

    # Measured again at the end: the higher one counts (another busy process lowers it).
    sgemm = {t: [max(pair) for pair in zip(sgemm[t], sgemm_gflops(t))] for t in thread_counts}
    print_sgemm(sgemm)
    print(f"\nRun took {(time.monotonic() - started) / 60:.1f} min; load average at the end "
          f"{os.getloadavg()[0]:.2f}.\n")
    peaks = {t: max(sgemm[t])[0] if sgemm[t] else None for t in thread_counts}
    print_tables(results, peers, peaks, args.runs, args.processes)
    print("")
    for line in first:
        print(line)


if __name__ == "__main__":
    os.environ.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    main()
