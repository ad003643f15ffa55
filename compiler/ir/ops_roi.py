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


@dataclass(frozen=True)
class DeformPlan:
    kernel: tuple[int, int]
    strides: tuple[int, int]
    dilations: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right
    group: int
    offset_group: int
    out: tuple[int, int]


def deform_plan(node: Node) -> DeformPlan:
    x, w, offset = (i.type for i in node.inputs[:3])
    if x.rank != 4 or w.rank != 4 or offset.rank != 4:
        raise fail(node, f"X {list(x.shape)}, W {list(w.shape)} and offset {list(offset.shape)} are not 2-D "
                         "([N, C, H, W]); kiln supports 2-D deformable convolutions only, as onnx's reference")
    kernel = tuple(node.attr("kernel_shape", w.shape[2:]))
    strides, dilations = tuple(node.attr("strides", (1, 1))), tuple(node.attr("dilations", (1, 1)))
    pads = tuple(node.attr("pads", (0, 0, 0, 0)))
    group, offset_group = int(node.attr("group", 1)), int(node.attr("offset_group", 1))
    out = tuple((x.shape[2 + a] + pads[a] + pads[2 + a] - (kernel[a] - 1) * dilations[a] - 1) // strides[a] + 1
                for a in range(2))
    if min(out) < 1:
        raise fail(node, f"the output {list(out)} is empty; kiln does not support empty tensors")
    k = kernel[0] * kernel[1]
    if (x.shape[1] != w.shape[1] * group or w.shape[0] % group or x.shape[1] % offset_group
            or offset.shape != (x.shape[0], 2 * offset_group * k) + out or tuple(w.shape[2:]) != kernel):
        raise fail(node, f"X {list(x.shape)}, W {list(w.shape)} and offset {list(offset.shape)} do not match "
                         f"group {group}, offset_group {offset_group}, kernel {list(kernel)} and the output "
                         f"{list(out)}")
    return DeformPlan(kernel, strides, dilations, pads, group, offset_group, out)


def _deform_conv(node: Node) -> list[TensorType]:
    plan = deform_plan(node)
    x, w = node.inputs[0].type, node.inputs[1].type
    k = plan.kernel[0] * plan.kernel[1]
    optional = {3: ("B", (w.shape[0],)), 4: ("mask", (x.shape[0], plan.offset_group * k) + plan.out)}
    for i, (what, shape) in optional.items():
        v = node.inputs[i] if i < len(node.inputs) else None
        if v is not None and v.type.shape != shape:
            raise fail(node, f"{what} {list(v.type.shape)} should be {list(shape)}")
    if any(v is not None and v.type.dtype != "f32" for v in node.inputs):
        raise fail(node, "X, W, offset, B and mask must be float")
    return [TensorType("f32", (x.shape[0], w.shape[0]) + plan.out)]


op("DeformConv", _deform_conv,
   flops=lambda n: n.outputs[0].type.numel * 2 * n.inputs[1].type.numel // n.inputs[1].type.shape[0]
   + n.inputs[2].type.numel * 8 * n.inputs[0].type.shape[1])
