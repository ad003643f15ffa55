"""The DFT tests of test_compiler_dft, run through the GPU kernel descriptions lowered to CPU loops."""
from __future__ import annotations

import pytest

import test_compiler_dft
from gpu_harness import check_gpu
from test_compiler_dft import (  # noqa: F401 - collected again here
    test_dft17, test_dft20_axis_input, test_log_mel_spectrogram, test_mel_weight_matrix_folds, test_stft)


@pytest.fixture(autouse=True)
def _through_gpu_kernels(monkeypatch):
    monkeypatch.setattr(test_compiler_dft, "check", check_gpu)
