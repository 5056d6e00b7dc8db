"""numpy models of the integer (and float) arithmetic LiteRT's reference kernels (BUILTIN_REF) run.

These are the executable specification the TE computes in ops/ are checked against, and they are
themselves checked bit for bit against LiteRT in tests/test_tflite_math.py. Each function names the
LiteRT code path it models; when LiteRT has several paths, the one BUILTIN_REF takes in
ai-edge-litert 2.3.0 (found by testing, not by reading alone) is the one modelled.

Conventions: integer inputs may be any integer numpy array; arithmetic runs in int64 and the
results are wrapped or saturated exactly where the C++ code wraps or saturates. Float arithmetic
that LiteRT does in float32 is done in np.float32, operation by operation, in the same order.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


# -- scalar helpers used at build time ------------------------------------------------------------

def round_half_away(x: float) -> float:
    """C's round()/TfLiteRound: halves go away from zero (Python's round() goes to even)."""
    return math.copysign(math.floor(abs(x) + 0.5), x)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier (double-rounding build): real ~= m * 2^(shift - 31), m in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = int(round_half_away(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierGreaterThanOne: the same with a left shift >= 0."""
    m, shift = quantize_multiplier(real)
    return m, shift


def f32(x) -> np.float32:
    return np.float32(x)


# -- gemmlowp / TFLite fixed-point primitives (vectorised) ----------------------------------------

def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap32(x) -> np.ndarray:
    """Two's complement wrap to int32 (what C's int32 arithmetic does on every target we run on)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap16(x) -> np.ndarray:
    x = _i64(x)
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


def srdhm32(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul for int32: round(a*b / 2^31), halves away from 0."""
    a, b = _i64(a), _i64(b)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    return np.where(overflow, INT32_MAX, q)


def srdhm16(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul for int16."""
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


def rdbypot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT on int32 values: x / 2^exponent, halves away from zero."""
    x = _i64(x)
    e = _i64(exponent)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def rdbypot16(x, exponent: int) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT on int16 values (mask and threshold are int16 too)."""
    x = _i64(x)
    mask = int(wrap16((1 << exponent) - 1))
    remainder = wrap16(x & mask)
    threshold = wrap16((mask >> 1) + (x < 0))
    return wrap16((x >> exponent) + (remainder > threshold))


def saturating_shl32(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT with a positive exponent (int32)."""
    x = _i64(x)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, wrap32(x << exponent)))


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """TFLite MultiplyByQuantizedMultiplier (double rounding, the default build LiteRT ships)."""
    x = _i64(x)
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rdbypot(srdhm32(wrap32(x * (np.int64(1) << left)), multiplier), right)


# -- elementwise activations ----------------------------------------------------------------------

def relu_x_int8(q, in_scale, in_zp, out_scale, out_zp, act_min: float, act_max: float | None):
    """RELU / RELU6 / RELU_N1_TO_1 on int8 (activations.cc QuantizedReluX -> ReluX): requantize the
    input to the output scale, then clamp to the quantized activation range."""
    qmin, qmax = activation_range_int8(out_scale, out_zp, act_min, act_max)
    m, s = quantize_multiplier(float(np.float64(np.float32(in_scale)) / np.float64(np.float32(out_scale))))
    y = out_zp + multiply_by_quantized_multiplier(_i64(q) - in_zp, m, s)
    return np.clip(y, qmin, qmax).astype(np.int8)


def activation_range_int8(out_scale, out_zp, act_min: float, act_max: float | None) -> tuple[int, int]:
    """Quantized bounds of a ReLU-like clamp, as QuantizedReluX computes them: float division by the
    output scale, roundf, then limited to the int8 range. act_max None means unbounded."""
    lo = max(-128, out_zp + int(round_half_away(float(f32(act_min) / f32(out_scale)))))
    if act_max is None:
        hi = 127
    else:
        hi = min(127, out_zp + int(round_half_away(float(f32(act_max) / f32(out_scale)))))
    return lo, hi


def leaky_relu_int8(q, in_scale, in_zp, out_scale, out_zp, alpha: float):
    """LEAKY_RELU on int8 (reference_ops::QuantizeLeakyRelu): one multiplier for x >= 0, one for x < 0."""
    in_scale, out_scale, alpha = float(f32(in_scale)), float(f32(out_scale)), float(f32(alpha))
    m_a, s_a = quantize_multiplier(in_scale * alpha / out_scale)
    m_i, s_i = quantize_multiplier(in_scale / out_scale)
    x = _i64(q) - in_zp
    neg_alpha = m_a < 0
    ident = multiply_by_quantized_multiplier(x, m_i, s_i)
    scaled = multiply_by_quantized_multiplier(x, abs(m_a), s_a)
    y = out_zp + np.where(x >= 0, ident, -scaled if neg_alpha else scaled)
    return np.clip(y, -128, 127).astype(np.int8)


def _downscale_to_int16_multiplier(m32: int) -> int:
    if m32 >= INT32_MAX - (1 << 15):
        return 32767
    return (m32 + (1 << 15)) >> 16


def hard_swish_params(in_scale, in_zp, out_scale, out_zp) -> dict:
    """HardSwishPrepare: the float32 arithmetic that derives the two int16 multipliers."""
    in_scale, out_scale = f32(in_scale), f32(out_scale)
    hires_input_scale = f32(1.0 / 128.0) * in_scale
    reluish_scale = f32(3.0) / f32(32768.0)
    out_m32, out_exp = quantize_multiplier(float(hires_input_scale / out_scale))
    rel_m32, rel_exp = quantize_multiplier(float(hires_input_scale / reluish_scale))
    return {
        "input_zero_point": int(in_zp),
        "output_zero_point": int(out_zp),
        "output_multiplier": _downscale_to_int16_multiplier(out_m32),
        "output_exponent": out_exp,
        "reluish_multiplier": _downscale_to_int16_multiplier(rel_m32),
        "reluish_exponent": rel_exp,
    }


def _saturating_shl16(x, amount: int):
    return np.clip(_i64(x) * (1 << amount), -32768, 32767)


def hard_swish_int8(q, in_scale, in_zp, out_scale, out_zp):
    """HARD_SWISH on int8 (reference_ops::HardSwish, 16-bit fixed point)."""
    p = hard_swish_params(in_scale, in_zp, out_scale, out_zp)
    if p["output_exponent"] > 0:
        raise ValueError("LiteRT rejects HARD_SWISH whose output multiplier exceeds 1")
    x = wrap16(_i64(q) - p["input_zero_point"])
    x_hires = wrap16(x * 128)
    x_pre_out = wrap16(srdhm16(x_hires, p["output_multiplier"]))
    r = x_hires
    e = p["reluish_exponent"]
    if e > 0:
        r = _saturating_shl16(r, e - 1)
    r = wrap16(srdhm16(r, p["reluish_multiplier"]))
    if e > 0:
        r = _saturating_shl16(r, 1)
    if e < 0:
        r = rdbypot16(r, -e)
    r = wrap16((r + (1 << 15)) >> 1)
    pre = wrap16(sdhm16(r, x_pre_out))
    out = rdbypot16(pre, -p["output_exponent"])
    out = wrap16(out + p["output_zero_point"])
    return np.clip(out, -128, 127).astype(np.int8)


# -- table-driven activations (LOGISTIC, TANH) ----------------------------------------------------

def _libm():
    """The C library's float functions: LiteRT fills its tables with expf/tanhf from libm, and
    numpy's own float32 exp is a different implementation that can differ in the last bit."""
    name = ctypes.util.find_library("m")
    lib = ctypes.CDLL(name)
    for fn in ("expf", "tanhf"):
        getattr(lib, fn).restype = ctypes.c_float
        getattr(lib, fn).argtypes = [ctypes.c_float]
    return lib


_LIBM = None


def _cfloat(fn: str, x: np.float32) -> np.float32:
    global _LIBM
    if _LIBM is None:
        _LIBM = _libm()
    return np.float32(getattr(_LIBM, fn)(float(x)))


def _logistic_f32(x: np.float32) -> np.float32:
    return f32(1.0) / (f32(1.0) + _cfloat("expf", -x))


def _tanh_f32(x: np.float32) -> np.float32:
    return _cfloat("tanhf", x)


def lut_int8(fn, in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """LUTPopulate<int8_t>: out[q + 128] for q in -128..127, computed in float32 like LiteRT."""
    in_scale, out_scale = f32(in_scale), f32(out_scale)
    inverse_scale = f32(1.0) / out_scale
    table = np.empty(256, dtype=np.int8)
    for i, val in enumerate(range(-128, 128)):
        dequantized = in_scale * f32(val - in_zp)
        transformed = fn(dequantized)
        rescaled = round_half_away(float(f32(transformed * inverse_scale)))
        quantized = int(f32(f32(rescaled) + f32(out_zp)))  # float add, then truncating cast
        table[i] = min(127, max(-128, quantized))
    return table


def logistic_lut_int8(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    return lut_int8(_logistic_f32, in_scale, in_zp, out_scale, out_zp)


def tanh_lut_int8(in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    return lut_int8(_tanh_f32, in_scale, in_zp, out_scale, out_zp)


def apply_lut_int8(q, table: np.ndarray) -> np.ndarray:
    return table[_i64(q) + 128]


# -- SOFTMAX --------------------------------------------------------------------------------------

SOFTMAX_SCALED_DIFF_INTEGER_BITS = 5
SOFTMAX_ACCUMULATION_INTEGER_BITS = 12


def softmax_params(in_scale, beta) -> dict:
    """SoftmaxPrepare (kReference): PreprocessSoftmaxScaling and the diff_min cut-off."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = min(float(f32(beta)) * float(f32(in_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)
    m, left_shift = quantize_multiplier_greater_than_one(real)
    max_input_rescaled = 1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift)
    diff_min = -int(math.floor(max_input_rescaled))
    return {"input_multiplier": m, "input_left_shift": left_shift, "diff_min": diff_min}


def _exp_on_interval_neg_quarter_to_0(a):
    """gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl, Q0.31 in and out."""
    constant_term = 1895147668
    constant_1_over_3 = 715827883
    x = a + (1 << 28)
    x2 = srdhm32(x, x)
    x3 = srdhm32(x2, x)
    x4 = srdhm32(x2, x2)
    x4_over_4 = rdbypot(x4, 2)
    t = rdbypot(srdhm32(x4_over_4 + x3, constant_1_over_3) + x2, 1)
    return constant_term + srdhm32(constant_term, x + t)


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
            result = np.where((remainder & bit) != 0, srdhm32(result, multiplier), result)
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
    x = constant_48_over_17 + srdhm32(half_denominator, constant_neg_32_over_17)
    for _ in range(3):
        half_denominator_times_x = srdhm32(half_denominator, x)
        one_minus = (1 << 29) - half_denominator_times_x
        x = x + saturating_shl32(srdhm32(x, one_minus), 2)
    return saturating_shl32(x, 1)


def _clz32(x):
    x = _i64(x) & 0xFFFFFFFF
    out = np.full(x.shape, 32, dtype=np.int64)
    nz = x != 0
    out[nz] = 31 - np.floor(np.log2(x[nz].astype(np.float64))).astype(np.int64)
    # log2 of a float64 is exact for powers of two and monotonic: fix any off-by-one at the edges
    hi = np.where(nz, (x >> (31 - out)) , 1)
    out = np.where(nz & (hi == 0), out - 1, out)
    return out


def get_reciprocal(x, x_integer_digits: int):
    """TFLite GetReciprocal: (reciprocal in Q0.31, num_bits_over_unit)."""
    x = _i64(x)
    headroom_plus_one = _clz32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return _one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


def softmax_int8(q, in_scale, beta) -> np.ndarray:
    """SOFTMAX int8 -> int8 (output scale 1/256, zero point -128): reference_ops::Softmax, the
    gemmlowp fixed-point path (exp in Q5.26 -> Q0.31, sum in Q12.19, Newton-Raphson reciprocal)."""
    p = softmax_params(in_scale, beta)
    q = _i64(q)
    diff = q - q.max(axis=-1, keepdims=True)
    valid = diff >= p["diff_min"]
    rescaled = srdhm32(wrap32(diff * (1 << p["input_left_shift"])), p["input_multiplier"])
    exps = exp_on_negative_values(rescaled, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    acc_terms = np.where(valid, rdbypot(exps, SOFTMAX_ACCUMULATION_INTEGER_BITS), 0)
    sum_of_exps = acc_terms.sum(axis=-1, keepdims=True)
    recip, bits_over_unit = get_reciprocal(sum_of_exps, SOFTMAX_ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    unsat = rdbypot(srdhm32(recip, exps), exponent)
    out = np.clip(unsat - 128, -128, 127)
    return np.where(valid, out, -128).astype(np.int8)


def softmax_float(x, beta) -> np.ndarray:
    """SOFTMAX float32 (reference_ops::Softmax): exp((x - max) * beta) in float32, summed in order."""
    x = np.asarray(x, dtype=np.float32)
    beta = f32(beta)
    mx = x.max(axis=-1, keepdims=True)
    e = np.exp((x - mx) * beta).astype(np.float32)
    s = np.zeros(x.shape[:-1] + (1,), dtype=np.float32)
    for i in range(x.shape[-1]):
        s = (s + e[..., i:i + 1]).astype(np.float32)
    return (e / s).astype(np.float32)


# -- QUANTIZE / DEQUANTIZE ------------------------------------------------------------------------

def quantize_float_to_int8(x, out_scale, out_zp) -> np.ndarray:
    """QUANTIZE float32 -> int8 (reference_ops::AffineQuantize): roundf(x / scale) + zp, clamped."""
    x = np.asarray(x, dtype=np.float32)
    v = (x / f32(out_scale)).astype(np.float64)  # the division is float32; roundf is exact in double
    r = np.where(v >= 0, np.floor(v + 0.5), -np.floor(-v + 0.5))
    r = np.clip(r, -2.0**31, 2.0**31 - 1)
    return np.clip(r.astype(np.int64) + out_zp, -128, 127).astype(np.int8)


def requantize_int8(q, in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """QUANTIZE int8 -> int8 (reference_ops::Requantize): one MultiplyByQuantizedMultiplier."""
    m, s = quantize_multiplier(float(np.float64(f32(in_scale)) / np.float64(f32(out_scale))))
    y = multiply_by_quantized_multiplier(_i64(q) - in_zp, m, s) + out_zp
    return np.clip(y, -128, 127).astype(np.int8)


def dequantize_int8(q, scale, zp) -> np.ndarray:
    """DEQUANTIZE int8 -> float32: scale * (q - zp); the product is exact in double, so computing it
    in float32 gives the same correctly rounded result."""
    return (f32(scale) * (_i64(q) - zp).astype(np.float32)).astype(np.float32)


# -- MEAN -----------------------------------------------------------------------------------------

def mean_int8(q, axes, keep_dims: bool, in_scale, in_zp, out_scale, out_zp) -> np.ndarray:
    """MEAN int8 (reference_ops::QuantizedMeanOrSum, compute_sum=false): sum of (q - in_zp) in int32,
    requantized with in_scale/out_scale folded with 1/count into one multiplier."""
    q = _i64(q)
    axes = tuple(sorted({a % q.ndim for a in axes}))
    count = int(np.prod([q.shape[a] for a in axes], dtype=np.int64))
    total = q.sum(axis=axes, keepdims=keep_dims)
    m, shift = mean_multiplier(in_scale, out_scale, count)
    y = multiply_by_quantized_multiplier(total - in_zp * count, m, shift) + out_zp
    return np.clip(y, -128, 127).astype(np.int8)


def mean_multiplier(in_scale, out_scale, count: int) -> tuple[int, int]:
    """The multiplier and shift QuantizedMeanOrSum uses after folding in 1/count."""
    m, shift = quantize_multiplier(float(np.float64(f32(in_scale)) / np.float64(f32(out_scale))))
    s = 63 - (64 - int(count).bit_length())  # 63 - clz64(count) = floor(log2(count))
    s = min(s, 32, 31 + shift)
    m = int((m << s) // count)  # both positive: C++ division == floor division
    return m, shift - s


def mean_float(x, axes, keep_dims: bool) -> np.ndarray:
    """MEAN float32 (reference_ops::Mean): float32 sum in input order, then divide by the count."""
    x = np.asarray(x, dtype=np.float32)
    axes = tuple(sorted({a % x.ndim for a in axes}))
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(moved.shape[: x.ndim - len(axes)] + (-1,))
    s = np.zeros(flat.shape[:-1], dtype=np.float32)
    for i in range(flat.shape[-1]):
        s = (s + flat[..., i]).astype(np.float32)
    out = (s / f32(flat.shape[-1])).astype(np.float32)
    if keep_dims:
        out = np.expand_dims(out, axes)
    return out


# -- data movement --------------------------------------------------------------------------------

def strided_slice_ranges(shape, begin, end, strides, begin_mask=0, end_mask=0, ellipsis_mask=0,
                         new_axis_mask=0, shrink_axis_mask=0, offset=False):
    """Resolve TFLite STRIDED_SLICE operands to (start, stop, stride) per input dimension plus the
    output shape. Supports the masks TFLite supports on the reference path (ellipsis and new-axis
    masks are rejected by callers before this point if nonzero)."""
    if ellipsis_mask or new_axis_mask:
        raise ValueError("ellipsis_mask and new_axis_mask are not supported")
    rank = len(shape)
    begin = list(begin) + [0] * (rank - len(begin))
    end = list(end) + [0] * (rank - len(end))
    strides = list(strides) + [1] * (rank - len(strides))
    n_given = len(begin)
    ranges, out_shape = [], []
    for i in range(rank):
        dim = shape[i]
        stride = strides[i]
        if stride == 0:
            raise ValueError("stride 0")
        b, e = begin[i], end[i]
        if offset:
            e = b + e
        shrink = bool(shrink_axis_mask >> i & 1)
        # start
        if begin_mask >> i & 1:
            start = 0 if stride > 0 else dim - 1
        else:
            start = b + dim if b < 0 else b
            start = min(max(start, 0), dim) if stride > 0 else min(max(start, -1), dim - 1)
        if shrink:
            stop = start + 1
            stride = 1
        elif end_mask >> i & 1:
            stop = dim if stride > 0 else -1
        else:
            stop = e + dim if e < 0 else e
            stop = min(max(stop, 0), dim) if stride > 0 else min(max(stop, -1), dim - 1)
        ranges.append((start, stop, stride))
        if stride > 0:
            n = max(0, -(-(stop - start) // stride))
        else:
            n = max(0, -(-(start - stop) // -stride))
        if not shrink:
            out_shape.append(n)
    del n_given
    return ranges, tuple(out_shape)


def strided_slice(x, begin, end, strides, **masks) -> np.ndarray:
    x = np.asarray(x)
    ranges, out_shape = strided_slice_ranges(x.shape, begin, end, strides, **masks)
    idx = tuple(slice(s, (None if e < 0 else e), st) for s, e, st in ranges)
    return x[idx].reshape(out_shape)
