"""Build time: the constants TFLite's Prepare functions derive from the float scales, with their exact
float/double steps (plain Python, no arrays)."""
from __future__ import annotations

import math

import numpy as np


def round_half_away(value: float) -> int:
    """C's round() / TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).

    frexp gives real = q * 2^shift with q in [0.5, 1); q is rounded to Q31 half away from zero; a
    rounding up to exactly 2^31 is renormalised; shifts below -31 flush the multiplier to zero.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = round_half_away(q * (1 << 31))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one_exp(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierSmallerThanOneExp (ADD/SUB input and output rescaling): the same
    pair as quantize_multiplier, for 0 < real < 1, so the shift is <= 0."""
    if not 0.0 < real < 1.0:
        raise ValueError(f"multiplier {real} is not in (0, 1)")
    return quantize_multiplier(real)


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierGreaterThanOne (SOFTMAX's input scaling): the same pair, a left shift."""
    return quantize_multiplier(real)


def quantize_float32(value: float, scale: float, zero_point: int) -> int:
    """TFLite's `zero_point + (int)round(f / scale)` with f and scale as float32."""
    quotient = np.float32(value) / np.float32(scale)
    return int(zero_point) + round_half_away(float(quotient))


# The float bounds of each fused activation that is a clamp (CalculateActivationRange): the fused
# activations the compiler supports
CLAMPS = {
    "NONE": (-math.inf, math.inf),
    "RELU": (0.0, math.inf),
    "RELU6": (0.0, 6.0),
    "RELU_N1_TO_1": (-1.0, 1.0),
}


def activation_range_float(activation: str) -> tuple[float, float]:
    """CalculateActivationRange for float32: clamp bounds of a fused activation."""
    if activation not in CLAMPS:
        raise ValueError(f"fused activation {activation} is not a clamp")
    return CLAMPS[activation]


def clamp_range_int8(scale: float, zero_point: int, lo: float, hi: float) -> tuple[int, int]:
    """The int8 bounds of the float clamp [lo, hi] (infinite: unbounded) on a tensor quantized with
    (scale, zero_point): each finite bound quantized as TFLite does (float32 division, round), then
    limited to the int8 range. CalculateActivationRangeQuantized and QuantizedReluX agree on it."""
    qmin = -128 if math.isinf(lo) else max(-128, quantize_float32(lo, scale, zero_point))
    qmax = 127 if math.isinf(hi) else min(127, quantize_float32(hi, scale, zero_point))
    return qmin, qmax


def reduced_multiplier(multiplier: int) -> int:
    """The 16-bit multiplier that MultiplyByQuantizedMultiplier's int64 overload (16x8 convolutions
    and fully connected) rounds a quantize_multiplier multiplier to: its top 16 bits, rounded,
    at most 0x7FFF. The result is then (x * reduced + 2^(14 - shift)) >> (15 - shift)."""
    return (multiplier + (1 << 15)) >> 16 if multiplier < 0x7FFF0000 else 0x7FFF


def activation_range_int16(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int16 outputs: the bounds of clamp_range_int8, limited
    to the int16 range instead."""
    try:
        lo, hi = activation_range_float(activation)
    except ValueError:
        raise ValueError(f"fused activation {activation} has no integer range") from None
    qmin = -32768 if math.isinf(lo) else max(-32768, quantize_float32(lo, scale, zero_point))
    qmax = 32767 if math.isinf(hi) else min(32767, quantize_float32(hi, scale, zero_point))
    return qmin, qmax


def activation_range_int8(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs: clamp bounds of a fused activation."""
    try:
        lo, hi = activation_range_float(activation)
    except ValueError:
        raise ValueError(f"fused activation {activation} has no integer range") from None
    return clamp_range_int8(scale, zero_point, lo, hi)
