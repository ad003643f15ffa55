"""How the cpu backend splits a layer over the pool: pieces of at least PARALLEL_MIN_WORK, and a
layer too small to share runs on the calling thread (issue 20.2), a large batch in slices (20.4)."""
from __future__ import annotations

import numpy as np

from kiln.compiler.backend.cpu.context import PARALLEL_MIN_WORK
from kiln.compiler.backend.cpu.k_winograd import slice_images
from onnx_models import assert_close, kiln_jit, run_onnxruntime, single_op


def run_recording(model, feeds: dict[str, np.ndarray], workdir) -> tuple[list[np.ndarray], list[int]]:
    """Outputs of a 2-thread JIT run, and the n of every kiln_parallel_for call it made."""
    jit, names = kiln_jit(model, workdir, threads=2)
    calls: list[int] = []
    run = jit.pool.run

    def recording(fn: int, ctx: int, n: int) -> None:
        calls.append(n)
        run(fn, ctx, n)

    jit.pool.run = recording
    return jit.run(*[feeds[n] for n in names]), calls


def test_small_layer_runs_on_the_caller(tmp_path):
    x = np.random.default_rng(0).standard_normal((1, 4, 16, 16)).astype(np.float32)
    model = single_op("MaxPool", [("x", x, False)], kernel_shape=[2, 2], strides=[2, 2])
    got, calls = run_recording(model, {"x": x}, tmp_path)
    assert calls == []
    assert_close(got[0], run_onnxruntime(model, {"x": x})[0])


def test_rows_are_grouped_into_pieces_that_pay(tmp_path):
    """A pool over 64 output rows with work for only a few pieces: each piece a run of rows."""
    x = np.random.default_rng(1).standard_normal((1, 64, 128, 128)).astype(np.float32)
    model = single_op("MaxPool", [("x", x, False)], kernel_shape=[2, 2], strides=[2, 2])
    got, calls = run_recording(model, {"x": x}, tmp_path)
    work = 64 * 64 * 64 * 2 * 2   # output elements x window, as k_pool counts it
    assert work // PARALLEL_MIN_WORK in calls and all(1 < n < 64 for n in calls)   # (and a layout change)
    assert_close(got[0], run_onnxruntime(model, {"x": x})[0])


def test_winograd_goes_through_a_large_batch_in_slices(tmp_path):
    """Batch 32 at 2 threads: the Winograd conv runs its three steps on slices of images, its
    buffer one slice's size (issue 20.4); outputs match onnxruntime's."""
    x = np.random.default_rng(2).standard_normal((32, 16, 32, 32)).astype(np.float32)
    w = np.random.default_rng(3).uniform(-0.5, 0.5, (24, 16, 3, 3)).astype(np.float32)
    b = np.random.default_rng(4).standard_normal(24).astype(np.float32)
    model = single_op("Conv", [("x", x, False), ("w", w, True), ("b", b, True)], pads=[1, 1, 1, 1])
    images = slice_images(32, (32, 32), 16, 24)
    assert 1 < images < 32
    got, calls = run_recording(model, {"x": x}, tmp_path)
    assert len(calls) >= 3 * 32 // images   # input transform, GEMM and output transform per slice
    assert_close(got[0], run_onnxruntime(model, {"x": x}, threads=2)[0])
