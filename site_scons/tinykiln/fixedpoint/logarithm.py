"""TFLite's fixed-point logarithm, log_x_for_x_greater_than_or_equal_to_1 (LOG_SOFTMAX's log of the
sum of exponentials), in its two forms that must agree bit for bit: the numpy model (the ground
truth, checked against LiteRT through LOG_SOFTMAX) and the TIR of its steps, one stage each (TE
computes). Built from the primitives of reference.py and te.py (a module of its own, as fused.py,
so that the kernels built on those keep their generator digest).

For x > 0 in Q(in_bits).(31 - in_bits), the result is log(x) in Q(out_bits).(31 - out_bits):
x is normalised two ways (by its leading zeros, and after a multiplication by sqrt(1/2)); the
smaller mantissa r in [sqrt(1/2), 1) and the larger power of two (both as Q(out_bits+1) with a
quarter added/subtracted) are kept; log(r) comes from a rational approximation around
sqrt(sqrt(1/2)) (constants alpha_*) and gemmlowp's 1/(1+x); the power of two times log(2) is added.
FixedPoint arithmetic: a product is SaturatingRoundingDoublingHighMul, a sum wraps in int32,
Rescale is a saturating shift left or RoundingDivideByPOT.
"""
from __future__ import annotations

import numpy as np

from . import INT32_MAX, INT32_MIN
from .reference import _clz32, _one_over_one_plus_x_for_x_in_0_1, rdbpot, saturating_shl32, srdhm, wrap32

LOG_2 = 1488522236
SQRT_SQRT_HALF = 1805811301
SQRT_HALF = 1518500250
ONE_QUARTER = 536870912
ALPHA_N = 117049297
ALPHA_D = 127690142
ALPHA_I = 1057819769
ALPHA_F = 638450708


def _shl_param(x, exponent):
    """SaturatingRoundingMultiplyByPOTParam with exponent >= 0 (possibly an array)."""
    return np.clip(np.asarray(x, np.int64) << np.asarray(exponent, np.int64), INT32_MIN, INT32_MAX)


def _rounding_half_sum(a, b):
    s = np.asarray(a, np.int64) + np.asarray(b, np.int64)
    t = s + np.where(s >= 0, 1, -1)
    return np.where(t >= 0, t // 2, -((-t) // 2))  # C's division truncates


def log_x_ge_1(x, in_bits: int, out_bits: int) -> np.ndarray:
    """numpy: log_x_for_x_greater_than_or_equal_to_1<out_bits, in_bits> on int32 raw values x > 0."""
    accum = out_bits + 1
    x = np.asarray(x, np.int64)
    shifted_quarter = int(rdbpot(ONE_QUARTER, accum))
    hp1 = _clz32(x)
    r_a = _shl_param(srdhm(_shl_param(x, hp1 - 1), SQRT_HALF), 1)
    za_pow2 = np.clip(_shl_param(in_bits - hp1, 31 - accum) + shifted_quarter, INT32_MIN, INT32_MAX)
    z_b = srdhm(x, SQRT_HALF)
    zb_headroom = _clz32(z_b) - 1
    r_b = _shl_param(x, zb_headroom)
    zb_pow2 = np.clip(_shl_param(in_bits - zb_headroom, 31 - accum) - shifted_quarter, INT32_MIN, INT32_MAX)
    r = np.minimum(r_a, r_b)
    pow2 = np.maximum(za_pow2, zb_pow2)
    p = _rounding_half_sum(r, SQRT_SQRT_HALF)
    q = wrap32(r - SQRT_SQRT_HALF)
    q = wrap32(q + q)
    common_sq = srdhm(q, q)
    num = wrap32(srdhm(q, r) + srdhm(srdhm(q, common_sq), ALPHA_N))
    denom = wrap32(srdhm(p, wrap32(wrap32(ALPHA_I + q) + srdhm(ALPHA_D, common_sq))) + srdhm(ALPHA_F, q))
    recip = _one_over_one_plus_x_for_x_in_0_1(denom)
    num_scaled = rdbpot(num, accum)  # Rescale<accum> of a Q0.31
    total = wrap32(srdhm(pow2, LOG_2) + srdhm(num_scaled, recip))
    return saturating_shl32(total, accum - out_bits) if accum > out_bits else total


# -- TIR (stages of int32 values, read back as int64 expressions) ------------------------------------

def te_log_x_ge_1(stage, x, in_bits: int, out_bits: int):
    """TIR of log_x_ge_1 as a chain of stages, one or two primitives each. stage(name, fn) makes a
    per-row int32 stage from fn(r) -> int64 expression and returns r -> its int64 value; x is such
    a function. Returns the result's. Stage names start with "log_" (LOG_STAGES, in order)."""
    from tvm import tirx

    from .invsqrt import te_clz32_nonneg
    from .te import const64 as c64
    from .te import te_rdbpot_select, te_saturating_shl, te_srdhm_select

    accum = out_bits + 1

    def shl_param(v, e):  # saturating v << e for 0 <= e <= 31: a Select on gemmlowp's threshold
        threshold = (c64(1) << (c64(31) - e)) - c64(1)
        return tirx.Select(v > threshold, c64(INT32_MAX),
                           tirx.Select(v < c64(0) - threshold, c64(INT32_MIN), v << e))

    def clamp32(v):
        return tirx.Select(v > c64(INT32_MAX), c64(INT32_MAX), tirx.Select(v < c64(INT32_MIN), c64(INT32_MIN), v))

    def srdhm(a, b):
        return te_srdhm_select(a, b)

    quarter = int(rdbpot(ONE_QUARTER, accum))
    hp1 = stage("log_hp1", lambda r: te_clz32_nonneg(x(r)))
    ra0 = stage("log_ra0", lambda r: shl_param(x(r), hp1(r) - c64(1)))
    ra1 = stage("log_ra1", lambda r: srdhm(ra0(r), c64(SQRT_HALF)))
    r_a = stage("log_ra", lambda r: te_saturating_shl(ra1(r), 1))
    za0 = stage("log_za0", lambda r: shl_param(c64(in_bits) - hp1(r), c64(31 - accum)))
    za = stage("log_za", lambda r: clamp32(za0(r) + c64(quarter)))
    zb = stage("log_zb", lambda r: srdhm(x(r), c64(SQRT_HALF)))
    zbh = stage("log_zbh", lambda r: te_clz32_nonneg(zb(r)) - c64(1))
    r_b = stage("log_rb", lambda r: shl_param(x(r), zbh(r)))
    zb0 = stage("log_zb0", lambda r: shl_param(c64(in_bits) - zbh(r), c64(31 - accum)))
    zb2 = stage("log_zb2", lambda r: clamp32(zb0(r) - c64(quarter)))
    rr = stage("log_r", lambda r: tirx.min(r_a(r), r_b(r)))
    pow2 = stage("log_pow2", lambda r: tirx.max(za(r), zb2(r)))

    def half_sum(r):
        s = rr(r) + c64(SQRT_SQRT_HALF)
        return tirx.truncdiv(s + tirx.Select(s >= c64(0), c64(1), c64(-1)), c64(2))

    p = stage("log_p", half_sum)
    q = stage("log_q", lambda r: (rr(r) - c64(SQRT_SQRT_HALF)) * c64(2))  # two int32 adds: wraps in the stage
    sq = stage("log_sq", lambda r: srdhm(q(r), q(r)))
    qsq = stage("log_qsq", lambda r: srdhm(q(r), sq(r)))
    num = stage("log_num", lambda r: srdhm(q(r), rr(r)) + srdhm(qsq(r), c64(ALPHA_N)))
    inner = stage("log_inner", lambda r: c64(ALPHA_I) + q(r) + srdhm(c64(ALPHA_D), sq(r)))
    denom = stage("log_denom", lambda r: srdhm(p(r), inner(r)) + srdhm(c64(ALPHA_F), q(r)))
    recip = te_one_over_one_plus_x(stage, denom)
    scaled = stage("log_scaled", lambda r: te_rdbpot_select(num(r), c64(accum)))
    total = stage("log_total", lambda r: srdhm(pow2(r), c64(LOG_2)) + srdhm(scaled(r), recip(r)))
    if accum > out_bits:
        return stage("log_out", lambda r: te_saturating_shl(total(r), accum - out_bits))
    return total


def te_one_over_one_plus_x(stage, a):
    """TIR of gemmlowp's one_over_one_plus_x_for_x_in_0_1 as stages (names "log_recip*")."""
    from tvm import tirx

    from .te import const64 as c64
    from .te import te_saturating_shl, te_srdhm_select

    def half_denominator(r):  # RoundingHalfSum(a, 1.0)
        s = a(r) + c64(INT32_MAX)
        return tirx.truncdiv(s + tirx.Select(s >= c64(0), c64(1), c64(-1)), c64(2))

    half = stage("log_recip_half", half_denominator)
    est = stage("log_recip0", lambda r: c64(1515870810) + te_srdhm_select(half(r), c64(-1010580540)))
    for step in range(1, 4):
        product = stage(f"log_recip_hx{step}", lambda r, e=est: te_srdhm_select(half(r), e(r)))
        est = stage(f"log_recip{step}", lambda r, e=est, h=product: e(r) + te_saturating_shl(
            te_srdhm_select(e(r), c64(1 << 29) - h(r)), 2))
    return stage("log_recip", lambda r: te_saturating_shl(est(r), 1))


LOG_STAGES = (["log_hp1", "log_ra0", "log_ra1", "log_ra", "log_za0", "log_za", "log_zb", "log_zbh", "log_rb",
               "log_zb0", "log_zb2", "log_r", "log_pow2", "log_p", "log_q", "log_sq", "log_qsq", "log_num",
               "log_inner", "log_denom", "log_recip_half", "log_recip0"]
              + [f"log_recip{n}{s}" for s in range(1, 4) for n in ("_hx", "")]
              + ["log_recip", "log_scaled", "log_total", "log_out"])
