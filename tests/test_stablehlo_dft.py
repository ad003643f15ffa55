"""The log-mel spectrogram model (STFT, DFT MatMul, MelWeightMatrix constant) through StableHLO on
XLA's PJRT CPU plugin, against onnxruntime."""
from __future__ import annotations

import numpy as np
import pytest

import pjrt_harness
from test_compiler_dft import log_mel_model

pytestmark = pytest.mark.e2e


def test_log_mel_spectrogram(tmp_path, tmp_path_factory):
    x = np.random.default_rng(16).uniform(-1.0, 1.0, (1, 800, 1)).astype(np.float32)
    launcher = pjrt_harness.link_launcher(tmp_path_factory.mktemp("pjrt-launcher"))
    pjrt_harness.check(launcher, log_mel_model(x.shape), {"x": x}, tmp_path)
