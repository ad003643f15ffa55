"""Throughput, latency and memory of `kiln serve` under load, against onnxruntime served the way users
serve it: behind a FastAPI app on uvicorn speaking the same Open Inference Protocol (KServe v2).

    python3 bench/serve.py [--model mnist,resnet18] [--clients 1,8,64] [--seconds 10] [--threads auto]
                           [--buckets 1,2,4,8]
    python3 bench/serve.py --soak 600 [--model mnist] [--clients 64]

Needs Debian's `wrk` (apt-get install wrk) and the peer's packages (pip install -r bench/requirements.txt;
resnet18 also torch, which exports it: see bench/models.py). Models: mnist (examples/mnist), sent as v2
JSON (one digit, 784 numbers); resnet18 (bench/models.py at 1x3x224x224), whose 150528 floats go as
Triton's binary tensor extension (a JSON header of Inference-Header-Content-Length bytes, then the raw
tensor; binary outputs asked for), to both servers. kiln builds each model twice in a scratch workspace:
at batch 1, answering each request alone, and with shape buckets (batch_sizes = --buckets), serving with
dynamic batching (--max-batch the largest bucket, --batch-timeout-us 200), each gathered batch run in
the smallest bucket holding it. Both servers listen on loopback; before timing, each one's output
is checked against onnxruntime's in-process result. For each client count, wrk keeps that many
connections busy for --seconds per server (keep-alive, one request in flight per connection) after a
2 s warm-up run, each run started once the server has finished what the last one left queued (at 64
clients ResNet-18's queue is seconds deep: give it --seconds 30 or more); the three servers of a model
run side by side and take turns at each client count, so a change in a shared host's load reaches all
of them (the 1-minute load average at the end of each cell is printed). Printed per model: requests/s,
p50 and p99 latency (wrk's --latency), errors (non-2xx and socket errors), each server's resident memory
after the run (VmRSS, and its peak VmHWM), and kiln / peer ratios. The peer runs one uvicorn worker
with onnxruntime's default threads; kiln runs with --threads (default: every core this process may use).
Load generator and servers share the machine: on a small one wrk's own CPU caps both.

--soak SECONDS runs only the batch-1 kiln server of the first --model under wrk at the last --clients
count for that long, sampling its VmRSS every --sample seconds, and prints the samples, requests/s, p99
and errors.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(REPO / "tests"))
import serve_harness  # noqa: E402

PATH = "/v2/models/{}/infer"


@dataclass
class Workload:
    """One model as both servers get it: kiln's build rules, the peer's ONNX file and one request."""
    name: str
    files: list[Path]         # what the model's package holds: ONNX graphs, weights
    rules: dict[str, str]     # kiln target name -> the attributes of its model() rule
    peer_onnx: Path           # batch 1
    sample: np.ndarray
    binary: bool              # the request's tensor as binary data after a JSON header, not JSON numbers


def batched_name(name: str) -> str:
    return f"{name}_buckets"


def mnist_workload(scratch: Path, buckets: list[int]) -> Workload:
    del scratch  # the example's files are used where they are
    model = EXAMPLES / "mnist"
    attrs = 'graph = "mnist.onnx", weights = "mnist.safetensors"'
    sample = np.load(model / "samples" / "digit_7.npy").astype(np.float32).reshape(1, 1, 28, 28)
    return Workload("mnist", [model / "mnist.onnx", model / "mnist.safetensors"],
                    {"mnist": attrs, batched_name("mnist"): f"{attrs}, batch_sizes = {buckets}"},
                    model / "mnist.onnx", sample, binary=False)


def resnet18_workload(scratch: Path, buckets: list[int]) -> Workload:
    """bench/models.py's ResNet-18 exported at batch 1, and with a symbolic batch for the buckets."""
    try:
        import models
    except ImportError as error:
        raise SystemExit(f"bench: resnet18 is exported by torch ({error}): see bench/requirements.txt") from None
    files = [scratch / "resnet18_b1.onnx", scratch / "resnet18_bN.onnx"]
    for file, dynamic in zip(files, (False, True)):
        file.write_bytes(models.onnx_model(models.torch_model("resnet18"), "resnet18",
                                           dynamic_batch=dynamic).SerializeToString())
    rules = {"resnet18": 'graph = "resnet18_b1.onnx"',
             batched_name("resnet18"): f'graph = "resnet18_bN.onnx", batch_sizes = {buckets}'}
    return Workload("resnet18", files, rules, files[0], models.input_array("resnet18"), binary=True)


WORKLOADS = {"mnist": mnist_workload, "resnet18": resnet18_workload}


def build_kiln(scratch: Path, work: Workload) -> dict[str, tuple[Path, Path]]:
    """Every rule of `work` built in a scratch workspace: each target's launcher and weights."""
    package = scratch / "workspace" / work.name
    package.mkdir(parents=True)
    (package.parent / "MODULE.kiln").write_text("")
    for file in work.files:
        shutil.copy(file, package / file.name)
    (package / "BUILD.kiln").write_text("".join(f'model(name = "{name}", {attrs})\n'
                                                for name, attrs in work.rules.items()))
    done = subprocess.run([sys.executable, "-m", "kiln.build_rules", "build",
                           *(f"//{work.name}:{name}" for name in work.rules)],
                          cwd=package.parent, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"bench: kiln build of {work.name} failed:\n{done.stderr}")
    out = package.parent / "kiln-out" / "linux-amd64-cpu" / work.name
    return {name: (out / name, out / f"{name}.cpu" / "weights.safetensors") for name in work.rules}


def start_peer(model: Path, name: str) -> serve_harness.Server:
    port = serve_harness.free_port()
    peer = Path(__file__).with_name("serve_peer.py")
    process = subprocess.Popen([sys.executable, str(peer), str(model), name, str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    server = serve_harness.Server(process, port)
    import requests
    for _ in range(600):
        try:
            if requests.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200:
                return server
        except requests.ConnectionError:
            time.sleep(0.1)
    raise SystemExit("bench: the onnxruntime peer did not start")


@dataclass
class Request:
    body: bytes
    headers: dict[str, str]


def request_for(work: Workload) -> Request:
    """The v2 infer request of `work`'s sample: JSON numbers, or a JSON header then the raw tensor."""
    tensor = {"name": "input", "shape": list(work.sample.shape), "datatype": "FP32"}
    if not work.binary:
        body = json.dumps({"inputs": [{**tensor, "data": work.sample.ravel().tolist()}]}).encode()
        return Request(body, {"Content-Type": "application/json"})
    raw = work.sample.astype("<f4").tobytes()
    header = json.dumps({"inputs": [{**tensor, "parameters": {"binary_data_size": len(raw)}}],
                         "parameters": {"binary_data_output": True}}).encode()
    return Request(header + raw, {"Content-Type": "application/octet-stream",
                                  "Inference-Header-Content-Length": str(len(header))})


def first_output(reply) -> np.ndarray:
    """The first output of a v2 reply, JSON or binary."""
    header_length = reply.headers.get("Inference-Header-Content-Length")
    split = int(header_length) if header_length is not None else len(reply.content)
    [output, *_] = json.loads(reply.content[:split])["outputs"]
    if "data" in output:
        return np.array(output["data"], np.float32)
    return np.frombuffer(reply.content, "<f4", output["parameters"]["binary_data_size"] // 4, split)


def check(server: serve_harness.Server, path: str, request: Request, expected: np.ndarray, who: str) -> None:
    import requests
    reply = requests.post(server.url + path, data=request.body, headers=request.headers, timeout=60)
    reply.raise_for_status()
    error = float(np.max(np.abs(first_output(reply) - expected.ravel())))
    if error > 1e-3 * float(np.max(np.abs(expected))):
        print(f"WARNING: {who} outputs differ from onnxruntime's by {error:.3g}", file=sys.stderr)


def wrk_script(request: Request, directory: Path) -> Path:
    """A wrk script posting `request`, whose body (binary or JSON) it reads from a file next to it."""
    body = directory / "infer.body"
    body.write_bytes(request.body)
    script = directory / "infer.lua"
    script.write_text('wrk.method = "POST"\n'
                      + "".join(f'wrk.headers["{key}"] = "{value}"\n' for key, value in request.headers.items())
                      + f'local file = assert(io.open("{body}", "rb"))\nwrk.body = file:read("*a")\nfile:close()\n')
    return script


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk_command(url: str, script: Path, clients: int, seconds: float) -> list[str]:
    threads = max(1, min(clients, 2))
    return ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--latency",
            "--timeout", f"{max(seconds, 10):g}s", "-s", str(script), url]


def run_wrk(url: str, script: Path, clients: int, seconds: float) -> dict:
    done = subprocess.run(wrk_command(url, script, clients, seconds), capture_output=True, text=True, check=True)
    return wrk_figures(done.stdout)


def wrk_figures(text: str) -> dict:
    percentile = lambda p: _seconds(re.search(rf"^\s+{p}%\s+(\S+)", text, re.M).group(1))  # noqa: E731
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", text))
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    errors += sum(int(n) for n in socket.groups()) if socket else 0
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)), "p50": percentile(50),
            "p99": percentile(99), "errors": errors}


def memory(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    status = Path(f"/proc/{pid}/status").read_text()
    kib = lambda key: int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M).group(1))  # noqa: E731
    return kib("VmRSS") / 1024, kib("VmHWM") / 1024


def cpu_seconds(pid: int) -> float:
    utime, stime = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[11:13]
    return (int(utime) + int(stime)) / os.sysconf("SC_CLK_TCK")


def settle(pid: int, limit: float = 120) -> None:
    """Waits until the server has answered the requests wrk left behind when it stopped (a server still
    running a backlog of ResNet-18 requests would take the next server's cores): under 10% of a core."""
    deadline, last = time.monotonic() + limit, cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        used = cpu_seconds(pid)
        if used - last < 0.05:
            return
        last = used


def measure(url: str, pid: int, script: Path, count: int, seconds: float) -> dict:
    run_wrk(url, script, count, 2)  # warm-up
    settle(pid)
    row = run_wrk(url, script, count, seconds)
    row["rss"], row["hwm"] = memory(pid)
    row["load"] = os.getloadavg()[0]
    settle(pid)
    return row


def alternate(servers: dict, path_of, script: Path, clients: list[int], seconds: float) -> dict[str, list]:
    """Each client count on every server in turn, so that a change in the host's load hits all of them."""
    results = {who: [] for who in servers}
    for count in clients:
        for who, server in servers.items():
            results[who].append(measure(server.url + path_of(who), server.process.pid, script, count, seconds))
            print(f"  {who}, {count} clients: {results[who][-1]['rps']:.0f} req/s", file=sys.stderr)
    return results


def soak(url: str, pid: int, script: Path, clients: int, seconds: float, every: float) -> tuple[dict, list]:
    """wrk for `seconds`, sampling (elapsed s, VmRSS MiB) every `every` seconds while it runs."""
    started = time.monotonic()
    wrk = subprocess.Popen(wrk_command(url, script, clients, seconds), stdout=subprocess.PIPE, text=True)
    samples = []
    while wrk.poll() is None:
        samples.append((time.monotonic() - started, memory(pid)[0]))
        time.sleep(every)
    out, _ = wrk.communicate()
    if wrk.returncode != 0:
        raise SystemExit(f"bench: wrk failed with exit code {wrk.returncode}")
    return wrk_figures(out), samples


def soak_report(name: str, row: dict, samples: list, clients: int, seconds: float, hwm: float) -> str:
    rss = [mib for _, mib in samples]
    later = rss[len(rss) // 10:]  # after the first tenth: the pools and arenas have grown by then
    lines = [f"soak: kiln {name}, {clients} clients for {seconds:g} s: {row['rps']:.0f} req/s, "
             f"p50 / p99 {row['p50'] * 1e3:.2f} / {row['p99'] * 1e3:.2f} ms, errors {row['errors']}",
             f"VmRSS MiB over {len(rss)} samples: first {rss[0]:.1f}, min {min(rss):.1f}, max {max(rss):.1f}, "
             f"last {rss[-1]:.1f}; after the first tenth min {min(later):.1f} max {max(later):.1f}; "
             f"VmHWM {hwm:.1f}",
             "samples (s, MiB): " + " ".join(f"{t:.0f}:{mib:.2f}" for t, mib in samples)]
    return "\n".join(lines)


def run_soak(args: argparse.Namespace, work: Workload, scratch: Path, clients: list[int]) -> int:
    builds = build_kiln(scratch, work)
    request = request_for(work)
    script = wrk_script(request, scratch)
    server = serve_harness.start(builds[work.name][0], "--threads", args.threads, weights=builds[work.name][1])
    try:
        check(server, PATH.format(work.name), request, expected_output(work), work.name)
        row, samples = soak(server.url + PATH.format(work.name), server.process.pid, script, clients[-1],
                            args.soak, args.sample)
        hwm = memory(server.process.pid)[1]
    finally:
        code, _ = server.stop()
    print(soak_report(work.name, row, samples, clients[-1], args.soak, hwm))
    return 0 if row["errors"] == 0 and code == 0 else 1


def table(clients: list[int], kiln: list[dict], peer: list[dict], who: str) -> str:
    lines = [f"| clients | {who} req/s | peer req/s | kiln/peer | kiln p50 / p99 ms | peer p50 / p99 ms "
             "| errors kiln / peer | kiln RSS (peak) MiB | peer RSS (peak) MiB | RSS peer/kiln | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for count, k, p in zip(clients, kiln, peer):
        ratio = f"{k['rps'] / p['rps']:.2f}x" if p["rps"] else "-"
        lines.append(f"| {count} | {k['rps']:.0f} | {p['rps']:.0f} | {ratio} "
                     f"| {k['p50'] * 1e3:.2f} / {k['p99'] * 1e3:.2f} | {p['p50'] * 1e3:.2f} / {p['p99'] * 1e3:.2f} "
                     f"| {k['errors']} / {p['errors']} | {k['rss']:.1f} ({k['hwm']:.1f}) "
                     f"| {p['rss']:.1f} ({p['hwm']:.1f}) | {p['hwm'] / k['hwm']:.1f}x "
                     f"| {k['load']:.1f} / {p['load']:.1f} |")
    return "\n".join(lines)


def expected_output(work: Workload) -> np.ndarray:
    import onnxruntime as ort
    session = ort.InferenceSession(str(work.peer_onnx), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": work.sample})[0]


def compare(args: argparse.Namespace, work: Workload, scratch: Path, clients: list[int]) -> str:
    """kiln at batch 1, kiln batched and the peer on `work`, taking turns: the two tables."""
    batched, max_batch = batched_name(work.name), str(max(args.buckets))
    builds = build_kiln(scratch, work)
    request, expected = request_for(work), expected_output(work)
    script = wrk_script(request, scratch)
    flags = {work.name: [], batched: ["--max-batch", max_batch, "--batch-timeout-us", "200"]}
    path_of = lambda who: PATH.format(work.name if who == "peer" else who)  # noqa: E731
    servers = {}
    try:
        for who in (work.name, batched, "peer"):
            servers[who] = (start_peer(work.peer_onnx, work.name) if who == "peer" else serve_harness.start(
                builds[who][0], "--threads", args.threads, *flags[who], weights=builds[who][1]))
            check(servers[who], path_of(who), request, expected, who)
        results = alternate(servers, path_of, script, clients, args.seconds)
    finally:
        for server in servers.values():
            server.stop()
    encoding = "binary tensor data" if work.binary else "JSON"
    return "\n".join([f"## {work.name}, requests as {encoding} ({len(request.body)} bytes)\n",
                      table(clients, results[work.name], results["peer"], "kiln"),
                      f"\nkiln with dynamic batching (batch_sizes = {args.buckets}, --max-batch {max_batch}, "
                      "--batch-timeout-us 200):\n",
                      table(clients, results[batched], results["peer"], "kiln batched")])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="mnist,resnet18", help="comma list of: " + ", ".join(WORKLOADS))
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", default="auto", help="kiln's --threads")
    parser.add_argument("--buckets", default="1,2,4,8", help="batch_sizes of the dynamically batched kiln server")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="only a soak of the kiln server this long")
    parser.add_argument("--sample", type=float, default=5, help="seconds between RSS samples in a soak")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: needs Debian's wrk (apt-get install wrk)")
    names = args.model.split(",")
    unknown = sorted(set(names) - set(WORKLOADS))
    if unknown:
        raise SystemExit(f"bench: unknown --model {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    clients = [int(c) for c in args.clients.split(",")]
    args.buckets = sorted(int(b) for b in args.buckets.split(","))
    import onnxruntime as ort
    with tempfile.TemporaryDirectory(prefix="kiln-bench-serve-") as scratch:
        if args.soak:
            return run_soak(args, WORKLOADS[names[0]](Path(scratch), args.buckets), Path(scratch), clients)
        sections = []
        for name in names:
            directory = Path(scratch) / name
            directory.mkdir()
            sections.append(compare(args, WORKLOADS[name](directory, args.buckets), directory, clients))
    print(f"kiln serve against onnxruntime {ort.__version__} on FastAPI/uvicorn (1 worker), HTTP/1.1 keep-alive "
          f"on loopback, {os.cpu_count()} cores, {args.seconds:g} s per cell\n")
    print("\n\n".join(sections))
    return 0


if __name__ == "__main__":
    sys.exit(main())
