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
4. Fused forms (end of this file): where build-time facts allow (no left shift, rs >= 1, bounded
   accumulators), the same results in a few instructions per output (one SMMLAR or SMLAL), with
   the output zero point and the roundings folded into per-channel constants. Each has a numpy
   model of the generated code that tests compare with (2).

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


# --------------------------------------------------------------------------- fused requantization
#
# The generic TE above follows TFLite step by step and must handle any shift at run time: ~30
# instructions per output on a Cortex-M7. When build-time facts allow it (the usual case), the same
# results come from a few 32-bit operations around one SMLAL. Each form has three parts here:
# build-time constants, a numpy model of exactly what the generated C computes (tests compare it
# with multiply_by_quantized_multiplier), and the TE expression.
#
# Double rounding (CONV_2D, DEPTHWISE_CONV_2D, ADD...), multiplier m in [2^30, 2^31), right shift
# rs = -shift >= 1 (no left shift), output zero point zp, |x| < 2^30:
#   SRDHM(x, m) = floor((x*m + 2^30) / 2^31)            (gemmlowp's nudge + truncation, m > 0)
#   RDBPOT(h, rs) = floor((h + 2^(rs-1) - [h < 0]) / 2^rs)
# and [h < 0] may be replaced by [x < 0] (they differ only for h = 0, where it does not matter), so
#   MBQM(x) + zp = floor((2x*m + 2^31 + (c - [x < 0]) * 2^32) / 2^(32 + rs)),  c = (2zp + 1) * 2^(rs-1)
# (one floor of floors). In C: hi = c + (x2 >> 31) with x2 = 2x, then the high word of
# ((int64)hi << 32 | 2^31) + (int64)x2 * m -- GCC makes that MOV + SMLAL -- shifted right by rs.
FUSED_X_LIMIT = 1 << 30  # |x| below this: 2x fits int32
_FUSED_MAX_RS = 22       # c = (2zp + 1) * 2^(rs-1) stays below 2^30 for |zp| <= 128


def fused_double_shift(multiplier: int, shift: int) -> int | None:
    """rs - 1 of the fused double-rounding form for one (multiplier, shift) pair of
    quantize_multiplier, or None when the form does not apply (a left shift, rs = 0, or a shift so
    large that the rounding constant would not fit). A zero multiplier gives zp whatever rs is."""
    if multiplier == 0:
        return 0
    if not (1 << 30) <= multiplier < (1 << 31):
        return None
    rs = -shift
    if not 1 <= rs <= _FUSED_MAX_RS:
        return None
    return rs - 1


def fused_double_constant(shift1: int, zero_point: int) -> int:
    """c of the fused double-rounding form: (2 zp + 1) << (rs - 1), the output zero point and the
    half of RoundingDivideByPOT, both in units of its result's last bit."""
    return (2 * zero_point + 1) << shift1


def requantize_fused_double(x, multiplier, shift1, zero_point) -> np.ndarray:
    """numpy model of the generated code: MultiplyByQuantizedMultiplier(x, m, -(shift1 + 1)) + zp,
    for |x| < FUSED_X_LIMIT and multipliers/shifts accepted by fused_double_shift."""
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    shift1 = np.asarray(shift1, dtype=np.int64)
    x2 = x * 2
    hi = (np.int64(2 * zero_point + 1) << shift1) + (x2 >> 31)
    g = ((hi << 32) + (1 << 31) + x2 * m) >> 32
    return (g >> shift1) >> 1


def te_requantize_fused_double(x, multiplier, shift1, zero_point: int, doubled=False):
    """TIR of requantize_fused_double: int32 x (2x already if `doubled`); multiplier and shift1
    Python ints (constants) or int32 PrimExprs (per-channel loads); int32 result (not clamped). The
    rounded high word is tk_rq_mulhi (runtime/kernels/tk_rq.h: one SMMLAR on Cortex-M DSP cores).
    The final >> 1 comes last so that the SSAT of the clamp takes it into its operand."""
    from tvm import tirx

    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    # x << 1, not x * 2: TVM would distribute a later cast over the product
    x2 = x if doubled else x << i32(1)
    if isinstance(shift1, int):
        c = i32(fused_double_constant(shift1, zero_point))
        mult = i32(multiplier)
        shift1 = i32(shift1)
    else:
        # shifted as unsigned: a negative constant shifted left is undefined in C (-Wextra warns)
        k = tirx.const((2 * zero_point + 1) & 0xFFFFFFFF, "uint32")
        c = (k << shift1.astype("uint32")).astype("int32")
        mult = multiplier
    hi = c + (x2 >> i32(31))
    g = tirx.call_pure_extern("int32", "tk_rq_mulhi", x2, mult, hi)
    return (g >> shift1) >> i32(1)


def te_requantize(x, multiplier: int, shift: int, zero_point: int, x_bound: int, doubled=False):
    """MultiplyByQuantizedMultiplier(x, multiplier, shift) + zero_point (int32, not clamped) for
    constant (per-tensor) multipliers and |x| <= x_bound: the fused form where it applies, else
    TFLite's steps. doubled: the expression is 2x (even, |2x| < 2^31), which saves the fused form a
    shift."""
    from tvm import tirx

    shift1 = fused_double_shift(multiplier, shift)
    if shift1 is not None and x_bound < FUSED_X_LIMIT:
        return te_requantize_fused_double(x, multiplier, shift1, zero_point, doubled=doubled)
    if doubled:
        x = x >> tirx.const(1, "int32")
    return te_multiply_by_quantized_multiplier(x, multiplier, shift, may_saturate=False) + tirx.const(
        zero_point, "int32")


# Single rounding (FULLY_CONNECTED): (x*m + 2^(T-1)) >> T with T = 31 - shift and x = acc + bias.
# Everything but acc*m is a per-channel constant: offset = bias*m + 2^(T-1) + zp*2^T (int64), so
#   MBQM_single(acc + bias) + zp = (acc*m + offset) >> T      (one SMLAL, one shift)
# with T >= 32 read from the high word alone: (int32)((acc*m + offset) >> 32) >> (T - 32).
_INT64_LIMIT = 1 << 63


def fused_single_offset(bias: int, multiplier: int, shift: int, zero_point: int) -> int:
    total = 31 - shift
    return bias * multiplier + (1 << (total - 1)) + zero_point * (1 << total)


def fused_single_fits(acc_bound: int, bias: int, multiplier: int, shift: int, zero_point: int) -> bool:
    """The fused single-rounding form is exact for |acc| <= acc_bound: acc + bias does not wrap in
    int32 (as TFLite computes it), and acc*m + offset stays inside int64."""
    total = 31 - shift
    if not 1 <= total <= 62 or not 0 <= multiplier < (1 << 31):
        return False
    if acc_bound + abs(bias) > INT32_MAX:
        return False
    worst = acc_bound * multiplier + abs(bias) * multiplier + (1 << (total - 1)) + 128 * (1 << total)
    return worst < _INT64_LIMIT


def requantize_fused_single(acc, multiplier, offset, shift) -> np.ndarray:
    """numpy model of the generated code (exact Python ints: the int64 sum cannot overflow where
    fused_single_fits)."""
    acc = [int(a) for a in np.ravel(acc)]
    mult, offs, shifts = (np.broadcast_to(np.asarray(v, dtype=object), (len(acc),)) for v in
                          (multiplier, offset, shift))
    return np.array([(a * int(m) + int(o)) >> (31 - int(s)) for a, m, o, s in zip(acc, mult, offs, shifts)],
                    dtype=np.int64)


def te_requantize_fused_single(acc, multiplier, offset, post=None, shift=None):
    """TIR of the fused single rounding: int32 acc, int64 offset (PrimExpr). Per-tensor: multiplier
    and shift are Python ints, the total shift 31 - shift a constant. Per-channel: multiplier and
    post (= T - 32 >= 0) int32 PrimExprs, and the high word is shifted by post."""
    from tvm import tirx

    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    if isinstance(multiplier, int):
        total = acc.astype("int64") * i64(multiplier) + offset
        return (total >> i64(31 - shift)).astype("int32")
    total = acc.astype("int64") * multiplier.astype("int64") + offset
    return (total >> i64(32)).astype("int32") >> post
