"""The runtimes kiln is measured against, each behind one small interface, and the worker that runs one.

A peer's `prepare(workload, threads)` loads the model and returns `run()`: one inference of the
workload's input, returning the output as a numpy array. bench/cpu_latency.py runs every peer in a
worker process of its own per thread count,

    python bench/peers.py PEER THREADS

because several of them fix their thread pool once per process (IREE's task driver, TVM's pool,
torch's OpenMP team), and so that one peer's threads, or crash, cannot touch another's numbers.
The worker talks one line each way, on its stdin and a private copy of its stdout (anything the
libraries print goes to stderr):

    load NAME ONNX INPUT_NPY OUTPUT_NPY   ->  ok | error MESSAGE    (runs once, saves the output)
    time RUNS WARMUP                      ->  ms MEDIAN p90 P90 p99 P99 cpu CPU_PER_WALL

MEDIAN, P90 and P99 are ms over the RUNS timed runs (nearest rank, as kiln's launcher counts them);
CPU_PER_WALL is the worker's CPU time over wall time while timing: how many cores it kept busy.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

Run = Callable[[], np.ndarray]

# IREE: the llvm-cpu backend for this host's CPU, plus the flags that make its CPU code fast
# (im2col turns convolutions into matmuls, which data tiling and the mmt4d microkernels then cover;
# without them ResNet-18 runs 4x slower).
IREE_FLAGS = ("--iree-llvmcpu-target-cpu=host", "--iree-opt-level=O3", "--iree-global-opt-use-im2col-for-convs",
              "--iree-opt-data-tiling", "--iree-llvmcpu-enable-ukernels=all")


@dataclass(frozen=True)
class Workload:
    name: str           # a model name of bench/models.py
    onnx_path: Path     # its ONNX export (one input, "input"; one output)
    input: np.ndarray


@dataclass(frozen=True)
class Peer:
    name: str                                   # the table's column
    dists: tuple[str, ...]                      # the pip distributions it needs
    prepare: Callable[[Workload, int], Run]
    max_threads: int | None = None              # it cannot use more threads than this
    note: str = ""                              # how it is run, printed under the table


def prepare_onnxruntime(work: Workload, threads: int) -> Run:
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(str(work.onnx_path), options, providers=["CPUExecutionProvider"])
    feeds = {session.get_inputs()[0].name: work.input}
    return lambda: session.run(None, feeds)[0]


def prepare_tract(work: Workload, threads: int) -> Run:
    import tract
    runnable = tract.onnx().load(str(work.onnx_path)).into_model().into_runnable()
    state, tensor = runnable.spawn_state(), tract.Tensor.from_numpy(work.input)
    return lambda: state.run([tensor])[0].to_numpy()


def prepare_iree(work: Workload, threads: int) -> Run:
    import iree.compiler
    import iree.runtime as rt
    vmfb = work.onnx_path.with_suffix(".iree.vmfb")     # compiled once, shared by the thread counts
    if not vmfb.exists():
        mlir = work.onnx_path.with_suffix(".mlir")
        subprocess.run([sys.executable, "-m", "iree.compiler.tools.import_onnx", str(work.onnx_path), "-o",
                        str(mlir)], check=True, stdout=sys.stderr)
        iree.compiler.compile_file(str(mlir), target_backends=["llvm-cpu"], extra_args=list(IREE_FLAGS),
                                   output_file=str(vmfb))
        mlir.unlink()
    # Read when the process's local-task driver is created: this worker's one thread count.
    rt.flags.parse_flags(f"--task_topology_max_group_count={threads}")
    config = rt.Config("local-task")
    context = rt.SystemContext(config=config)
    module = rt.VmModule.copy_buffer(config.vm_instance, vmfb.read_bytes())
    context.add_vm_module(module)
    entry = next(f for f in module.function_names if not f.startswith("__") and "$" not in f)
    main = context.modules[module.name][entry]
    x = rt.asdevicearray(config.device, work.input)
    return lambda: main(x).to_host()


def prepare_torch(work: Workload, threads: int) -> Run:
    import torch
    import models
    torch.set_num_threads(threads)
    module, x = models.torch_model(work.name), torch.from_numpy(work.input)

    def run() -> np.ndarray:
        with torch.inference_mode():
            return module(x).numpy()
    return run


def prepare_tvm(work: Workload, threads: int) -> Run:
    import onnx
    import tvm
    from tvm import relax
    from tvm.relax.frontend.onnx import from_onnx
    from tvm.s_tir import dlight
    mod = relax.transform.DecomposeOpsForInference()(from_onnx(onnx.load(str(work.onnx_path))))
    target = tvm.target.Target({"kind": "llvm", "mcpu": tvm.target.codegen.llvm_get_system_cpu()})
    with target:   # the schedules TVM has for CPU without tuning
        mod = relax.get_pipeline("zero")(mod)
        mod = dlight.ApplyDefaultSchedule(dlight.cpu.GEMV(), dlight.cpu.Reduction())(mod)
    vm = relax.VirtualMachine(tvm.compile(mod, target=target), tvm.cpu())
    main, x = vm["main"], tvm.runtime.tensor(work.input)
    return lambda: main(x).numpy()


PEERS: dict[str, Peer] = {peer.name: peer for peer in (
    Peer("onnxruntime", ("onnxruntime",), prepare_onnxruntime,
         note="CPUExecutionProvider, intra_op_num_threads = threads, sequential execution"),
    Peer("tract", ("tract",), prepare_tract, max_threads=1,
         note="tract's Python API has no thread setting and its default executor is single-threaded: "
              "its 2-thread cells (†) ran on 1 thread"),
    Peer("iree", ("iree-base-compiler", "iree-base-runtime"), prepare_iree,
         note="iree-import-onnx, then llvm-cpu with " + " ".join(IREE_FLAGS)
              + "; local-task driver with --task_topology_max_group_count = threads"),
    Peer("torch", ("torch",), prepare_torch,
         note="PyTorch eager on bench/models.py's module, torch.set_num_threads(threads), inference_mode"),
    Peer("tvm", ("apache-tvm",), prepare_tvm, max_threads=1,
         note="Relax ONNX frontend, llvm for this CPU, dlight's CPU GEMV/Reduction schedules, no MetaSchedule "
              "tuning (hours per model): its untuned loops are not parallel, so its 2-thread cells (†) ran "
              "on 1 thread"),
)}


WARM_UP_S = 0.2  # idle cores (a VM's idle vCPU) take a while to run at speed again

def percentile(sorted_ms: list[float], p: int) -> float:
    """Nearest rank: the smallest time that at least p percent of the runs do not exceed."""
    return sorted_ms[max(0, -(-len(sorted_ms) * p // 100) - 1)]


def time_run(run: Run, runs: int, warmup: int) -> tuple[tuple[float, float, float], float]:
    """(median, p90, p99) ms of `runs` calls after a warm-up of `warmup` calls and at least WARM_UP_S
    (as kiln's launcher does), and the process's CPU time over wall time meanwhile."""
    warm_until = time.perf_counter() + WARM_UP_S
    done = 0
    while done < warmup or time.perf_counter() < warm_until:
        run()
        done += 1
    times = []
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    times.sort()
    return (statistics.median(times), percentile(times, 90), percentile(times, 99)), cpu / wall


def worker(peer: Peer, threads: int) -> None:
    """Serve `load` and `time` lines on stdin (see the module docstring) until stdin closes."""
    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)   # libraries that print must not write into the replies
    run: Run | None = None
    for line in sys.stdin:
        command, *args = line.split()
        try:
            if command == "load":
                name, onnx_path, input_npy, output_npy = args
                run = None   # free the previous model first
                run = peer.prepare(Workload(name, Path(onnx_path), np.load(input_npy)), threads)
                np.save(output_npy, np.asarray(run()))
                reply.write("ok\n")
            elif command == "time":
                assert run is not None, "time before load"
                (median, p90, p99), cpu = time_run(run, int(args[0]), int(args[1]))
                reply.write(f"ms {median:.6f} p90 {p90:.6f} p99 {p99:.6f} cpu {cpu:.3f}\n")
            else:
                reply.write(f"error unknown command {command!r}\n")
        except Exception as error:   # report it and stay up: the next model may well work
            run = None
            message = " ".join(f"{type(error).__name__}: {error}".split())
            reply.write(f"error {message[:500]}\n")


if __name__ == "__main__":
    peer_name, thread_count = sys.argv[1], int(sys.argv[2])
    # Thread pools that size themselves from the environment when first used.
    for variable in ("OMP_NUM_THREADS", "TVM_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[variable] = str(thread_count)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    worker(PEERS[peer_name], thread_count)
