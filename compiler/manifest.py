"""manifest.json, the one schema every platform's compile writes and the launcher reads
(runtime/gpu_model.c, runtime/pjrt_model.c; the CPU code carries the same facts in its linked-in
descriptor).

Common fields, for every platform:
    format    "kiln-model/1"
    name      the model's name
    platform  the registry name it was compiled for ("cpu", "cuda", "tpu", ...)
    batch     the batch size the shapes were fixed at
    inputs, outputs   [{"name", "dtype", "shape"}] in call order, named as in the ONNX file
    weights   {"file", "data_offset", "data_bytes", "tensors": [{"name", "dtype", "shape", "offset",
              "nbytes", "sha256"}]}: the safetensors file and where each tensor's bytes sit
    source    {"model", "sha256"}: the ONNX file compiled
    buckets   only when shape buckets were compiled (model(shapes), model(batch_sizes)): [{"batch", "inputs",
              "outputs", and that bucket's backend section}], smallest first; the fields above then
              describe the first. A bucket's inputs carry "pad_value" when their non-leading dims may be
              padded, its outputs "follows": per dim the [input name, dim] it is cut back along, or null.
              A reader that ignores it runs only the first bucket. Each bucket's section names its own
              code files (platforms.bucket_file); the weights are shared.
plus the backend's section, top-level keys beside them:
    cpu        host, triple, abi_version, scratch_bytes, variants, flops, object
    cuda/rocm  targets, buffers, kernels, code; cuda also ptx, min_driver, min_cuda (cuDriverGetVersion numbers)
    tpu/cpu-xla  program, arguments, flops
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

from .artifacts import weight_records
from .ir.weights import WeightTable
from .ir.graph import Value
from .platforms import WEIGHTS_FILE

FORMAT = "kiln-model/1"
COMMON = frozenset({"format", "name", "platform", "batch", "inputs", "outputs", "weights", "source"})
OPTIONAL = frozenset({"buckets"})  # common fields only some manifests have


def tensors(values: Sequence[Value], names: Sequence[str]) -> list[dict]:
    return [{"name": n, "dtype": v.type.dtype, "shape": list(v.type.shape)} for v, n in zip(values, names)]


def weights_entry(table: WeightTable, data_offset: int) -> dict:
    return {"file": WEIGHTS_FILE, "data_offset": data_offset, "data_bytes": table.size,
            "tensors": weight_records(table)}


def source_entry(model: Path) -> dict:
    return {"model": model.name, "sha256": hashlib.sha256(model.read_bytes()).hexdigest()}


def common(name: str, platform: str, batch: int, inputs: list[dict], outputs: list[dict], weights: dict,
           source: dict, buckets: list[dict] | None = None) -> dict:
    fields = {"format": FORMAT, "name": name, "platform": platform, "batch": batch, "inputs": inputs,
              "outputs": outputs, "weights": weights, "source": source}
    return {**fields, "buckets": buckets} if buckets else fields


def combine(common: dict, section: dict) -> dict:
    """The whole manifest; a backend's section never redefines a common field."""
    clash = (COMMON | OPTIONAL) & section.keys()
    if clash:
        raise ValueError(f"a backend's manifest section redefines {', '.join(sorted(clash))}")
    return {**common, **section}
