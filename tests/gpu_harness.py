"""Compile for a GPU and run the kernels lowered to CPU loops (no GPU needed)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from kiln.compiler.artifacts import safetensors_bytes
from kiln.compiler.backend.gpu.emulate import EmulatedDevice
from kiln.compiler.backend.gpu.codegen import build_kernels
from kiln.compiler.frontend.onnx import load_onnx
from kiln.compiler.ir.graph import DTYPES
from kiln.compiler.passes.pipeline import run_pipeline
from onnx_models import assert_close, run_onnxruntime, with_specials


def emulate(model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir, batch: int = 1):
    """(outputs, kernels) of the model's GPU kernels run as CPU loops."""
    path = Path(workdir) / "model.onnx"
    onnx.save(model, path)
    graph = run_pipeline(load_onnx(path, None, batch))
    kernels, plan = build_kernels(graph)
    weights, start = safetensors_bytes(plan.weights)
    device = EmulatedDevice(kernels, plan, weights[start:])
    names = [v.name for v in model.graph.input if v.name in feeds]
    outs = [(v.type.shape, np.dtype(DTYPES[v.type.dtype])) for v in graph.outputs]
    return device.run([feeds[n] for n in names], outs), kernels


def check_gpu(model: onnx.ModelProto, feeds: dict[str, np.ndarray], workdir, variant=None,
              specials: bool = False, **kw) -> None:
    """As onnx_models.check, through the GPU kernels lowered to CPU loops."""
    for case in [feeds, with_specials(feeds)] if specials else [feeds]:
        got, _ = emulate(model, case, workdir, **kw)
        ref = run_onnxruntime(model, case)
        assert len(got) == len(ref)
        for g, r in zip(got, ref):
            assert_close(g, r)
