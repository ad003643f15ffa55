"""The launcher around hand-written model objects: inputs, outputs, formats, platform and CPU
variant choice, weights lookup and the thread pool."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
import launcher_testkit as kit  # noqa: E402

pytestmark = pytest.mark.e2e

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
CHOICE_LINE = re.compile(r"^kiln: platform cpu \((.+)\), cpu variant (\S+) \((.+)\)$")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> kit.DenseModel:
    return kit.build_dense_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def probe(tmp_path_factory) -> Path:
    return kit.build_probe_model(tmp_path_factory.mktemp("probe"))


def ok(done) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout


def image(seed: int = 1, shape=(1, 1, 28, 28)) -> np.ndarray:
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def cpu_flags() -> set[str]:
    text = Path("/proc/cpuinfo").read_text()
    return set(re.search(r"^flags\s*:(.*)$", text, re.M).group(1).split())


# --- inputs and outputs ---------------------------------------------------------------------

@pytest.mark.parametrize("form", ["bare", "named", "equals"])
def test_npy_round_trip_matches_numpy(tiny, tmp_path, form):
    x = image()
    path = kit.save_npy(tmp_path / "x.npy", x)
    out = tmp_path / "y.npy"
    args = {"bare": ["--input", str(path)], "named": ["--input", f"x={path}"],
            "equals": [f"--input=x={path}"]}[form]
    ok(kit.run(tiny.exe, *args, "--output", str(out)))
    y = np.load(out)
    assert y.dtype == np.float32 and y.shape == (1, 10)
    np.testing.assert_allclose(y, tiny.reference(x), rtol=1e-4, atol=1e-4)


def test_output_npy_header_is_64_byte_aligned(tiny, tmp_path):
    out = tmp_path / "y.npy"
    ok(kit.run(tiny.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", image())), "--output", f"logits={out}"))
    assert (out.stat().st_size - 40) % 64 == 0


def test_input_without_leading_ones_is_accepted(tiny, tmp_path):
    x = image()
    out = tmp_path / "y.npy"
    ok(kit.run(tiny.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", x[0, 0])), "--output", str(out)))
    np.testing.assert_allclose(np.load(out), tiny.reference(x), rtol=1e-4, atol=1e-4)


def test_prints_top5_with_softmax(tiny, tmp_path):
    x = image()
    stdout = ok(kit.run(tiny.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", x))))
    lines = stdout.splitlines()
    assert lines[0] == "top-5 classes of 'logits' (softmax):"
    probs = softmax(tiny.reference(x)[0])
    expected = np.argsort(-probs)[:5]
    printed = [(int(c), float(p)) for c, p in (line.split() for line in lines[1:])]
    assert [c for c, _ in printed] == list(expected)
    np.testing.assert_allclose([p for _, p in printed], probs[expected], atol=1e-4)


def test_top5_keeps_a_probability_distribution(tmp_path):
    dist = np.array([0.05, 0.5, 0.05, 0.2, 0.1, 0.1], dtype=np.float32)
    model = kit.build_dense_model(tmp_path, name="dist", input_shape=(1, 4),
                                  weight=np.zeros((6, 4), np.float32), bias=dist)
    stdout = ok(kit.run(model.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", image(shape=(1, 4))))))
    assert stdout.splitlines() == ["top-5 classes of 'logits':", "      1  0.5000", "      3  0.2000",
                                   "      4  0.1000", "      5  0.1000", "      0  0.0500"]


def test_non_classifier_output_prints_a_summary(probe, tmp_path):
    inputs = {name: kit.save_npy(tmp_path / f"{name}.npy", np.array([value], np.float32))
              for name, value in (("n", 10), ("repeat", 3), ("nested", 0))}
    stdout = ok(kit.run(probe, *[a for n, p in inputs.items() for a in ("--input", f"{n}={p}")]))
    assert stdout.splitlines() == ["visits: f32 [64, 64] min 0 max 3 mean 0.00732422",
                                   "  first values: 3 3 3 3 3 3 3 3 ..."]


def test_pgm_input(tiny, tmp_path):
    pixels = np.random.default_rng(3).integers(0, 256, (28, 28), dtype=np.uint8)
    pgm = kit.write_pgm(tmp_path / "digit.pgm", pixels)
    expected = tiny.reference(pixels.astype(np.float32) / 255)
    for flag in ("--pgm", "--input"):
        out = tmp_path / f"y{flag}.npy"
        ok(kit.run(tiny.exe, flag, str(pgm), "--output", str(out)))
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-4, atol=1e-4)


def test_pgm_scales_by_its_maximum(tiny, tmp_path):
    pixels = np.random.default_rng(4).integers(0, 16, (28, 28), dtype=np.uint8)
    out = tmp_path / "y.npy"
    ok(kit.run(tiny.exe, "--pgm", str(kit.write_pgm(tmp_path / "d.pgm", pixels, 15, comment=False)),
               "--output", str(out)))
    np.testing.assert_allclose(np.load(out), tiny.reference(pixels / 15), rtol=1e-4, atol=1e-4)


# --- IDX data sets ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def idx_set(tiny, tmp_path_factory):
    """20 random images; the labels agree with the model on the first 15 only."""
    d = tmp_path_factory.mktemp("idx")
    images = np.random.default_rng(5).integers(0, 256, (20, 28, 28), dtype=np.uint8)
    predicted = np.array([tiny.reference(im / np.float32(255)).argmax() for im in images])
    labels = np.where(np.arange(20) < 15, predicted, (predicted + 1) % 10)
    files = {}
    for gz in (False, True):
        suffix = ".gz" if gz else ""
        files[gz] = (kit.write_idx_images(d / f"images{suffix}", images, gz),
                     kit.write_idx_labels(d / f"labels{suffix}", labels, gz))
    return files, predicted


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
def test_idx_accuracy(tiny, idx_set, gz):
    images, labels = idx_set[0][gz]
    assert ok(kit.run(tiny.exe, "--idx", str(images), "--labels", str(labels))) == "accuracy: 0.7500 (15/20)\n"


def test_idx_offset_and_limit(tiny, idx_set):
    images, labels = idx_set[0][True]
    stdout = ok(kit.run(tiny.exe, "--idx", str(images), "--labels", str(labels), "--offset", "12", "--limit", "5"))
    assert stdout == "accuracy: 0.6000 (3/5)\n"


def test_idx_without_labels_prints_predictions(tiny, idx_set):
    files, predicted = idx_set
    stdout = ok(kit.run(tiny.exe, "--idx", str(files[False][0]), "--limit", "4"))
    assert stdout.splitlines() == [f"{i} {predicted[i]}" for i in range(4)]


def test_idx_feeds_a_flat_input(tmp_path, idx_set):
    flat = kit.build_dense_model(tmp_path, name="flat", input_shape=(1, 784))
    images, _ = idx_set[0][True]
    assert ok(kit.run(flat.exe, "--idx", str(images), "--limit", "3")).count("\n") == 3


@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="no MNIST test set here")
def test_real_mnist_with_a_least_squares_classifier(tmp_path):
    """Fits a linear classifier on the first 8000 test images in numpy, then scores the last 2000
    through the launcher straight from the .gz files; the count must match numpy's."""
    import gzip
    images = np.frombuffer(gzip.decompress((MNIST / "t10k-images-idx3-ubyte.gz").read_bytes())[16:], np.uint8)
    labels = np.frombuffer(gzip.decompress((MNIST / "t10k-labels-idx1-ubyte.gz").read_bytes())[8:], np.uint8)
    x = images.reshape(-1, 784).astype(np.float32) / 255
    targets = np.eye(10, dtype=np.float32)[labels]
    a = np.hstack([x[:8000], np.ones((8000, 1), np.float32)])
    solution = np.linalg.solve(a.T @ a + np.eye(785), a.T @ targets[:8000])
    weight, bias = solution[:784].T.astype(np.float32).copy(), solution[784].astype(np.float32)
    model = kit.build_dense_model(tmp_path, name="mnist", weight=weight, bias=bias)
    expected = int(((x[8000:] @ weight.T + bias).argmax(1) == labels[8000:]).sum())
    stdout = ok(kit.run(model.exe, "--idx", str(MNIST / "t10k-images-idx3-ubyte.gz"),
                        "--labels", str(MNIST / "t10k-labels-idx1-ubyte.gz"), "--offset", "8000"))
    correct, total = map(int, re.fullmatch(r"accuracy: [0-9.]+ \((\d+)/(\d+)\)\n", stdout).groups())
    assert total == 2000 and abs(correct - expected) <= 2 and correct > 1700


# --- bench, info, platform and variant choice ---------------------------------------------------

def test_bench_prints_percentiles(tiny, tmp_path):
    stdout = ok(kit.run(tiny.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", image())), "--bench", "25",
                        "--threads", "2"))
    match = re.fullmatch(r"bench: 25 runs, 2 threads: min ([0-9.]+) ms, median ([0-9.]+) ms, p90 ([0-9.]+) ms, "
                         r"p99 ([0-9.]+) ms, max ([0-9.]+) ms\n", stdout)
    assert match and [float(v) for v in match.groups()] == sorted(float(v) for v in match.groups())


def test_bench_runs_on_zeros_without_inputs(tiny):
    assert ok(kit.run(tiny.exe, "--bench", "3")).startswith("bench: 3 runs")


def test_info_describes_platform_variant_model_and_weights(tiny):
    done = kit.run(tiny.exe, "--info", "--threads", "3")
    fields = dict(line.split(None, 1) for line in ok(done).splitlines())
    assert fields["platform:"] == "cpu (no accelerator platforms in this bundle)"
    assert fields["variant:"].split()[0] in {v for v, _ in kit.X86_VARIANTS}
    assert "sse4.2" in fields["cpu:"]
    assert fields["model:"] == "tiny"
    assert fields["input:"] == "x: f32 [1, 1, 28, 28]"
    assert fields["output:"] == "logits: f32 [1, 10]"
    assert fields["weights:"] == f"{tiny.exe.parent}/../weights/tiny.safetensors (2 tensors, 31400 bytes, sha256 verified)"
    assert fields["threads:"] == "3"


def test_threads_auto_is_the_available_cores(tiny):
    fields = dict(line.split(None, 1) for line in ok(kit.run(tiny.exe, "--info", "--threads", "auto")).splitlines())
    assert fields["threads:"] == str(len(os.sched_getaffinity(0)))


def test_one_stderr_line_names_platform_and_variant(tiny, tmp_path):
    done = kit.run(tiny.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", image())))
    ok(done)
    (line,) = done.stderr.splitlines()
    reason, variant, features = CHOICE_LINE.match(line).groups()
    assert reason == "no accelerator platforms in this bundle"
    best = "x86-64-v4" if "avx512f" in cpu_flags() else "x86-64-v3" if "avx2" in cpu_flags() else variant
    assert variant == best


@pytest.mark.parametrize("how, env, args, reason", [
    ("flag", {}, ["--platform", "cpu"], "requested by --platform"),
    ("env", {"KILN_PLATFORM": "cpu"}, [], "requested by KILN_PLATFORM"),
    ("auto", {"KILN_PLATFORM": "auto"}, [], "no accelerator platforms in this bundle"),
])
def test_platform_choice(tiny, how, env, args, reason):
    done = kit.run(tiny.exe, "--info", *args, env=env)
    assert ok(done).startswith(f"platform:  cpu ({reason})")


@pytest.mark.parametrize("variant, needs", [(v, f) for v, f in kit.X86_VARIANTS])
def test_cpu_level_forces_each_variant(tiny, tmp_path, variant, needs):
    linux_names = {"AVX512": "avx512f", "AVX2": "avx2", "FMA": "fma", "SSE42": "sse4_2"}
    if not {linux_names[f] for f in needs} <= cpu_flags():
        pytest.skip(f"this CPU cannot run {variant}")
    x = image()
    out = tmp_path / "y.npy"
    done = kit.run(tiny.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", x)), "--output", str(out),
                   env={"KILN_CPU_LEVEL": variant})
    ok(done)
    assert CHOICE_LINE.match(done.stderr.strip()).group(2) == variant
    np.testing.assert_allclose(np.load(out), tiny.reference(x), rtol=1e-4, atol=1e-4)


# --- weights lookup -----------------------------------------------------------------------------

def test_weights_beside_the_executable(tiny, tmp_path):
    shutil.copy(tiny.exe, tmp_path / "tiny")
    shutil.copy(tiny.weights_file, tmp_path / "tiny.safetensors")
    assert f"{tmp_path}/tiny.safetensors (2 tensors" in ok(kit.run(tmp_path / "tiny", "--info"))


@pytest.mark.parametrize("how", ["flag", "env"])
def test_weights_override(tiny, tmp_path, how):
    moved = shutil.copy(tiny.weights_file, tmp_path / "elsewhere.safetensors")
    shutil.copy(tiny.exe, tmp_path / "tiny")
    args, env = (["--weights", str(moved)], {}) if how == "flag" else ([], {"KILN_WEIGHTS": str(moved)})
    assert f"{moved} (2 tensors" in ok(kit.run(tmp_path / "tiny", "--info", *args, env=env))


def write_parts(source: Path, target: Path, size: int) -> int:
    """The file as target.part-000, -001, ... of `size` bytes, the way an OCI image's weight layers hold it."""
    data = source.read_bytes()
    for i, offset in enumerate(range(0, len(data), size)):
        Path(f"{target}.part-{i:03d}").write_bytes(data[offset:offset + size])
    return -(-len(data) // size)


def test_weights_cut_into_parts_are_mapped_back_to_back(tiny, tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "weights").mkdir()
    exe = shutil.copy(tiny.exe, tmp_path / "bin" / "tiny")
    assert write_parts(tiny.weights_file, tmp_path / "weights" / "tiny.safetensors", 8192) >= 3
    x = image()
    out = tmp_path / "y.npy"
    ok(kit.run(exe, "--input", str(kit.save_npy(tmp_path / "x.npy", x)), "--output", str(out)))
    np.testing.assert_allclose(np.load(out), tiny.reference(x), rtol=1e-4, atol=1e-4)


def test_weight_parts_must_be_whole_pages(tiny, tmp_path):
    target = tmp_path / "w.safetensors"
    write_parts(tiny.weights_file, target, 1000)
    done = kit.run(tiny.exe, "--info", "--weights", str(target))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"{target}.part-001: the part before it is not a whole number of pages" in done.stderr


def test_aligned_data_section_is_used_in_place(tmp_path):
    model = kit.build_dense_model(tmp_path, name="aligned", align_data=True)
    x = image()
    out = tmp_path / "y.npy"
    ok(kit.run(model.exe, "--input", str(kit.save_npy(tmp_path / "x.npy", x)), "--output", str(out)))
    np.testing.assert_allclose(np.load(out), model.reference(x), rtol=1e-4, atol=1e-4)


# --- the thread pool ----------------------------------------------------------------------------

def run_probe(probe: Path, tmp_path: Path, n: int, repeat: int, nested: int, threads: int) -> np.ndarray:
    out = tmp_path / "visits.npy"
    args: list[str] = []
    for name, value in (("n", n), ("repeat", repeat), ("nested", nested)):
        args += ["--input", f"{name}={kit.save_npy(tmp_path / f'{name}.npy', np.array([value], np.float32))}"]
    ok(kit.run(probe, *args, "--threads", str(threads), "--output", str(out)))
    return np.load(out).reshape(-1)


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("nested", [0, 1], ids=["flat", "nested"])
def test_parallel_for_covers_each_index_once(probe, tmp_path, threads, nested):
    for n in (0, 1, 2, 3, 7, 64, 1000, 4096):
        visits = run_probe(probe, tmp_path, n, repeat=200, nested=nested, threads=threads)
        assert (visits[:n] == 200).all() and (visits[n:] == 0).all(), (n, threads)


@pytest.mark.parametrize("threads, n", [(2, 5), (3, 7)])
def test_parallel_for_many_calls(probe, tmp_path, threads, n):
    """Enough back-to-back calls that a race between claiming chunks (a thread's own share, then
    the others' last ones), finishing a job and publishing the next would show."""
    visits = run_probe(probe, tmp_path, n, repeat=100000, nested=0, threads=threads)
    assert (visits[:n] == 100000).all() and (visits[n:] == 0).all()
