"""Throughput, latency and memory of `mnist serve` under load, against onnxruntime served the way
users serve it: behind a FastAPI app on uvicorn speaking the same Open Inference Protocol (v2 JSON).

    python3 bench/serve.py [--clients 1,8,64] [--seconds 10] [--threads auto] [--max-batch 8]
    python3 bench/serve.py --soak 600 [--clients 64]

Needs Debian's `wrk` (apt-get install wrk) and the peer's packages (pip install -r bench/requirements.txt).
kiln builds examples/mnist in a scratch workspace; both servers listen on loopback and answer the same
v2 JSON request (one MNIST digit); before timing, each one's logits are checked against onnxruntime's
in-process result. For each client count, wrk keeps that many connections busy for --seconds per
server (keep-alive, one request in flight per connection) after a 2 s warm-up run; the three servers run
side by side and take turns at each client count, so a change in a shared host's load reaches all of
them (the 1-minute load average at the end of each cell is printed). kiln is measured
twice: the batch-1 build answering each request alone, and a build compiled with batch = --max-batch
serving with dynamic batching (--max-batch, --batch-timeout-us 200). Printed: requests/s,
p50 and p99 latency (wrk's --latency), errors (non-2xx and socket errors), each server's resident memory
after the run (VmRSS, and its peak VmHWM), and kiln / peer ratios. The peer runs one uvicorn worker
with onnxruntime's default threads; kiln runs with --threads (default: every core this process may use).
Load generator and servers share the machine: on a small one wrk's own CPU caps both.

--soak SECONDS runs only the batch-1 kiln server under wrk at the last --clients count for that long,
sampling its VmRSS every --sample seconds, and prints the samples, requests/s, p99 and errors.
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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
sys.path.insert(0, str(REPO / "tests"))
import serve_harness  # noqa: E402

SAMPLE = EXAMPLES / "mnist" / "samples" / "digit_7.npy"
PATH = "/v2/models/{}/infer"


def build_kiln(scratch: Path, batch: int) -> dict[str, tuple[Path, Path]]:
    """mnist, and mnist<batch> compiled with that batch: each name's launcher and weights."""
    workspace = scratch / "examples"
    shutil.copytree(EXAMPLES, workspace, ignore=shutil.ignore_patterns("kiln-out"))
    build = workspace / "mnist" / "BUILD.kiln"
    batched = f"mnist{batch}"
    build.write_text(build.read_text() + f'\nmodel(name = "{batched}", graph = "mnist.onnx", '
                                          f'weights = "mnist.safetensors", batch = {batch})\n')
    subprocess.run([sys.executable, "-m", "kiln.build_rules", "build", "//mnist:mnist", f"//mnist:{batched}"],
                   cwd=workspace, check=True, capture_output=True)
    out = workspace / "kiln-out" / "linux-amd64-cpu" / "mnist"
    return {name: (out / name, out / f"{name}.cpu" / "weights.safetensors") for name in ("mnist", batched)}


def start_peer(model: Path) -> serve_harness.Server:
    port = serve_harness.free_port()
    peer = Path(__file__).with_name("serve_peer.py")
    process = subprocess.Popen([sys.executable, str(peer), str(model), str(port)],
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


def request_body() -> str:
    sample = np.load(SAMPLE).astype(np.float32).reshape(1, 1, 28, 28)
    return json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 28, 28], "datatype": "FP32",
                                   "data": sample.ravel().tolist()}]})


def check(server: serve_harness.Server, path: str, body: str, expected: np.ndarray, who: str) -> None:
    import requests
    reply = requests.post(server.url + path, data=body, headers={"Content-Type": "application/json"}, timeout=30)
    reply.raise_for_status()
    logits = np.array(reply.json()["outputs"][0]["data"], np.float32)
    error = float(np.max(np.abs(logits - expected.ravel())))
    if error > 1e-3 * float(np.max(np.abs(expected))):
        print(f"WARNING: {who} logits differ from onnxruntime's by {error:.3g}", file=sys.stderr)


def wrk_script(body: str, directory: Path) -> Path:
    script = directory / "infer.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f"wrk.body = [[{body}]]\n")
    return script


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def wrk_command(url: str, script: Path, clients: int, seconds: float) -> list[str]:
    threads = max(1, min(clients, 2))
    return ["wrk", f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--latency", "--timeout", "10s",
            "-s", str(script), url]


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


def measure(url: str, pid: int, script: Path, count: int, seconds: float) -> dict:
    run_wrk(url, script, count, 2)  # warm-up
    row = run_wrk(url, script, count, seconds)
    row["rss"], row["hwm"] = memory(pid)
    row["load"] = os.getloadavg()[0]
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


def soak_report(row: dict, samples: list, clients: int, seconds: float, hwm: float) -> str:
    rss = [mib for _, mib in samples]
    later = rss[len(rss) // 10:]  # after the first tenth: the pools and arenas have grown by then
    lines = [f"soak: kiln mnist, {clients} clients for {seconds:g} s: {row['rps']:.0f} req/s, "
             f"p50 / p99 {row['p50'] * 1e3:.2f} / {row['p99'] * 1e3:.2f} ms, errors {row['errors']}",
             f"VmRSS MiB over {len(rss)} samples: first {rss[0]:.1f}, min {min(rss):.1f}, max {max(rss):.1f}, "
             f"last {rss[-1]:.1f}; after the first tenth min {min(later):.1f} max {max(later):.1f}; "
             f"VmHWM {hwm:.1f}",
             "samples (s, MiB): " + " ".join(f"{t:.0f}:{mib:.2f}" for t, mib in samples)]
    return "\n".join(lines)


def run_soak(args: argparse.Namespace, clients: list[int], body: str, expected: np.ndarray) -> int:
    with tempfile.TemporaryDirectory(prefix="kiln-bench-serve-") as scratch:
        builds = build_kiln(Path(scratch), args.max_batch)
        script = wrk_script(body, Path(scratch))
        server = serve_harness.start(builds["mnist"][0], "--threads", args.threads, weights=builds["mnist"][1])
        try:
            check(server, PATH.format("mnist"), body, expected, "mnist")
            row, samples = soak(server.url + PATH.format("mnist"), server.process.pid, script, clients[-1],
                                args.soak, args.sample)
            hwm = memory(server.process.pid)[1]
        finally:
            code, stderr = server.stop()
    print(soak_report(row, samples, clients[-1], args.soak, hwm))
    return 0 if row["errors"] == 0 and code == 0 else 1


def table(clients: list[int], kiln: list[dict], peer: list[dict], who: str) -> str:
    lines = [f"| clients | {who} req/s | peer req/s | kiln/peer | kiln p50 / p99 ms | peer p50 / p99 ms "
             "| errors kiln / peer | kiln RSS (peak) MiB | peer RSS (peak) MiB | RSS peer/kiln | load |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for count, k, p in zip(clients, kiln, peer):
        lines.append(f"| {count} | {k['rps']:.0f} | {p['rps']:.0f} | {k['rps'] / p['rps']:.2f}x "
                     f"| {k['p50'] * 1e3:.2f} / {k['p99'] * 1e3:.2f} | {p['p50'] * 1e3:.2f} / {p['p99'] * 1e3:.2f} "
                     f"| {k['errors']} / {p['errors']} | {k['rss']:.1f} ({k['hwm']:.1f}) "
                     f"| {p['rss']:.1f} ({p['hwm']:.1f}) | {p['hwm'] / k['hwm']:.1f}x "
                     f"| {k['load']:.1f} / {p['load']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default="1,8,64")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--threads", default="auto", help="kiln's --threads")
    parser.add_argument("--max-batch", type=int, default=8, help="batch of the dynamically batched kiln server")
    parser.add_argument("--soak", type=float, metavar="SECONDS", help="only a soak of the kiln server this long")
    parser.add_argument("--sample", type=float, default=5, help="seconds between RSS samples in a soak")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("bench: needs Debian's wrk (apt-get install wrk)")
    clients = [int(c) for c in args.clients.split(",")]
    import onnxruntime as ort
    sample = np.load(SAMPLE).astype(np.float32).reshape(1, 1, 28, 28)
    model = EXAMPLES / "mnist" / "mnist.onnx"
    expected = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"input": sample})[0]
    body = request_body()
    if args.soak:
        return run_soak(args, clients, body, expected)
    batched = f"mnist{args.max_batch}"
    path_of = lambda who: PATH.format("mnist" if who == "peer" else who)  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="kiln-bench-serve-") as scratch:
        builds = build_kiln(Path(scratch), args.max_batch)
        script = wrk_script(body, Path(scratch))
        flags = {"mnist": [], batched: ["--max-batch", str(args.max_batch), "--batch-timeout-us", "200"]}
        servers = {}
        try:
            for who in ("mnist", batched, "peer"):
                servers[who] = (start_peer(model) if who == "peer" else serve_harness.start(
                    builds[who][0], "--threads", args.threads, *flags[who], weights=builds[who][1]))
                check(servers[who], path_of(who), body, expected, who)
            results = alternate(servers, path_of, script, clients, args.seconds)
        finally:
            for server in servers.values():
                server.stop()
    print(f"mnist over HTTP/1.1 keep-alive on loopback, {os.cpu_count()} cores, {args.seconds:g} s per cell, "
          f"peer: onnxruntime {ort.__version__} on FastAPI/uvicorn (1 worker)\n")
    print(table(clients, results["mnist"], results["peer"], "kiln"))
    print(f"\nkiln with dynamic batching (compiled batch {args.max_batch}, --max-batch {args.max_batch}, "
          "--batch-timeout-us 200):\n")
    print(table(clients, results[batched], results["peer"], "kiln batched"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
