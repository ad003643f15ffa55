"""Every operator test of the CPU backend (test_compiler_ops), run instead through the GPU kernel
descriptions lowered to CPU loops, against onnxruntime."""
from __future__ import annotations

import pytest

import test_compiler_ops
from gpu_harness import check_gpu
from test_compiler_ops import *  # noqa: F401,F403 - the same cases, collected again here

del test_variants  # noqa: F821 - CPU feature levels; GPU kernels have none


@pytest.fixture(autouse=True)
def _through_gpu_kernels(monkeypatch):
    monkeypatch.setattr(test_compiler_ops, "check", check_gpu)

