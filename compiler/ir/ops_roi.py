"""RoiAlign and DeformConv: bilinear sampling at positions known only at run time (regions of
interest, learned offsets)."""
from __future__ import annotations

from dataclasses import dataclass

from .graph import Node, TensorType
from .registry import fail, op

ROI_MODES = ("avg", "max")
ROI_TRANSFORMS = ("half_pixel", "output_half_pixel")


@dataclass(frozen=True)
class RoiPlan:
    mode: str
    half_pixel: bool  # coordinates shifted by half a pixel ("aligned")
    out: tuple[int, int]  # pooled height, width
    samples: tuple[int, int]  # sample points per bin along height, width
    scale: float


def roi_plan(node: Node) -> RoiPlan:
    mode = node.attr("mode", "avg")
    transform = node.attr("coordinate_transformation_mode", "half_pixel")
    if mode not in ROI_MODES:
        raise fail(node, f"mode {mode!r} is not supported (supported: {', '.join(ROI_MODES)})")
    if transform not in ROI_TRANSFORMS:
        raise fail(node, f"coordinate_transformation_mode {transform!r} is not supported "
                         f"(supported: {', '.join(ROI_TRANSFORMS)})")
    out = (int(node.attr("output_height", 1)), int(node.attr("output_width", 1)))
    ratio = int(node.attr("sampling_ratio", 0))
    if min(out) < 1:
        raise fail(node, f"output size {list(out)} has an empty dimension; kiln does not support empty tensors")
    if ratio < 1:
        # ceil(roi size / output size) samples per bin: a count that depends on the rois' values
        raise fail(node, f"sampling_ratio {ratio} (adaptive: as many samples as the region is large) is not "
                         "supported, as the sample count would follow the run-time rois; give sampling_ratio > 0")
    return RoiPlan(mode, transform == "half_pixel", out, (ratio, ratio), float(node.attr("spatial_scale", 1.0)))


def _roi_align(node: Node) -> list[TensorType]:
    x, rois, batch = (i.type for i in node.inputs)
    plan = roi_plan(node)
    if x.rank != 4 or rois.rank != 2 or rois.shape[1] != 4 or batch.shape != rois.shape[:1]:
        raise fail(node, f"X {list(x.shape)}, rois {list(rois.shape)} and batch_indices {list(batch.shape)} "
                         "do not match ([N, C, H, W], [R, 4], [R])")
    if x.dtype != "f32" or rois.dtype != "f32" or batch.dtype not in ("i64", "i32"):
        raise fail(node, f"X and rois must be float and batch_indices integer, got {x.dtype}, {rois.dtype} "
                         f"and {batch.dtype}")
    return [TensorType("f32", (rois.shape[0], x.shape[1]) + plan.out)]


op("RoiAlign", _roi_align,
   flops=lambda n: n.outputs[0].type.numel * 8 * roi_plan(n).samples[0] * roi_plan(n).samples[1])
