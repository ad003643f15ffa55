"""DFT along one axis of a real ([..., 1]) or complex ([..., 2]) signal, with static lengths."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .graph import Node, TensorType
from .registry import const_input, fail, op


@dataclass(frozen=True)
class DftShape:
    axis: int  # of the input, counting the trailing real/imaginary dim
    size: int  # input samples along axis
    kept: int  # of them, those the transform reads (dft_length truncates)
    length: int  # dft_length: samples transformed (zero-padded or truncated to)
    bins: int  # output values along axis
    parts: int  # output's trailing dim: 2, or 1 for the real output of an inverse onesided DFT (irfft)


def dft_shape(node: Node) -> DftShape:
    x = node.inputs[0].type
    axis_in = const_input(node, 2, "axis")
    axis = int(np.ravel(axis_in)[0]) if axis_in is not None else int(node.attr("axis", 1))
    axis = axis + x.rank if axis < 0 else axis
    if x.rank < 2 or x.shape[-1] not in (1, 2) or not 0 <= axis < x.rank - 1:
        raise fail(node, f"input {list(x.shape)} must end in 1 (real) or 2 (complex) and axis {axis} "
                         "must name a signal dim before it")
    size, half = x.shape[axis], bool(node.attr("onesided", 0))
    length_in = const_input(node, 1, "dft_length")
    length = int(np.ravel(length_in)[0]) if length_in is not None else 2 * (size - 1) if is_irfft(node) else size
    if length < 1:
        raise fail(node, f"dft_length must be positive, got {length}")
    if is_irfft(node):
        return DftShape(axis, size, min(size, length // 2 + 1), length, length, 1)
    return DftShape(axis, size, min(size, length), length, length // 2 + 1 if half else length, 2)


def is_irfft(node: Node) -> bool:
    """inverse and onesided: the input is the first half of a Hermitian spectrum, the output real."""
    return bool(node.attr("inverse", 0) and node.attr("onesided", 0))


def dft_matrix(node: Node) -> np.ndarray:
    """[kept * c, bins * parts]: (n, re/im) rows to (k, re/im) columns of e^(-+2 pi i k n / L),
    computed in float64 and rounded once."""
    s, parts = dft_shape(node), node.inputs[0].type.shape[-1]
    if is_irfft(node):
        return _irfft_matrix(s, parts)
    inverse = bool(node.attr("inverse", 0))
    n = np.arange(s.kept)[:, None]
    theta = 2 * np.pi * ((n * np.arange(s.bins)[None, :]) % s.length) / s.length
    cos, sin = np.cos(theta), np.sin(theta) * (1.0 if inverse else -1.0)
    re_row = np.stack([cos, sin], axis=-1)  # real input part a: a cos + i a (+-sin)
    im_row = np.stack([-sin, cos], axis=-1)  # imaginary part b: -b (+-sin) + i b cos
    rows = np.stack([re_row, im_row], axis=1)[:, :parts]
    matrix = rows.reshape(rows.shape[0] * parts, s.bins * 2)
    return (matrix / s.length if inverse else matrix).astype(np.float32)


def _irfft_matrix(s: DftShape, parts: int) -> np.ndarray:
    """Each bin k of the half spectrum stands for itself and its mirror L - k (twice, but for 0
    and L/2): x_n = sum_k w_k (a_k cos - b_k sin)(2 pi k n / L) / L."""
    k = np.arange(s.kept)[:, None]
    theta = 2 * np.pi * ((k * np.arange(s.length)[None, :]) % s.length) / s.length
    weight = np.where((k == 0) | (2 * k == s.length), 1.0, 2.0) / s.length
    rows = np.stack([weight * np.cos(theta), -weight * np.sin(theta)], axis=1)[:, :parts]
    return rows.reshape(s.kept * parts, s.length).astype(np.float32)


def _infer(node: Node) -> list[TensorType]:
    x = node.inputs[0].type
    if x.dtype != "f32":
        raise fail(node, f"input must be float, got {x.dtype}")
    s = dft_shape(node)
    shape = list(x.shape)
    shape[s.axis], shape[-1] = s.bins, s.parts
    return [TensorType("f32", tuple(shape))]


def _evaluate(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    s, x = dft_shape(node), xs[0].astype(np.float64)
    signal = x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0]
    signal = np.take(signal, np.arange(s.kept), axis=s.axis)
    if is_irfft(node):
        return [np.fft.irfft(signal, n=s.length, axis=s.axis)[..., None].astype(np.float32)]
    fft = np.fft.ifft if node.attr("inverse", 0) else np.fft.fft
    out = np.take(fft(signal, n=s.length, axis=s.axis), np.arange(s.bins), axis=s.axis)
    return [np.stack([out.real, out.imag], axis=-1).astype(np.float32)]


op("DFT", _infer, _evaluate, lambda n: 2 * n.inputs[0].type.numel * n.outputs[0].type.shape[dft_shape(n).axis] * 2)


@dataclass(frozen=True)
class StftShape:
    frames: int
    step: int
    length: int  # frame_length
    bins: int


def stft_shape(node: Node) -> StftShape:
    x, window = node.inputs[0].type, node.inputs[2] if len(node.inputs) > 2 else None
    step = int(np.ravel(const_input(node, 1, "frame_step"))[0])
    length_in = const_input(node, 3, "frame_length")
    length = int(np.ravel(length_in)[0]) if length_in is not None else window.type.shape[0] if window else 0
    if x.rank != 3 or x.shape[-1] not in (1, 2) or step < 1 or not 1 <= length <= x.shape[1]:
        raise fail(node, f"signal {list(x.shape)} must be [batch, length, 1 or 2], frame_step ({step}) "
                         f"positive and frame_length ({length}) within the signal")
    if window is not None and window.type.shape != (length,):
        raise fail(node, f"window {list(window.type.shape)} must be [frame_length] = [{length}]")
    bins = length // 2 + 1 if node.attr("onesided", 1) else length
    return StftShape((x.shape[1] - length) // step + 1, step, length, bins)


def frame_indices(s: StftShape) -> np.ndarray:
    """[frames, frame_length]: the signal positions of each frame."""
    return (np.arange(s.frames)[:, None] * s.step + np.arange(s.length)[None, :]).astype(np.int64)


def _stft_infer(node: Node) -> list[TensorType]:
    x, s = node.inputs[0].type, stft_shape(node)
    if x.dtype != "f32":
        raise fail(node, f"signal must be float, got {x.dtype}")
    return [TensorType("f32", (x.shape[0], s.frames, s.bins, 2))]


def _stft_evaluate(node: Node, xs: list[np.ndarray]) -> list[np.ndarray]:
    s, x = stft_shape(node), xs[0].astype(np.float64)
    signal = x[..., 0] + 1j * x[..., 1] if x.shape[-1] == 2 else x[..., 0]
    frames = signal[:, frame_indices(s)]
    if len(xs) > 2 and xs[2] is not None:
        frames = frames * xs[2].astype(np.float64)
    out = np.fft.fft(frames, axis=-1)[..., :s.bins]
    return [np.stack([out.real, out.imag], axis=-1).astype(np.float32)]


op("STFT", _stft_infer, _stft_evaluate,
   lambda n: 2 * n.outputs[0].type.numel * stft_shape(n).length)


def mel_weights(node: Node) -> np.ndarray:
    """[dft_length / 2 + 1, num_mel_bins] triangular filters, as onnx's reference builds them
    (band edges on the mel scale, rounded down to spectrogram bins)."""
    bins, length, rate, low, high = (np.ravel(const_input(node, i, what))[0] for i, what in enumerate(
        ("num_mel_bins", "dft_length", "sample_rate", "lower_edge_hertz", "upper_edge_hertz")))
    mel = 2595 * np.log1p(np.array([low, high], np.float64) / 700) / np.log(10)
    edges = np.arange(bins + 2) * ((mel[1] - mel[0]) / (bins + 2)) + mel[0]
    edges = ((length + 1) * (700 * np.expm1(edges / 2595 * np.log(10))) // rate).astype(int)
    out = np.zeros((int(length) // 2 + 1, int(bins)))
    for i, (left, centre, right) in enumerate(zip(edges, edges[1:], edges[2:])):
        if centre == left:
            out[centre, i] = 1
        else:
            out[left:centre + 1, i] = (np.arange(left, centre + 1) - left) / (centre - left)
        if right > centre:
            out[centre:right, i] = (right - np.arange(centre, right)) / (right - centre)
    return out.astype(np.float32)


def _mel_infer(node: Node) -> list[TensorType]:
    if node.attr("output_datatype", 1) != 1:
        raise fail(node, f"output_datatype {node.attr('output_datatype')} is not supported; use 1 (float)")
    return [TensorType("f32", mel_weights(node).shape)]


op("MelWeightMatrix", _mel_infer, lambda node, xs: [mel_weights(node)])
