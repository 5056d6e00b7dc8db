"""Negative quantization scales: allowed on the weights of CONV_2D, DEPTHWISE_CONV_2D and
FULLY_CONNECTED (MCUNet's models have them; TFLite's spec allows them and LiteRT runs them), rejected
everywhere else (an activation's scale must be > 0).

LiteRT turns each output channel's s_in * s_w[c] / s_out into a multiplier with QuantizeMultiplier,
which keeps the sign, and MultiplyByQuantizedMultiplier (both roundings) depends on the accumulator
acc and the multiplier m only through the product acc * m (and acc's left shift). The kernels'
fused requantization assumes m > 0. So the importer negates, in each channel with a negative
scale, the weights, the bias and the scale: acc and m both change sign, every product acc * m is
unchanged, and the model computes LiteRT's outputs bit for bit on the existing kernels.

What cannot be negated is refused with its reason: an int8 weight -128 or an int32 bias INT32_MIN in
such a channel, and a channel whose negative multiplier is exactly -2^31 (QuantizeMultiplier does not
renormalise it as it does +2^31, so no positive multiplier rounds like it).

    rewrite(tensors, ops) -> [problems]     rewrites the weights in place; problems name tensors
"""
from __future__ import annotations

import numpy as np

from ..fixedpoint.prepare import quantize_multiplier
from ..graph import Op, Quantization, Tensor

# op kind -> the weights' output-channel axis
CHANNEL_AXIS = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


def _negative(t: Tensor) -> bool:
    return t.is_constant and t.quant is not None and any(s < 0 for s in t.quant.scale)


def rewrite(tensors: list[Tensor], ops: list[Op]) -> list[str]:
    """Make every weight scale positive (see the module doc); problems for what cannot be. (The
    importer refuses negative scales on non-constant tensors itself.)"""
    negative = {t.index for t in tensors if _negative(t)}
    if not negative:
        return []
    problems = []
    allowed: dict[int, list[Op]] = {}  # weight tensor -> the ops reading it as weights
    biases: set[int] = set()
    misused: dict[int, str] = {}
    for op in ops:
        for position, t in enumerate(op.inputs):
            if t not in negative:
                continue
            if op.kind in CHANNEL_AXIS and position == 1:
                allowed.setdefault(t, []).append(op)
            elif op.kind in CHANNEL_AXIS and position == 2:
                biases.add(t)
            else:
                misused.setdefault(t, f"input {position} of op {op.index} {op.kind}")
    for t, where in misused.items():
        problems.append(f"tensor '{tensors[t].name}' ({where}) has a negative quantization scale: only the "
                        "weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED may (activation scales must "
                        "be > 0)")
    if problems:
        return problems

    flipped_biases: dict[int, tuple[bool, ...]] = {}
    for w_index, readers in allowed.items():
        w = tensors[w_index]
        axes = {CHANNEL_AXIS[op.kind] for op in readers}
        if len(axes) > 1 or w.data is None:
            problems.append(f"weights '{w.name}' with negative scales are read along different channel axes")
            continue
        (axis,) = axes
        channels = w.shape[axis]
        scales = np.broadcast_to(np.asarray(w.quant.scale, dtype=np.float32), (channels,))
        flip = scales < 0
        problems += _check_weights(w, axis, flip, readers, tensors)
        for op in readers:
            b = op.inputs[2] if len(op.inputs) > 2 else -1
            if b < 0:
                continue
            if flipped_biases.setdefault(b, tuple(flip)) != tuple(flip):
                problems.append(f"bias '{tensors[b].name}' is shared by weights negated in different channels")
        if problems:
            continue
        shape = [1] * len(w.shape)
        shape[axis] = channels
        sign = np.where(flip, -1, 1).reshape(shape)
        w.data = (w.data.astype(np.int64) * sign).astype(w.dtype)
        w.quant = _abs(w.quant)
    for b_index, flip in flipped_biases.items():
        b = tensors[b_index]
        if b.data is None or problems:
            continue
        flip = np.asarray(flip)
        if b.data.shape[-1:] != flip.shape:
            continue  # the op's checker reports the bias shape
        if b.dtype == "int32" and (b.data[flip] == np.iinfo(np.int32).min).any():
            problems.append(f"bias '{b.name}' holds INT32_MIN in a channel with a negative weight scale")
            continue
        b.data = np.where(flip, -b.data.astype(np.int64), b.data).astype(b.dtype)
    for b_index in biases:
        if _negative(tensors[b_index]) and not problems:
            tensors[b_index].quant = _abs(tensors[b_index].quant)
    return problems


def _check_weights(w: Tensor, axis: int, flip: np.ndarray, readers: list[Op], tensors: list[Tensor]) -> list[str]:
    problems = []
    moved = np.moveaxis(w.data, axis, 0).reshape(len(flip), -1)
    low = [c for c in np.flatnonzero(flip) if (moved[c] == np.iinfo(w.dtype).min).any()]
    if low:
        problems.append(f"weights '{w.name}' hold {np.iinfo(w.dtype).min} in channel {low[0]}, whose scale is "
                        "negative: it cannot be negated (requantize the weights to [-127, 127])")
    for op in readers:
        if op.kind == "FULLY_CONNECTED" and not w.quant.per_channel:
            # LiteRT's per-tensor FULLY_CONNECTED checks that s_in * s_w >= 0 and refuses the model
            problems.append(f"op {op.index} FULLY_CONNECTED: the per-tensor weight scale of '{w.name}' is negative "
                            "(LiteRT refuses it too; only per-channel scales may be)")
            continue
        x, y = tensors[op.inputs[0]], tensors[op.outputs[0]]
        if x.quant is None or y.quant is None:
            continue
        for c in np.flatnonzero(flip):
            real = float(np.float32(x.quant.scale[0])) * float(np.float32(w.quant.scale[c if w.quant.per_channel
                                                                                      else 0]))
            m, _ = quantize_multiplier(real / float(np.float32(y.quant.scale[0])))
            if m == -(1 << 31):
                problems.append(f"op {op.index} {op.kind}: channel {c}'s negative multiplier is exactly -2^31, "
                                "which no positive multiplier rounds like")
                break
    return problems


def _abs(q: Quantization) -> Quantization:
    return Quantization(tuple(abs(s) for s in q.scale), q.zero_point, q.axis)
