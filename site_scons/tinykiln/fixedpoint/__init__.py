"""TFLite's fixed-point arithmetic, the one library every op and test uses, in forms that must agree
bit for bit:

    prepare.py    build time (plain Python): what TFLite's Prepare functions compute, with their exact
                  float/double steps: quantize_multiplier (real scale -> int32 multiplier, shift),
                  the clamp bounds of fused activations.
    reference.py  numpy (int64 arrays): gemmlowp's primitives (SRDHM, RDBPOT, saturating shifts),
                  MultiplyByQuantizedMultiplier in its two roundings, gemmlowp's exp and reciprocal.
                  The ground truth of the tests, and used at build time to fold constants (tables).
    te.py         TIR expressions (for TE computes) of the same arithmetic, the forms the generated C
                  runs.
    fused.py      the requantization in a few instructions per output (one SMMLAR or SMLAL) where
                  build-time facts allow: constants, numpy model of the generated C, TE expression.

TFLite semantics (gemmlowp), for int32 x, multiplier m in [2^30, 2^31) (or 0) and shift s:
    left = max(s, 0); right = max(-s, 0)
    MBQM(x) = RDBPOT(SRDHM(x * 2^left, m), right)
where x * 2^left wraps to int32 like the C code on every target we build for, SRDHM is
SaturatingRoundingDoublingHighMul and RDBPOT RoundingDivideByPOT (both round half away from zero).
`tvm.tirx.q_multiply_shift` rounds once, half up, so it is not used.

The numpy models of whole ops (softmax, mean, the activation tables...) are in tinykiln.ops.reference.
"""
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
