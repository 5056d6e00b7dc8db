"""Fused requantization: MultiplyByQuantizedMultiplier + the output zero point in a few instructions
per output (one SMMLAR or SMLAL), where build-time facts allow (no left shift, rs >= 1, bounded
accumulators), with the zero point and the roundings folded into per-channel constants.

The generic TE (te.te_multiply_by_quantized_multiplier) follows TFLite step by step and must handle
any shift at run time: ~30 instructions per output on a Cortex-M7. Each form here has three parts:
build-time constants, a numpy model of exactly what the generated C computes (tests compare it with
reference.multiply_by_quantized_multiplier), and the TE expression.
"""
from __future__ import annotations

import numpy as np

from . import INT32_MAX
from .te import te_multiply_by_quantized_multiplier

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
