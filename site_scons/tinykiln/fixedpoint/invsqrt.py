"""TFLite's inverse square root, GetInvSqrtQuantizedMultiplierExp (L2_NORMALIZATION's per-row
scale), in its two forms that must agree bit for bit: the numpy model (tests, and the ground
truth checked against LiteRT) and the TIR expressions of its steps (TE computes). Built from the
primitives of reference.py and te.py (a module of its own, as fused.py, so that the kernels
built on those keep their generator digest).

For int32 x >= 0: x <= 1 gives (INT32_MAX, 0). Otherwise x is normalised into [2^27, 2^29): one
division by 4 if x >= 2^29 (x < 2^31, so once is enough), then a left shift by an even number of
bits; five Newton-Raphson steps in Q3.28 from 1.0 give 1/sqrt; times sqrt(2)/2; a negative shift
is folded into the multiplier (an int32 left shift, which wraps as the C code does); the shift
is finally multiplied by reverse_shift (-1 for L2_NORMALIZATION: a right shift).
"""
from __future__ import annotations

import numpy as np

from . import INT32_MAX
from .reference import _clz32, rdbpot, saturating_shl32, srdhm, wrap32

HALF_THREE = (1 << 28) + (1 << 27)  # 1.5 in Q3.28
HALF_SQRT_2 = 1518500250  # sqrt(2) / 2 in Q0.31
NEWTON_STEPS = 5


def inv_sqrt_quantized_multiplier_exp(x, reverse_shift: int):
    """numpy: (multiplier, shift) arrays for int32 values x >= 0 (any integer array)."""
    x = np.asarray(x, dtype=np.int64)
    small = x <= 1
    big = x >= (1 << 29)
    shift = 11 + big.astype(np.int64)
    x = np.where(big, x >> 2, x)
    pairs = (_clz32(x) - 1) // 2 - 1
    shift = shift - pairs
    x = np.where(small, 1 << 27, x << (2 * np.where(small, 0, pairs)))
    half_input = rdbpot(x >> 1, 1)
    est = np.full(x.shape, 1 << 28, dtype=np.int64)  # 1.0 in Q3.28
    for _ in range(NEWTON_STEPS):
        est = newton_step(est, half_input)
    mult = srdhm(est, HALF_SQRT_2)
    negative = shift < 0
    mult = np.where(negative, wrap32(mult << np.where(negative, -shift, 0)), mult)
    shift = np.where(negative, 0, shift) * reverse_shift
    return np.where(small, INT32_MAX, mult), np.where(small, 0, shift)


def newton_step(est, half_input):
    """numpy: x = Rescale<3>(1.5 x - half_input * Rescale<3>(x^3)), all Q3.28."""
    cube = saturating_shl32(srdhm(srdhm(est, est), est), 6)  # Q9.22 -> Q3.28
    return saturating_shl32(wrap32(srdhm(HALF_THREE, est) - srdhm(half_input, cube)), 3)


# -- TIR (int64 expressions holding int32 values) -----------------------------------------------------

def te_clz32_nonneg(x):
    """CountLeadingZeros of 0 <= x < 2^31 (32 for 0): one comparison per bit, plain C."""
    from tvm import tirx

    from .te import const64

    return const64(32) - sum(tirx.Select(x >= const64(1 << bit), const64(1), const64(0)) for bit in range(31))


def te_newton_step(stage, step: int, est, half_input):
    """TIR of newton_step as a chain of stages, one primitive each (deep expressions make TVM's
    simplifier blow up and the C repeat every shared operand). stage(name, fn) makes a per-row
    int32 stage from fn(r) -> int64 expression and returns a function r -> its int64 value; est and
    half_input are such functions. Returns the new estimate's."""
    from .te import const64, te_saturating_shl, te_srdhm_select

    square = stage(f"square{step}", lambda r: te_srdhm_select(est(r), est(r)))
    cube = stage(f"cube{step}", lambda r: te_srdhm_select(square(r), est(r)))
    cube3 = stage(f"cube3_{step}", lambda r: te_saturating_shl(cube(r), 6))  # Q9.22 -> Q3.28
    linear = stage(f"linear{step}", lambda r: te_srdhm_select(const64(HALF_THREE), est(r)))
    product = stage(f"product{step}", lambda r: te_srdhm_select(half_input(r), cube3(r)))
    diff = stage(f"diff{step}", lambda r: linear(r) - product(r))  # an int32 stage: wraps as the C++ does
    return stage(f"newton{step}", lambda r: te_saturating_shl(diff(r), 3))


NEWTON_STAGES = ("square", "cube", "cube3_", "linear", "product", "diff", "newton")
