"""The fixed-point arithmetic as TIR expressions, for TE computes: what the generated C runs.

Two families of forms, both exact on every int32 input:
  - branch-free (te_multiply_by_quantized_multiplier and its helpers): shifts and adds instead of
    Select/min. TVM 0.27's simplifier wrongly drops a min() or Select() against INT32_MAX in these
    expressions, and a branch costs more on a Cortex-M than the arithmetic it replaces.
  - gemmlowp's literal steps with Select (te_srdhm_select, te_rdbpot_select, te_saturating_shl): the
    form SOFTMAX's reciprocal stages are written in. Its saturation case (INT32_MIN * INT32_MIN) cannot
    occur there (one operand is positive or a constant) and the simplifier keeps the Select in
    those stages (the generated C shows it), so the results are exact; the form stays because the
    generated C of SOFTMAX is pinned to it.
Every function takes and returns tirx PrimExprs; Python ints are folded as constants.
"""
from __future__ import annotations

from . import INT32_MAX, INT32_MIN


def te_multiply_by_quantized_multiplier_single(x, multiplier, shift):
    """TIR of reference.multiply_by_quantized_multiplier_single: int32 x, multiplier/shift ints or
    int32 PrimExprs; int64 intermediate, int32 result."""
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
            "high", te_srdhm(x64, mult, saturate),
            lambda high: te_rdbpot(high, right))).astype("int32")

    mult = multiplier.astype("int64")
    # Per-channel: only the product needs 64 bits (one SMULL on Arm); the shifts by a loaded
    # exponent stay in int32, which a 32-bit core does in one instruction each.
    zero32 = tirx.const(0, "int32")
    left = tirx.max(shift, zero32)
    right = tirx.max(zero32 - shift, zero32)
    # x * 2^left wraps in 32 bits as in the C reference; shifted as unsigned to stay defined C
    x_value = (x.astype("uint32") << left.astype("uint32")).astype("int32")
    high = te_srdhm(x_value.astype("int64"), mult, may_saturate).astype("int32")
    return te_rdbpot_int32(high, right)


def te_srdhm(a64, b64, saturate):
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


def te_rdbpot_int32(x, exponent):
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


def te_rdbpot(x64, exponent):
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


# -- gemmlowp's literal steps (SOFTMAX) -----------------------------------------------------------

def const64(value):
    """An int64 constant."""
    from tvm import tirx
    return tirx.const(int(value), "int64")


def te_srdhm_select(a, b):
    """SaturatingRoundingDoublingHighMul of two int32 values held in int64 expressions, as gemmlowp
    writes it (nudge by sign, truncating division, Select on the saturating case)."""
    from tvm import tirx

    ab = a * b
    nudge = tirx.Select(ab >= const64(0), const64(1 << 30), const64(1 - (1 << 30)))
    high = tirx.truncdiv(ab + nudge, const64(1 << 31))
    overflow = tirx.all(a == const64(INT32_MIN), b == const64(INT32_MIN))
    return tirx.Select(overflow, const64(INT32_MAX), high)


def te_rdbpot_select(x, exponent):
    """RoundingDivideByPOT as gemmlowp writes it: x / 2^exponent rounded half away from zero
    (x and exponent: int64 expressions)."""
    from tvm import tirx

    mask = (const64(1) << exponent) - const64(1)
    threshold = (mask >> const64(1)) + tirx.Select(x < const64(0), const64(1), const64(0))
    return (x >> exponent) + tirx.Select((x & mask) > threshold, const64(1), const64(0))


def te_saturating_shl(x, exponent: int):
    """SaturatingRoundingMultiplyByPOT with a positive exponent on an int32 value held in int64."""
    from tvm import tirx

    threshold = (1 << (31 - exponent)) - 1
    return tirx.Select(x > const64(threshold), const64(INT32_MAX),
                       tirx.Select(x < const64(-threshold), const64(INT32_MIN), x * const64(1 << exponent)))
