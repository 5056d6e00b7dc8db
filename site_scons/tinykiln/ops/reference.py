"""numpy models of what LiteRT's reference kernels (BUILTIN_REF) compute, op by op.

The executable specification of the ops: tests check the generated kernels against them, and the
lowering folds them into constants at build time (the int8 activation tables, SOFTMAX's exponential
table, MEAN's multiplier). They are themselves checked bit for bit against LiteRT in
tests/kernels/test_tflite_math.py. Each function names the LiteRT code path it models; when LiteRT has
several paths, the one BUILTIN_REF takes in ai-edge-litert 2.3.0 (found by testing, not by reading
alone) is the one modelled. The fixed-point primitives they are made of are tinykiln.fixedpoint's.

Conventions: integer inputs may be any integer numpy array; arithmetic runs in int64 and the
results are wrapped or saturated exactly where the C++ code wraps or saturates. Float arithmetic
that LiteRT does in float32 is done in np.float32, operation by operation, in the same order.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from tinykiln.fixedpoint import INT32_MAX
from tinykiln.fixedpoint.prepare import (
    clamp_range_int8, quantize_multiplier, quantize_multiplier_greater_than_one, round_half_away,
)
from tinykiln.fixedpoint.reference import (
    exp_on_negative_values, get_reciprocal, multiply_by_quantized_multiplier, rdbpot, rdbpot16,
    saturating_shl16, sdhm16, srdhm, srdhm16, wrap16, wrap32,
)
from .rules import strided_slice_ranges


def f32(x) -> np.float32:
    return np.float32(x)


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


# -- elementwise activations ----------------------------------------------------------------------

def relu_x_int8(q, in_scale, in_zp, out_scale, out_zp, act_min: float, act_max: float | None):
    """RELU / RELU6 / RELU_N1_TO_1 on int8 (activations.cc QuantizedReluX -> ReluX): requantize the
    input to the output scale, then clamp to the quantized activation range."""
    qmin, qmax = clamp_range_int8(out_scale, out_zp, act_min, math.inf if act_max is None else act_max)
    m, s = quantize_multiplier(float(np.float64(np.float32(in_scale)) / np.float64(np.float32(out_scale))))
    y = out_zp + multiply_by_quantized_multiplier(_i64(q) - in_zp, m, s)
    return np.clip(y, qmin, qmax).astype(np.int8)


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
        r = saturating_shl16(r, e - 1)
    r = wrap16(srdhm16(r, p["reluish_multiplier"]))
    if e > 0:
        r = saturating_shl16(r, 1)
    if e < 0:
        r = rdbpot16(r, -e)
    r = wrap16((r + (1 << 15)) >> 1)
    pre = wrap16(sdhm16(r, x_pre_out))
    out = rdbpot16(pre, -p["output_exponent"])
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


def softmax_input_real_multiplier(in_scale, beta) -> float:
    """PreprocessSoftmaxScaling's real multiplier; TFLite (and TFLite Micro) abort unless it is > 1."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    return min(float(f32(beta)) * float(f32(in_scale)) * (1 << (31 - bits)), (1 << 31) - 1.0)


def softmax_params(in_scale, beta) -> dict:
    """SoftmaxPrepare (kReference): PreprocessSoftmaxScaling and the diff_min cut-off."""
    bits = SOFTMAX_SCALED_DIFF_INTEGER_BITS
    real = softmax_input_real_multiplier(in_scale, beta)
    m, left_shift = quantize_multiplier_greater_than_one(real)
    max_input_rescaled = 1.0 * ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift)
    diff_min = -int(math.floor(max_input_rescaled))
    return {"input_multiplier": m, "input_left_shift": left_shift, "diff_min": diff_min}


def softmax_int8(q, in_scale, beta) -> np.ndarray:
    """SOFTMAX int8 -> int8 (output scale 1/256, zero point -128): reference_ops::Softmax, the
    gemmlowp fixed-point path (exp in Q5.26 -> Q0.31, sum in Q12.19, Newton-Raphson reciprocal)."""
    p = softmax_params(in_scale, beta)
    q = _i64(q)
    diff = q - q.max(axis=-1, keepdims=True)
    valid = diff >= p["diff_min"]
    rescaled = srdhm(wrap32(diff * (1 << p["input_left_shift"])), p["input_multiplier"])
    exps = exp_on_negative_values(rescaled, SOFTMAX_SCALED_DIFF_INTEGER_BITS)
    acc_terms = np.where(valid, rdbpot(exps, SOFTMAX_ACCUMULATION_INTEGER_BITS), 0)
    sum_of_exps = acc_terms.sum(axis=-1, keepdims=True)
    recip, bits_over_unit = get_reciprocal(sum_of_exps, SOFTMAX_ACCUMULATION_INTEGER_BITS)
    exponent = bits_over_unit + 31 - 8
    unsat = rdbpot(srdhm(recip, exps), exponent)
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

def strided_slice(x, begin, end, strides, **masks) -> np.ndarray:
    x = np.asarray(x)
    ranges, out_shape = strided_slice_ranges(x.shape, begin, end, strides, **masks)
    idx = tuple(slice(s, (None if e < 0 else e), st) for s, e, st in ranges)
    return x[idx].reshape(out_shape)
