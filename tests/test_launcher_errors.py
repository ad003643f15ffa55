"""Every bad input gets one line on stderr naming the file and what is wrong, and a non-zero exit
(1 for bad files and weights, 2 for a bad command line). Run on a plain build and on one with
AddressSanitizer and UBSan, which must stay silent. (Failures exit straight from where they are
found, so the leak checker is on only for runs that succeed.)"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tool_skips import require_tool

from kiln.compiler import launcher

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "launcher"))
import launcher_testkit as kit  # noqa: E402

pytestmark = pytest.mark.e2e

USER, USAGE = 1, 2


@pytest.fixture(autouse=True)
def no_leak_check_on_failure(monkeypatch):
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=0")


@pytest.fixture(scope="module", params=["plain", "sanitized"])
def sanitize(request) -> bool:
    if request.param == "sanitized":
        require_tool("gcc's ASan runtime (zig ships only UBSan's)", launcher.asan_runtime() is not None)
    return request.param == "sanitized"


@pytest.fixture(scope="module")
def tiny(sanitize, tmp_path_factory) -> kit.DenseModel:
    return kit.build_dense_model(tmp_path_factory.mktemp("tiny"), sanitize=sanitize)


def fails(done, code: int, *needles: str, after_run: bool = False) -> str:
    """Asserts the one-line failure and returns the line. A failure after the model ran follows
    the platform line."""
    lines = done.stderr.splitlines()[1 if after_run else 0:]
    assert done.returncode == code, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kiln: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert done.stdout == ""
    return lines[0]


def good_input(tmp_path: Path) -> Path:
    return kit.save_npy(tmp_path / "x.npy", np.zeros((1, 1, 28, 28), np.float32))


def with_weights(tiny: kit.DenseModel, tmp_path: Path, data: bytes, *args: str):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(data)
    return kit.run(tiny.exe, "--weights", str(broken), "--input", str(good_input(tmp_path)), *args)


# --- weights --------------------------------------------------------------------------------------

def test_truncated_weights_name_the_tensor(tiny, tmp_path):
    data = tiny.weights_file.read_bytes()
    fails(with_weights(tiny, tmp_path, data[:-10]), USER, "broken.safetensors", "tensor 'fc.bias' is truncated")


def test_weights_truncated_inside_the_header(tiny, tmp_path):
    fails(with_weights(tiny, tmp_path, tiny.weights_file.read_bytes()[:50]), USER, "broken.safetensors",
          "header length")


def test_tiny_weights_file(tiny, tmp_path):
    fails(with_weights(tiny, tmp_path, b"\x01\x02"), USER, "broken.safetensors", "too short")


def test_tampered_byte_fails_sha256_naming_the_tensor(tiny, tmp_path):
    data = bytearray(tiny.weights_file.read_bytes())
    data[-200] ^= 0x01  # inside fc.weight, which ends 40 bytes before the file does
    fails(with_weights(tiny, tmp_path, bytes(data)), USER, "broken.safetensors", "tensor 'fc.weight'", "sha256")


def header_and_data(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def rewrite_header(header: dict, data: bytes) -> bytes:
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


@pytest.mark.parametrize("change, needles", [
    (lambda h: h.pop("fc.bias"), ["tensor 'fc.bias' is missing"]),
    (lambda h: h["fc.weight"].update(dtype="F16"), ["tensor 'fc.weight' has dtype F16, the model needs F32"]),
    (lambda h: h["fc.weight"].update(shape=[784, 10]), ["tensor 'fc.weight' has shape [784, 10]"]),
    (lambda h: h["fc.bias"].update(data_offsets=[0, 40]), ["tensor 'fc.bias' is at data bytes [0, 40)"]),
    (lambda h: h["fc.bias"].pop("dtype"), ["malformed safetensors header", "without dtype"]),
], ids=["missing", "dtype", "shape", "offsets", "no-dtype"])
def test_header_disagreeing_with_the_model(tiny, tmp_path, change, needles):
    header, data = header_and_data(tiny.weights_file)
    change(header)
    fails(with_weights(tiny, tmp_path, rewrite_header(header, data)), USER, "broken.safetensors", *needles)


@pytest.mark.parametrize("text", [b"[1, 2]", b'{"fc.weight": {"dtype": "F32", "shape": [10, 784', b"{]",
                                  b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 99999999999999999999999]}}'])
def test_malformed_header_json(tiny, tmp_path, text):
    data = struct.pack("<Q", len(text)) + text + b"\0" * 31400
    fails(with_weights(tiny, tmp_path, data), USER, "broken.safetensors", "malformed safetensors header")


def test_missing_weights_say_where_they_were_looked_for(tiny, tmp_path):
    lonely = shutil.copy(tiny.exe, tmp_path / "tiny")
    fails(kit.run(lonely, "--input", str(good_input(tmp_path))), USER,
          f"tried {tmp_path}/../weights/tiny.safetensors and {tmp_path}/tiny.safetensors")


def test_weights_override_that_does_not_exist(tiny, tmp_path):
    fails(kit.run(tiny.exe, "--info", env={"KILN_WEIGHTS": str(tmp_path / "nope.safetensors")}), USER,
          "nope.safetensors", "No such file")


# --- .npy inputs ----------------------------------------------------------------------------------

def raw_npy(header: bytes, data: bytes = b"") -> bytes:
    """A version 1.0 .npy file with this header text, unchecked."""
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + data


def npy_bytes(array: np.ndarray, **header_changes) -> bytes:
    header = {"descr": np.lib.format.dtype_to_descr(array.dtype), "fortran_order": False, "shape": array.shape}
    header.update(header_changes)
    return raw_npy(repr(header).encode() + b"\n", array.tobytes())


@pytest.mark.parametrize("content, needles", [
    (np.zeros((1, 784), np.float32), ["shape [1, 784] does not match input 'x' [1, 1, 28, 28]"]),
    (np.zeros((1, 1, 28, 28), np.float64), ["dtype '<f8', but input 'x' needs '<f4'"]),
    (np.zeros((1, 1, 28, 28), np.int32), ["dtype '<i4'"]),
    (npy_bytes(np.zeros((1, 1, 28, 28), np.float32))[:-4], ["3132 data bytes, but shape and dtype need 3136"]),
    (npy_bytes(np.zeros((1, 1, 28, 28), np.float32), fortran_order=True), ["Fortran order"]),
    (raw_npy(b"{'descr': '<f4', 'shape': (1, 784), }\n"), ["malformed .npy header: no readable 'fortran_order'"]),
    (raw_npy(b"{'descr': '<f4', 'fortran_order': False, 'shapes': ()}\n"), ["malformed .npy header: no readable 'shape'"]),
    (raw_npy(b"{'descr': <f4, 'fortran_order': False, 'shape': ()}\n"), ["malformed .npy header: no readable 'descr'"]),
    (raw_npy(b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, x)}\n"), ["no readable 'shape'"]),
    (b"\x93NUMPY\x01\x00\xff\x7f{'descr'", ["header length 32767 exceeds the file"]),
    (b"\x93NUMPY\x09\x00" + bytes(10), ["unsupported format version 9"]),
    (b"\x93NUMPY", ["truncated .npy header"]),
    (b"hello", ["neither a .npy file nor a binary PGM image"]),
    (b"", ["neither a .npy file nor a binary PGM image"]),
], ids=["shape", "float64", "int32", "truncated", "fortran", "no-order", "no-shape", "bad-descr", "bad-dim",
        "long-header", "version", "short", "text", "empty"])
def test_bad_npy_input(tiny, tmp_path, content, needles):
    path = tmp_path / "bad.npy"
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_bytes(content)
    fails(kit.run(tiny.exe, "--input", str(path)), USER, "bad.npy", *needles)


def test_missing_input_file(tiny, tmp_path):
    fails(kit.run(tiny.exe, "--input", str(tmp_path / "absent.npy")), USER, "absent.npy", "cannot open")


def test_input_is_a_directory(tiny, tmp_path):
    fails(kit.run(tiny.exe, "--input", str(tmp_path)), USER, str(tmp_path), "not a regular file")


@pytest.mark.parametrize("flag", ["--input", "--weights"])
def test_fifo_fails_fast_instead_of_blocking(tiny, tmp_path, flag):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    fails(kit.run(tiny.exe, flag, str(fifo), timeout=20), USER, str(fifo), "regular file")


def test_unwritable_output(tiny, tmp_path):
    fails(kit.run(tiny.exe, "--input", str(good_input(tmp_path)), "--output", str(tmp_path / "no" / "y.npy")),
          USER, "no/y.npy", "cannot write output", after_run=True)


# --- PGM and IDX ----------------------------------------------------------------------------------

@pytest.mark.parametrize("content, needles", [
    (b"P5\n28 28\n255\n" + bytes(700), ["700 pixel bytes, but 28x28 needs 784"]),
    (b"P5\n20 20\n255\n" + bytes(400), ["a 20x20 image does not fit input 'x' (f32 [1, 1, 28, 28])"]),
    (b"P5\n28 28\n65535\n" + bytes(1568), ["16-bit PGM"]),
    (b"P5\n28 x\n255\n", ["malformed PGM header"]),
    (b"P5\n28 28\n255", ["malformed PGM header"]),
    (b"P2\n28 28\n255\n", ["not a binary PGM file"]),
], ids=["truncated", "size", "16bit", "header", "no-raster", "ascii"])
def test_bad_pgm(tiny, tmp_path, content, needles):
    path = tmp_path / "bad.pgm"
    path.write_bytes(content)
    fails(kit.run(tiny.exe, "--pgm", str(path)), USER, "bad.pgm", *needles)


@pytest.fixture
def idx_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 28, 28), dtype=np.uint8)
    return (kit.write_idx_images(tmp_path / "images.gz", images, compress=True),
            kit.write_idx_labels(tmp_path / "labels", np.arange(6) % 10))


def test_corrupt_gzip(tiny, tmp_path, idx_files):
    data = bytearray(idx_files[0].read_bytes())
    data[len(data) // 2] ^= 0xFF
    data[len(data) // 2 + 1] ^= 0x55
    idx_files[0].write_bytes(bytes(data))
    fails(kit.run(tiny.exe, "--idx", str(idx_files[0])), USER, "images.gz", "cannot decompress")


def test_truncated_gzip(tiny, idx_files):
    idx_files[0].write_bytes(idx_files[0].read_bytes()[:-30])
    fails(kit.run(tiny.exe, "--idx", str(idx_files[0])), USER, "images.gz", "cannot decompress")


def test_labels_that_do_not_match_the_images(tiny, tmp_path, idx_files):
    few = kit.write_idx_labels(tmp_path / "few", np.arange(4))
    fails(kit.run(tiny.exe, "--idx", str(idx_files[0]), "--labels", str(few)), USER, "few", "4 labels for 6 images")


def test_idx_of_the_wrong_kind(tiny, idx_files):
    fails(kit.run(tiny.exe, "--idx", str(idx_files[1])), USER, "labels", "not an unsigned-byte IDX file of rank 3")


def test_idx_images_of_the_wrong_size(tiny, tmp_path):
    small = kit.write_idx_images(tmp_path / "small", np.zeros((2, 20, 20), np.uint8))
    fails(kit.run(tiny.exe, "--idx", str(small)), USER, "small", "a 20x20 image does not fit input 'x'")


def test_truncated_idx(tiny, tmp_path):
    path = kit.write_idx_images(tmp_path / "cut", np.zeros((3, 28, 28), np.uint8))
    path.write_bytes(path.read_bytes()[:-1])
    fails(kit.run(tiny.exe, "--idx", str(path)), USER, "cut", "2351 data bytes, but the header's dimensions need 2352")


def test_offset_past_the_end(tiny, idx_files):
    fails(kit.run(tiny.exe, "--idx", str(idx_files[0]), "--offset", "6"), USAGE, "--offset 6 is past the 6 images")


def test_gzip_that_is_not_deflate(tiny, tmp_path):
    path = tmp_path / "odd.gz"
    path.write_bytes(b"\x1f\x8b\x09" + bytes(30))
    fails(kit.run(tiny.exe, "--idx", str(path)), USER, "odd.gz", "not a gzip deflate stream")


def test_gzip_with_header_fields_still_inflates(tiny, tmp_path, monkeypatch):
    """FNAME and FCOMMENT fields, as `gzip -N` writes them."""
    images = kit.write_idx_images(tmp_path / "plain", np.zeros((2, 28, 28), np.uint8))
    body = gzip.compress(images.read_bytes(), mtime=0)
    named = body[:3] + bytes([body[3] | 0x18]) + body[4:10] + b"plain\0a comment\0" + body[10:]
    path = tmp_path / "named.gz"
    path.write_bytes(named)
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    done = kit.run(tiny.exe, "--idx", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 2


def test_multi_member_gzip_inflates(tiny, tmp_path, monkeypatch):
    """`cat a.gz b.gz` is one valid gzip stream (RFC 1952 section 2.2), zero padding after it too."""
    raw = kit.write_idx_images(tmp_path / "plain", np.zeros((3, 28, 28), np.uint8)).read_bytes()
    path = tmp_path / "members.gz"
    path.write_bytes(gzip.compress(raw[:1000], mtime=0) + gzip.compress(raw[1000:], mtime=0) + bytes(16))
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    done = kit.run(tiny.exe, "--idx", str(path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 3


def test_gzip_bomb_stops_at_the_size_the_header_implies(tiny, tmp_path):
    """A header for 5 images followed by 64 MB of zeros: it fails naming the file, having inflated
    no more than 5 images' worth (before, the whole stream was inflated first)."""
    header = kit.write_idx_images(tmp_path / "five", np.zeros((5, 28, 28), np.uint8)).read_bytes()
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(header + bytes(64 << 20), compresslevel=9, mtime=0))
    assert path.stat().st_size < 100_000
    done = kit.run(tiny.exe, "--idx", str(path))
    fails(done, USER, "bomb.gz", "cannot decompress", "more than the expected size")


# --- command line, platform, CPU level -------------------------------------------------------------

@pytest.mark.parametrize("args, needles", [
    (["--frobnicate"], ["unknown option '--frobnicate'"]),
    (["stray"], ["unknown option 'stray'"]),
    (["--threads", "zero"], ["--threads needs an integer from 1 to 256, got 'zero'"]),
    (["--threads", "0"], ["--threads needs an integer from 1 to 256, got '0'"]),
    (["--threads", "99999999999"], ["--threads needs an integer from 1 to 256"]),
    (["--bench", "-3"], ["--bench needs an integer from 1"]),
    (["--input"], ["--input needs a value"]),
    (["--labels", "l"], ["--labels, --limit and --offset need --idx"]),
    (["--idx", "i", "--input", "x"], ["--idx cannot be combined"]),
    ([], ["missing input 'x' (use --input x=FILE)"]),
    (["--platform", "cuda"], ["platform 'cuda' (from --platform) is not in this bundle; it has: auto, cpu"]),
], ids=["unknown", "stray", "threads-word", "threads-zero", "threads-huge", "bench", "no-value", "labels", "idx-input",
        "missing-input", "platform"])
def test_usage_errors(tiny, args, needles):
    fails(kit.run(tiny.exe, *args), USAGE, *needles)


def test_bare_input_for_a_model_with_several(tmp_path):
    probe = kit.build_probe_model(tmp_path)
    fails(kit.run(probe, "--input", "n.npy"), USAGE,
          "--input n.npy: the model has 3 inputs (n, repeat, nested); use --input NAME=FILE")


def test_input_given_twice(tiny, tmp_path):
    x = str(good_input(tmp_path))
    fails(kit.run(tiny.exe, "--input", x, "--input", f"x={x}"), USAGE, "input 'x' is given twice")


def test_platform_from_the_environment(tiny):
    fails(kit.run(tiny.exe, "--info", env={"KILN_PLATFORM": "tpu"}), USAGE, "'tpu' (from KILN_PLATFORM)", "auto, cpu")


def test_unknown_cpu_level_lists_the_variants(tiny):
    fails(kit.run(tiny.exe, "--info", env={"KILN_CPU_LEVEL": "x86-64-v9"}), USER,
          "KILN_CPU_LEVEL=x86-64-v9", "x86-64-v4, x86-64-v3, x86-64-v2, x86-64")


def test_bytes_quoted_from_a_file_are_escaped(tiny, tmp_path):
    """A manifest naming a dtype with control bytes and broken UTF-8 still gives one line of text."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny.exe.parent.parent, bundle)
    manifest = bundle / "share" / "cpu-xla" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_bytes(b'{"name": "m", "inputs": [{"name": "x", "shape": [1], "dtype": "f3\xed\x1b[31m\xc3\xa9"}]}')
    done = subprocess.run([bundle / "bin" / tiny.exe.name, "--platform", "cpu-xla", "--input", "x.npy"],
                          capture_output=True)
    text = subprocess.CompletedProcess(done.args, done.returncode, done.stdout.decode(), done.stderr.decode())
    line = fails(text, USER)
    assert line.endswith("unsupported dtype 'f3\\xed\\x1b[31m\u00e9'"), line


def test_model_with_another_abi_version(tmp_path):
    model = kit.build_dense_model(tmp_path, name="future", abi_version=2)
    fails(kit.run(model.exe, "--info"), USER, "ABI version 2", "speaks 1")


@pytest.mark.parametrize("args", [["--info"], ["--bench", "5", "--threads", "3"], ["--input", "X", "--output", "Y"]],
                         ids=["info", "bench", "round-trip"])
def test_successful_runs_are_clean_and_leak_free(tiny, tmp_path, monkeypatch, args):
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    args = [str(good_input(tmp_path)) if a == "X" else str(tmp_path / "y.npy") if a == "Y" else a for a in args]
    done = kit.run(tiny.exe, *args)
    assert done.returncode == 0, done.stderr
    assert len(done.stderr.splitlines()) == 1


def test_thread_pool(sanitize, tmp_path, monkeypatch):
    """Mostly for the sanitized build; test_launcher_run.py covers the pool in depth."""
    monkeypatch.setenv("ASAN_OPTIONS", "detect_leaks=1")
    probe = kit.build_probe_model(tmp_path, sanitize=sanitize)
    args: list[str] = []
    for name, value in (("n", 777), ("repeat", 500), ("nested", 1)):
        args += ["--input", f"{name}={kit.save_npy(tmp_path / f'{name}.npy', np.array([value], np.float32))}"]
    done = kit.run(probe, *args, "--threads", "3", "--output", str(tmp_path / "v.npy"))
    assert done.returncode == 0, done.stderr
    visits = np.load(tmp_path / "v.npy").reshape(-1)
    assert (visits[:777] == 500).all() and (visits[777:] == 0).all()


@pytest.mark.parametrize("seed", range(40))
def test_random_damage_never_crashes(tiny, tmp_path, seed):
    """Random byte flips in the weights header, a .npy header and gzip data: a clean run or one
    line and exit 1."""
    rng = np.random.default_rng(seed)
    weights = bytearray(tiny.weights_file.read_bytes())
    (header_bytes,) = struct.unpack("<Q", weights[:8])
    for at in rng.integers(0, 8 + header_bytes, 3):
        weights[at] = int(rng.integers(0, 256))
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    gz = bytearray(gzip.compress(kit.write_idx_images(tmp_path / "raw", images).read_bytes(), mtime=0))
    for at in rng.integers(10, len(gz), 2):
        gz[at] = int(rng.integers(0, 256))
    (tmp_path / "images.gz").write_bytes(bytes(gz[:len(gz) - int(rng.integers(0, 3))]))
    npy = bytearray(good_input(tmp_path).read_bytes())
    for at in rng.integers(6, 128, 2):
        npy[at] = int(rng.integers(0, 256))
    (tmp_path / "damaged.npy").write_bytes(bytes(npy))
    for done in (with_weights(tiny, tmp_path, bytes(weights)),
                 kit.run(tiny.exe, "--idx", str(tmp_path / "images.gz")),
                 kit.run(tiny.exe, "--input", str(tmp_path / "damaged.npy"))):
        assert done.returncode in (0, 1), done.stderr
        if done.returncode == 1:
            fails(done, 1)
