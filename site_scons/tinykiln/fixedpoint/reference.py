"""numpy models of gemmlowp's / TFLite's integer primitives, vectorised over int64 arrays.

Integer inputs may be any integer numpy array (or Python int); arithmetic runs in int64 and results
are wrapped or saturated exactly where the C++ code wraps or saturates. Names follow gemmlowp:
    srdhm    SaturatingRoundingDoublingHighMul      rdbpot   RoundingDivideByPOT
    sdhm16   SaturatingDoublingHighMul (int16)      saturating_shl32   SaturatingRoundingMultiplyByPOT
(the 16 suffix: the int16 overloads). Checked bit for bit against an independent scalar model and
against LiteRT in tests/kernels/test_quant.py and tests/kernels/test_tflite_math.py.
"""
from __future__ import annotations

import numpy as np

from . import INT32_MAX, INT32_MIN


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Two's complement wrap to int32 (what C's int32 arithmetic does on every target we run on)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap16(x) -> np.ndarray:
    x = _i64(x)
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def srdhm(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int32 values: round(a*b / 2^31), halves away from 0."""
    a, b = _i64(a), _i64(b)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b  # |ab| <= 2^62: exact in int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero (numpy's >> and // floor)
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where(overflow, INT32_MAX, q)


def srdhm16(a, b) -> np.ndarray:
    """SaturatingRoundingDoublingHighMul on int16 values."""
    a, b = _i64(a), _i64(b)
    overflow = (a == -32768) & (b == -32768)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 14, 1 - (1 << 14))
    s = ab + nudge
    q = np.where(s >= 0, s >> 15, -((-s) >> 15))
    return np.where(overflow, 32767, q)


def sdhm16(a, b) -> np.ndarray:
    """TFLite's SaturatingDoublingHighMul (int16, truncating toward zero: SQDMULH)."""
    a, b = _i64(a), _i64(b)
    overflow = (a == -32768) & (b == -32768)
    ab = a * b
    q = np.where(ab >= 0, ab >> 15, -((-ab) >> 15))
    return np.where(overflow, 32767, q)


def rdbpot(x, exponent) -> np.ndarray:
    """RoundingDivideByPOT on int32 values: x / 2^exponent, halves away from zero (0 <= exponent <= 31)."""
    x = _i64(x)
    e = _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def rdbpot16(x, exponent: int) -> np.ndarray:
    """RoundingDivideByPOT on int16 values (mask and threshold are int16 too)."""
    x = _i64(x)
    mask = int(wrap16((1 << exponent) - 1))
    remainder = wrap16(x & mask)
    threshold = wrap16((mask >> 1) + (x < 0))
    return wrap16((x >> exponent) + (remainder > threshold))


def saturating_shl32(x, exponent: int) -> np.ndarray:
    """SaturatingRoundingMultiplyByPOT with a positive exponent (int32)."""
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, wrap32(x << exponent)))


def saturating_shl16(x, amount: int) -> np.ndarray:
    """x * 2^amount saturated to int16."""
    return np.clip(_i64(x) * (1 << amount), -32768, 32767)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding, the default build LiteRT ships)."""
    x = _i64(x)
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbpot(srdhm(wrap32(x << left), multiplier), right)


def multiply_by_quantized_multiplier_single(x, multiplier, shift) -> np.ndarray:
    """TFLite's single-rounding MultiplyByQuantizedMultiplier (the int64 overload, and what
    LiteRT's reference FULLY_CONNECTED int8 computes, verified bit for bit against LiteRT 2.3):
    (x * m + 2^(30 - s)) >> (31 - s), i.e. one rounding, ties toward +infinity."""
    x = _i64(x)
    total = 31 - _i64(shift)
    return (x * _i64(multiplier) + (np.int64(1) << (total - 1))) >> total


def multiply_by_quantized_multiplier_int64(x, multiplier, shift) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier for int64 x (16x8 CONV_2D, DEPTHWISE_CONV_2D,
    FULLY_CONNECTED with int64 accumulators; the same in both rounding builds): the multiplier
    reduced to 16 bits (prepare.reduced_multiplier), one rounding half up, the int64 result
    truncated to int32 as the C cast does."""
    from .prepare import reduced_multiplier

    x = _i64(x)
    reduced = np.vectorize(reduced_multiplier, otypes=[np.int64])(_i64(multiplier))
    total = 15 - _i64(shift)
    return wrap32((x * reduced + (np.int64(1) << (total - 1))) >> total)


# -- gemmlowp's fixed-point exp and reciprocal (SOFTMAX) --------------------------------------------

def _exp_on_interval_neg_quarter_to_0(a):
    """gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31 in and out."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rdbpot(x4, 2)
    t = rdbpot(srdhm(x4_over_4 + x3, constant_1_over_3) + x2, 1)
    return constant_term + srdhm(constant_term, x + t)


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp exp_on_negative_values: a is Q(integer_bits).(31-integer_bits) <= 0; result Q0.31."""
    a = _i64(a)
    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    mask = one_quarter - 1
    a_mod_q_minus_q = (a & mask) - one_quarter
    result = _exp_on_interval_neg_quarter_to_0(saturating_shl32(a_mod_q_minus_q, integer_bits))
    remainder = a_mod_q_minus_q - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent:
            bit = 1 << (frac + exponent)
            result = np.where((remainder & bit) != 0, srdhm(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x_for_x_in_0_1(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1 (Newton-Raphson), Q0.31 in and out."""
    a = _i64(a)
    s = a + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))  # (sum + sign) / 2 in C
    constant_48_over_17 = 1515870810
    constant_neg_32_over_17 = -1010580540
    x = constant_48_over_17 + srdhm(half_denominator, constant_neg_32_over_17)
    for _ in range(3):
        half_denominator_times_x = srdhm(half_denominator, x)
        one_minus = (1 << 29) - half_denominator_times_x
        x = x + saturating_shl32(srdhm(x, one_minus), 2)
    return saturating_shl32(x, 1)


def _clz32(x):
    x = _i64(x) & 0xFFFFFFFF
    out = np.full(x.shape, 32, dtype=np.int64)
    nz = x != 0
    out[nz] = 31 - np.floor(np.log2(x[nz].astype(np.float64))).astype(np.int64)
    # log2 of a float64 is exact for powers of two and monotonic: fix any off-by-one at the edges
    hi = np.where(nz, (x >> (31 - out)), 1)
    out = np.where(nz & (hi == 0), out - 1, out)
    return out


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal: (reciprocal in Q0.31, num_bits_over_unit)."""
    x = _i64(x)
    headroom_plus_one = _clz32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit
