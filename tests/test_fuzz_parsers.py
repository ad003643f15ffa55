"""Seeded mutation fuzzing, bounded in time: the launcher's readers (.npy, PGM, IDX, gzip/inflate,
safetensors weights) built with ASan and UBSan, and kiln's Python ONNX, safetensors and BUILD loading,
fed mutated files. Every input must end in a result or one line and exit code 1/2: no crash, no
sanitizer report, no hang, no traceback. KILN_FUZZ_SECONDS sets the budget per parser (default 3)."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from safetensors.numpy import save

from kiln.build_rules.errors import UserError
from kiln.build_rules.loading import Loader
from kiln.build_rules.workspace import Workspace
from kiln.compiler import driver
from kiln.compiler.errors import CompileError
from kiln.compiler import launcher
from onnx_models import mnist_cnn
from tool_skips import require_tool

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
import launcher_testkit as kit  # noqa: E402

pytestmark = pytest.mark.e2e
BUDGET = float(os.environ.get("KILN_FUZZ_SECONDS", "3"))
SANITIZER_REPORT = ("AddressSanitizer", "runtime error:", "LeakSanitizer", "UndefinedBehaviorSanitizer")


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One of: flip bytes, truncate, insert random bytes, repeat a chunk, write an extreme integer."""
    if not data:
        return rng.integers(0, 256, int(rng.integers(1, 16)), dtype=np.uint8).tobytes()
    buf = bytearray(data)
    kind = rng.integers(5)
    at = int(rng.integers(len(buf)))
    if kind == 0:
        for _ in range(int(rng.integers(1, 9))):
            buf[int(rng.integers(len(buf)))] ^= int(rng.integers(1, 256))
    elif kind == 1:
        del buf[at:]
    elif kind == 2:
        buf[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
    elif kind == 3:
        end = min(len(buf), at + int(rng.integers(1, 256)))
        buf[at:at] = buf[at:end] * int(rng.integers(1, 8))
    else:
        extreme = [b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00"]
        buf[at:at + 4] = extreme[int(rng.integers(4))]
    return bytes(buf)


def mutants(seed: bytes, rng: np.random.Generator):
    """Mutants of `seed` (stacked 1-3 deep) until the time budget is spent."""
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline:
        data = seed
        for _ in range(int(rng.integers(1, 4))):
            data = mutate(data, rng)
        yield data


@pytest.fixture(scope="module")
def sanitized(tmp_path_factory) -> kit.DenseModel:
    require_tool("gcc's ASan runtime (zig ships only UBSan's)", launcher.asan_runtime() is not None)
    return kit.build_dense_model(tmp_path_factory.mktemp("fuzz"), sanitize=True)


def pjrt_manifest(tmp: Path) -> bytes:
    """A real cpu-xla manifest.json (the launcher's JSON reader parses it for PJRT platforms)."""
    onnx.save(mnist_cnn(), tmp / "cnn.onnx")
    return json.dumps(driver.compile(tmp / "cnn.onnx", "cpu-xla").manifest).encode()


def seeds(model: kit.DenseModel, tmp: Path) -> dict[str, tuple[list[str], bytes]]:
    """Per parser: the launcher arguments ({} is the mutated file) and a valid seed."""
    image = np.random.default_rng(1).integers(0, 256, (2, 28, 28), dtype=np.uint8)
    npy = kit.save_npy(tmp / "seed.npy", image[:1, None].astype(np.float32))
    return {
        "json": (["--platform", "cpu-xla", "--input", str(npy)], pjrt_manifest(tmp)),
        "npy": (["--input", "{}"], kit.save_npy(tmp / "x.npy", image[:1, None].astype(np.float32)).read_bytes()),
        "pgm": (["--pgm", "{}"], kit.write_pgm(tmp / "x.pgm", image[0]).read_bytes()),
        "idx": (["--idx", "{}"], kit.write_idx_images(tmp / "x.idx", image).read_bytes()),
        "gzip": (["--idx", "{}"], gzip.compress(kit.write_idx_images(tmp / "y.idx", image).read_bytes(), mtime=0)),
        "safetensors": (["--weights", "{}", "--bench", "1"], model.weights_file.read_bytes()),
    }


@pytest.mark.parametrize("parser", ["npy", "pgm", "idx", "gzip", "safetensors", "json"])
def test_launcher_parsers_survive_mutations(sanitized, tmp_path, parser):
    args, seed = seeds(sanitized, tmp_path)[parser]
    manifest = sanitized.exe.parent.parent / "share" / "cpu-xla" / "manifest.json"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(map(ord, parser)))
    env = {"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0", "UBSAN_OPTIONS": "halt_on_error=1"}
    runs = 0
    for data in mutants(seed, rng):
        path = manifest if parser == "json" else tmp_path / f"mutant.{parser}"
        path.write_bytes(data)
        try:
            done = kit.run(sanitized.exe, *[a.replace("{}", str(path)) for a in args], env=env, timeout=20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{parser}: the launcher hung on {data[:64]!r}...")
        runs += 1
        crashed = done.returncode not in (0, 1, 2) or any(s in done.stderr for s in SANITIZER_REPORT)
        assert not crashed, f"{parser} mutant {runs} ({len(data)} bytes): exit {done.returncode}\n{done.stderr[-2000:]}"
        if done.returncode:
            assert len(done.stderr.splitlines()) == 1 and done.stderr.startswith("kiln: "), done.stderr
    print(f"fuzz {parser}: {runs} executions, 0 findings")
    assert runs > 0
    manifest.unlink(missing_ok=True)


@pytest.mark.parametrize("mutated", ["model.onnx", "weights.safetensors"])
def test_onnx_and_safetensors_loading_survive_mutations(tmp_path, mutated):
    model = mnist_cnn()
    weights = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for init in model.graph.initializer:  # declarations only: the data lives in the safetensors file
        init.ClearField("raw_data")
        init.ClearField("float_data")
        init.ClearField("int64_data")
    files = {"model.onnx": model.SerializeToString(), "weights.safetensors": save(weights)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    rng = np.random.default_rng(7)
    runs = 0
    for data in mutants(files[mutated], rng):
        (tmp_path / mutated).write_bytes(data)
        try:
            driver.compile(tmp_path / "model.onnx", "cpu", weights=tmp_path / "weights.safetensors")
        except CompileError as error:
            assert "\n" not in str(error), str(error)
        runs += 1
    print(f"fuzz {mutated}: {runs} executions, 0 findings")


def test_build_file_loading_survives_mutations(tmp_path):
    build = (b'load("//tools:defs.kiln", "x")\nmodel(name = "m", graph = "m.onnx", input_shapes = {"x": [1, 2]})\n'
             b'genrule(name = "g", srcs = glob(["*.txt"]), outs = ["o/a.txt"], cmd = "cp $< $@", timeout = 5)\n')
    (tmp_path / "MODULE.kiln").write_text("")
    (tmp_path / "tools").mkdir()
    (tmp_path / "tools" / "defs.kiln").write_text("x = 1\n")
    (tmp_path / "p").mkdir()
    rng = np.random.default_rng(11)
    runs = 0
    for data in mutants(build, rng):
        (tmp_path / "p" / "BUILD.kiln").write_bytes(data)
        try:
            Loader(Workspace(tmp_path)).package("p")
        except UserError as error:
            assert str(error).strip(), "an empty message"
        runs += 1
    print(f"fuzz BUILD: {runs} executions, 0 findings")
