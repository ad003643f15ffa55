"""Whole generated models (random weights) against onnxruntime, and the latency comparison."""
from __future__ import annotations

import time

import numpy as np
import pytest

import onnx_models as M
from onnx_models import assert_close, kiln_run, run_onnxruntime, session

MODELS = ["mlp", "mnist_cnn", "resnet", "mobilenet_v2", "transformer", "alexnet_like"]


def _feeds(model, batch: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    feeds = {}
    for v in model.graph.input:
        shape = [d.dim_value or batch for d in v.type.tensor_type.shape.dim]
        feeds[v.name] = rng.standard_normal(shape).astype(np.float32)
    return feeds


@pytest.mark.parametrize("name", MODELS)
def test_model_matches_onnxruntime(tmp_path, name):
    model = getattr(M, name)()
    feeds = _feeds(model)
    for got, ref in zip(kiln_run(model, feeds, tmp_path), run_onnxruntime(model, feeds)):
        assert_close(got, ref)


@pytest.mark.parametrize("variant", ["x86-64-v3", "x86-64-v2"])
@pytest.mark.parametrize("name", ["mnist_cnn", "transformer"])
def test_model_lower_feature_levels(tmp_path, name, variant):
    model = getattr(M, name)()
    feeds = _feeds(model)
    for got, ref in zip(kiln_run(model, feeds, tmp_path, variant), run_onnxruntime(model, feeds)):
        assert_close(got, ref)


def test_batch_option(tmp_path):
    model = M.mlp()
    feeds = _feeds(model, batch=3)
    got = kiln_run(model, feeds, tmp_path, batch=3)
    assert_close(got[0], run_onnxruntime(model, feeds)[0])


def test_two_threads(tmp_path):
    model = M.resnet()
    feeds = _feeds(model)
    got = kiln_run(model, feeds, tmp_path, threads=2)
    assert_close(got[0], run_onnxruntime(model, feeds)[0])


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


@pytest.mark.parametrize("name", ["mlp", "mnist_cnn"])
def test_latency_vs_onnxruntime(tmp_path, name, capsys):
    """Single-thread latency, interleaved medians; printed (run with -s), bounded loosely."""
    from pathlib import Path

    import onnx

    from kiln.compiler import driver
    from kiln.compiler.jit import JitModel

    model = getattr(M, name)()
    feeds = _feeds(model)
    path = Path(tmp_path) / "m.onnx"
    onnx.save(model, path)
    jit = JitModel(driver.compile(path))
    sess = session(model, threads=1)
    x = list(feeds.values())
    outs, call = jit.bind(*x)
    call()
    assert_close(outs[0], sess.run(None, feeds)[0])
    kiln_ms, wrapped_ms, ort_ms = [], [], []
    for _ in range(5):  # interleaved rounds, medians: this VM is noisy
        kiln_ms.append(_median_ms(call, 200))
        wrapped_ms.append(_median_ms(lambda: jit.run(*x), 200))
        ort_ms.append(_median_ms(lambda: sess.run(None, feeds), 200))
    k, w, o = (float(np.median(v)) for v in (kiln_ms, wrapped_ms, ort_ms))
    with capsys.disabled():
        print(f"\n{name}: kiln {k:.4f} ms (through JitModel.run {w:.4f} ms), "
              f"onnxruntime 1 thread {o:.4f} ms, ratio {k / o:.2f}")
    assert k < 2 * o
