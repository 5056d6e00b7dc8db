"""TFLite fixed-point arithmetic, three ways that must agree bit for bit.

1. Build time (plain Python): `quantize_multiplier` turns a real scale into TFLite's (int32 multiplier,
   shift) pair, and `activation_range_int8` gives the clamp bounds of a fused activation, both with
   the exact float/double steps of the TFLite kernels' Prepare functions.
2. Reference (numpy, int64): `multiply_by_quantized_multiplier` and its two halves, used by tests as
   the ground truth for the generated code and handy when folding constants.
3. Generated code (TVM TE): `te_multiply_by_quantized_multiplier` builds the same integer arithmetic
   as a TIR expression. TFLite rounds twice (SaturatingRoundingDoublingHighMul, then
   RoundingDivideByPOT, both half away from zero); `tvm.tirx.q_multiply_shift` rounds once, half up,
   so it is not used.

TFLite semantics (gemmlowp), for int32 x, multiplier m in [2^30, 2^31) (or 0) and shift s:
    left = max(s, 0); right = max(-s, 0)
    MBQM(x) = RDBPOT(SRDHM(x * 2^left, m), right)
where x * 2^left wraps to int32 like the C code on every target we build for.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


# --------------------------------------------------------------------------- build time

def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).

    frexp gives real = q * 2^shift with q in [0.5, 1); q is rounded to Q31 half away from zero; a
    rounding up to exactly 2^31 is renormalised; shifts below -31 flush the multiplier to zero.
    """
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * (1 << 31))
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
    multiplier, shift = quantize_multiplier(real)
    return multiplier, shift


def _round_half_away(value: float) -> int:
    """std::round: halves go away from zero (Python's round() goes to even)."""
    return int(math.copysign(math.floor(abs(value) + 0.5), value))


def quantize_float32(value: float, scale: float, zero_point: int) -> int:
    """TFLite's `zero_point + (int)round(f / scale)` with f and scale as float32."""
    quotient = np.float32(value) / np.float32(scale)
    return int(zero_point) + _round_half_away(float(quotient))


def activation_range_int8(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 outputs: clamp bounds of a fused activation."""
    qmin, qmax = -128, 127
    if activation == "NONE":
        return qmin, qmax
    if activation == "RELU":
        return max(qmin, quantize_float32(0.0, scale, zero_point)), qmax
    if activation == "RELU6":
        return (max(qmin, quantize_float32(0.0, scale, zero_point)),
                min(qmax, quantize_float32(6.0, scale, zero_point)))
    if activation == "RELU_N1_TO_1":
        return (max(qmin, quantize_float32(-1.0, scale, zero_point)),
                min(qmax, quantize_float32(1.0, scale, zero_point)))
    raise ValueError(f"fused activation {activation} has no integer range")


def activation_range_float(activation: str) -> tuple[float, float]:
    """CalculateActivationRange for float32: clamp bounds of a fused activation."""
    bounds = {
        "NONE": (-math.inf, math.inf),
        "RELU": (0.0, math.inf),
        "RELU6": (0.0, 6.0),
        "RELU_N1_TO_1": (-1.0, 1.0),
    }
    if activation not in bounds:
        raise ValueError(f"fused activation {activation} is not a clamp")
    return bounds[activation]


# --------------------------------------------------------------------------- numpy reference

def _wrap32(values: np.ndarray) -> np.ndarray:
    return ((values.astype(np.int64) + (1 << 31)) % (1 << 32) - (1 << 31)).astype(np.int64)


def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (as int64 arrays)."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # |ab| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    # C's division truncates toward zero; numpy's // floors.
    high = np.sign(total) * (np.abs(total) // (1 << 31))
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero (0 <= exponent <= 31)."""
    x = np.asarray(x, dtype=np.int64)
    exponent = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding) on int32 inputs; returns int64 array."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(x << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)


def multiply_by_quantized_multiplier_single(x, multiplier, shift) -> np.ndarray:
    """TFLite's single-rounding MultiplyByQuantizedMultiplier (the int64 overload, and what
    LiteRT's reference FULLY_CONNECTED int8 computes, verified bit for bit against LiteRT 2.3):
    (x * m + 2^(30 - s)) >> (31 - s), i.e. one rounding, ties toward +infinity."""
    x = np.asarray(x, dtype=np.int64)
    total = 31 - np.asarray(shift, dtype=np.int64)
    return (x * np.asarray(multiplier, dtype=np.int64) + (np.int64(1) << (total - 1))) >> total


# --------------------------------------------------------------------------- TE expressions

def te_multiply_by_quantized_multiplier_single(x, multiplier, shift):
    """TIR of multiply_by_quantized_multiplier_single: int32 x, multiplier/shift ints or int32
    PrimExprs; int64 intermediate, int32 result."""
    from tvm import tirx

    one = tirx.const(1, "int64")
    if isinstance(shift, int):
        total = tirx.const(31 - shift, "int64")
        round_ = tirx.const(1 << (30 - shift), "int64")
        mult = tirx.const(multiplier, "int64")
    else:
        total = tirx.const(31, "int64") - shift.astype("int64")
        round_ = one << (total - one)
        mult = multiplier.astype("int64")
    return ((x.astype("int64") * mult + round_) >> total).astype("int32")


def te_multiply_by_quantized_multiplier(x, multiplier, shift, may_saturate=True):
    """The TIR expression of MultiplyByQuantizedMultiplier.

    x: int32 PrimExpr. multiplier, shift: Python ints (per-tensor, folded at build time) or int32
    PrimExprs (per-channel loads). Intermediates are int64 so nothing overflows in C; the result is
    int32. may_saturate=False drops the INT32_MIN * INT32_MIN check, for multipliers made by
    quantize_multiplier (always positive).
    """
    from tvm import tirx

    def let(name, value, body_fn):
        # A tirx.Let here would keep the C short, but TVM 0.27's bound analysis rejects Let-bound
        # vars inside TE block bodies ("conflicts with memorization"): substitute instead; TVM's
        # CSE and the C compiler remove the repeats.
        return body_fn(value)

    zero = tirx.const(0, "int64")
    if isinstance(shift, int):
        left, right = max(shift, 0), max(-shift, 0)
        mult = tirx.const(multiplier, "int64")
        saturate = may_saturate and multiplier == INT32_MIN
        if left:
            # x * 2^left in int32 wraps: keep the low 32 bits, as the C reference does
            x_value = (x.astype("int64") * (1 << left)).astype("int32").astype("int64")
        else:
            x_value = x.astype("int64")
        return let("x", x_value, lambda x64: let(
            "high", _te_srdhm(x64, mult, saturate),
            lambda high: _te_rdbpot(high, right))).astype("int32")

    mult = multiplier.astype("int64")
    # Per-channel: only the product needs 64 bits (one SMULL on Arm); the shifts by a loaded
    # exponent stay in int32, which a 32-bit core does in one instruction each.
    zero32 = tirx.const(0, "int32")
    left = tirx.max(shift, zero32)
    right = tirx.max(zero32 - shift, zero32)
    # x * 2^left wraps in 32 bits as in the C reference; shifted as unsigned to stay defined C
    x_value = (x.astype("uint32") << left.astype("uint32")).astype("int32")
    high = _te_srdhm(x_value.astype("int64"), mult, may_saturate).astype("int32")
    return _te_rdbpot_int32(high, right)


def _te_srdhm(a64, b64, saturate):
    """SaturatingRoundingDoublingHighMul of two int32 values held in int64 expressions.

    No branch and no division (see below)."""
    from tvm import tirx

    ab = a64 * b64
    # gemmlowp: (ab + nudge) / 2^31 truncating, nudge = 2^30 for ab >= 0 and 1 - 2^30 below. For
    # ab < 0 truncation is floor((ab + 1 - 2^30 + 2^31 - 1) / 2^31): both cases are
    # floor((ab + 2^30) / 2^31), one add and an arithmetic shift.
    high = (ab + tirx.const(1 << 30, "int64")) >> tirx.const(31, "int64")
    if not saturate:
        return high
    # only INT32_MIN * INT32_MIN = 2^62 gives 2^31 here (every other product gives a value in
    # int32); (high + 2^31) >> 32 is 1 then and 0 otherwise. (TVM 0.27's simplifier wrongly drops a
    # min() or Select() against INT32_MAX here, so the correction is arithmetic.)
    return high - ((high + tirx.const(1 << 31, "int64")) >> tirx.const(32, "int64"))


def _te_rdbpot_int32(x, exponent):
    """RoundingDivideByPOT of an int32 expression by an int32 exponent expression (0..31), in
    int32 as gemmlowp writes it: (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)), mask = 2^e - 1
    (made as INT32_MAX >> (31 - e) so that no shift overflows)."""
    from tvm import tirx

    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    mask = i32(INT32_MAX) >> (i32(31) - exponent)
    threshold = (mask >> i32(1)) - (x >> i32(31))  # x >> 31 is -1 for negative x
    remainder = tirx.bitwise_and(x, mask)
    # remainder > threshold as -((threshold - remainder) >> 31): both lie in [0, 2^30], so the
    # difference cannot overflow (and TVM 0.27's simplifier drops a Select of this comparison)
    return (x >> exponent) - ((threshold - remainder) >> i32(31))


def _te_rdbpot(x64, exponent):
    """RoundingDivideByPOT of an int32 value held in an int64 expression.

    gemmlowp's form, (x >> e) + ((x & mask) > (mask >> 1) + (x < 0)), equals the closed form
    (x + 2^(e-1) - (x < 0)) >> e for e >= 1: ties go up for x >= 0 and down for x < 0, i.e. away
    from zero. (x < 0) is -(x >> 63)."""
    from tvm import tirx

    sign = x64 >> tirx.const(63, "int64")  # -1 for negative x, else 0
    if isinstance(exponent, int):
        if exponent == 0:
            return x64
        return (x64 + tirx.const(1 << (exponent - 1), "int64") + sign) >> tirx.const(exponent, "int64")
    one = tirx.const(1, "int64")
    # exponent 0 must leave x alone: the half is 0 and so is the sign correction
    half = (one << exponent) >> one
    correction = tirx.Select(exponent > 0, sign, tirx.const(0, "int64"))
    return (x64 + half + correction) >> exponent
