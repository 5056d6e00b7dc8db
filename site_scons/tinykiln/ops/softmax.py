"""SOFTMAX over the last axis: int8 -> int8 (fixed point) and float32.

int8 is LiteRT's reference kernel (reference_ops::Softmax, what BUILTIN_REF runs): per row,
    diff = x - max(row)                           (rows with diff < diff_min contribute nothing)
    e    = exp_on_negative_values(SRDHM(diff << left_shift, multiplier))   Q5.26 -> Q0.31
    sum  = sum(RoundingDivideByPOT(e, 12))        Q12.19
    r, n = GetReciprocal(sum)                     Newton-Raphson 1/(1+x), n = bits over unit
    out  = clamp(RoundingDivideByPOT(SRDHM(r, e), n + 23) - 128)
all in gemmlowp's fixed point, written here as TE expressions over int64 values that stay in the
int32 range (so the C compiler sees no overflow). The numpy model is tinykiln.tflite_math.softmax_int8.

float32 is reference_ops::Softmax<float>: exp((x - max) * beta), summed in order, then divided.

Schedule: the per-row max, sum and reciprocal are computed at the row loop (scalars, no buffer);
the exponential is recomputed in the sum and the output loops (no scratch array), as LiteRT does.
Knob: unroll (the inner loops over the row, unrolled by this factor).
"""
from __future__ import annotations

import numpy as np

from tinykiln import tflite_math as tm
from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
# beyond this row length the int32 sum of exponentials could overflow (LiteRT wraps; we refuse)
MAX_DEPTH = 4095


def lower_softmax(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    if tuple(x.shape) != tuple(y.shape) or len(x.shape) < 1:
        raise unsupported(op, f"input shape {x.shape}, output shape {y.shape}")
    depth = int(x.shape[-1])
    outer = int(np.prod(x.shape[:-1], dtype=np.int64))
    beta = float(op.attrs.get("beta", 1.0))
    attrs = {"outer": outer, "depth": depth}
    if x.dtype == "int8" and y.dtype == "int8":
        in_scale, _ = quant_params(x, "input", op)
        out_scale, out_zp = quant_params(y, "output", op)
        if out_zp != -128 or abs(out_scale - 1 / 256) > 1e-3 / 256:
            raise unsupported(op, f"int8 SOFTMAX output must have scale 1/256 and zero point -128 "
                                  f"(got {out_scale}, {out_zp}); re-quantize the model")
        if depth > MAX_DEPTH:
            raise unsupported(op, f"int8 SOFTMAX over {depth} classes (at most {MAX_DEPTH})")
        attrs.update(tm.softmax_params(in_scale, beta))
        family = "softmax_int8"
    elif x.dtype == "float32" and y.dtype == "float32":
        attrs["beta"] = beta
        family = "softmax_float32"
    else:
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    params = [param("input", x.dtype, (outer, depth), "input")]
    args = [x_index]
    if family == "softmax_float32":
        # beta as data: TVM prints float immediates with 7 digits, which does not round-trip
        params.append(param("beta", "float32", (1,), "const"))
        args.append(np.array([beta], dtype=np.float32))
    spec = ctx.spec(family, params + [param("output", y.dtype, (outer, depth), "output")], attrs)
    return [KernelCall(spec, op.index, args + [y_index])]


# --------------------------------------------------------------------------- fixed point in TE

def _c(value):
    from tvm import tirx
    return tirx.const(int(value), "int64")


def _srdhm(a, b):
    """SaturatingRoundingDoublingHighMul of two int32 values held in int64 expressions."""
    from tvm import tirx

    ab = a * b
    nudge = tirx.Select(ab >= _c(0), _c(1 << 30), _c(1 - (1 << 30)))
    high = tirx.truncdiv(ab + nudge, _c(1 << 31))
    overflow = tirx.all(a == _c(INT32_MIN), b == _c(INT32_MIN))
    return tirx.Select(overflow, _c(INT32_MAX), high)


def _rdbypot(x, exponent):
    """RoundingDivideByPOT: x / 2^exponent rounded half away from zero (exponent int or int64 expr)."""
    from tvm import tirx

    if isinstance(exponent, int):
        if exponent == 0:
            return x
        mask, exp = _c((1 << exponent) - 1), _c(exponent)
    else:
        exp = exponent
        mask = (_c(1) << exp) - _c(1)
    threshold = (mask >> _c(1)) + tirx.Select(x < _c(0), _c(1), _c(0))
    return (x >> exp) + tirx.Select((x & mask) > threshold, _c(1), _c(0))


def _saturating_shl(x, exponent: int):
    """SaturatingRoundingMultiplyByPOT with a positive exponent on an int32 value."""
    from tvm import tirx

    threshold = (1 << (31 - exponent)) - 1
    shifted = x * _c(1 << exponent)
    return tirx.Select(x > _c(threshold), _c(INT32_MAX),
                       tirx.Select(x < _c(-threshold), _c(INT32_MIN), shifted))


def _exp_on_interval(a):
    """exp on [-1/4, 0): a Taylor expansion around -1/8, Q0.31 in and out."""
    constant_term = _c(1895147668)
    x = a + _c(1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    x4_over_4 = _rdbypot(x4, 2)
    poly = _rdbypot(_srdhm(x4_over_4 + x3, _c(715827883)) + x2, 1)
    return constant_term + _srdhm(constant_term, x + poly)


def _exp_on_negative_values(a, integer_bits: int):
    """exp(a) for a <= 0 in Q(integer_bits).(31-integer_bits); result Q0.31."""
    from tvm import tirx

    frac = 31 - integer_bits
    one_quarter = 1 << (frac - 2)
    a_mod = (a & _c(one_quarter - 1)) - _c(one_quarter)
    result = _exp_on_interval(_saturating_shl(a_mod, integer_bits))
    remainder = a_mod - a
    for exponent, multiplier in tm._EXP_BARREL:
        if integer_bits > exponent:
            bit = _c(1 << (frac + exponent))
            result = tirx.Select((remainder & bit) != _c(0), _srdhm(result, _c(multiplier)), result)
    if integer_bits > 5:
        result = tirx.Select(a < _c(-(1 << (36 - integer_bits))), _c(0), result)
    return tirx.Select(a == _c(0), _c(INT32_MAX), result)


def _bit_length(x):
    """Number of significant bits of a positive int32 value (32 - clz)."""
    from tvm import tirx

    total = _c(0)
    for k in range(31):
        total = total + tirx.Select(x >= _c(1 << k), _c(1), _c(0))
    return total


def _reciprocal(total, integer_digits: int):
    """GetReciprocal: (1/x in Q0.31 of the normalised sum, num_bits_over_unit)."""
    from tvm import tirx

    headroom = _c(32) - _bit_length(total)
    bits_over_unit = _c(integer_digits) - headroom
    a = (total << headroom) - _c(1 << 31)  # fits int32: the shifted sum is in [2^31, 2^32)
    s = a + _c(INT32_MAX)
    half_denominator = tirx.truncdiv(s + tirx.Select(s >= _c(0), _c(1), _c(-1)), _c(2))
    x = _c(1515870810) + _srdhm(half_denominator, _c(-1010580540))
    for _ in range(3):
        one_minus = _c(1 << 29) - _srdhm(half_denominator, x)
        x = x + _saturating_shl(_srdhm(x, one_minus), 2)
    return _saturating_shl(x, 1), bits_over_unit


# --------------------------------------------------------------------------- TE computes

def _compute_int8(spec):
    from tvm import te, tirx

    a = spec.attrs
    outer, depth = a["outer"], a["depth"]
    x = te.placeholder((outer, depth), "int8", name="input")
    k = te.reduce_axis((0, depth), name="k")
    row_max = te.compute((outer,), lambda r: te.max(x[r, k].astype("int32"), axis=k), name="row_max")

    def diff(r, c):
        return x[r, c].astype("int64") - row_max[r].astype("int64")

    def exp_q31(r, c):
        shifted = (diff(r, c) << _c(a["input_left_shift"])).astype("int32").astype("int64")
        return _exp_on_negative_values(_srdhm(shifted, _c(a["input_multiplier"])),
                                       tm.SOFTMAX_SCALED_DIFF_INTEGER_BITS)

    exps = te.compute((outer, depth), lambda r, c: exp_q31(r, c).astype("int32"), name="exp")
    j = te.reduce_axis((0, depth), name="j")
    row_sum = te.compute(
        (outer,),
        lambda r: te.sum(tirx.Select(diff(r, j) >= _c(a["diff_min"]),
                                     _rdbypot(exps[r, j].astype("int64"),
                                              tm.SOFTMAX_ACCUMULATION_INTEGER_BITS),
                                     _c(0)).astype("int32"), axis=j),
        name="row_sum")
    recip = te.compute(
        (outer,),
        lambda r: _reciprocal(row_sum[r].astype("int64"), tm.SOFTMAX_ACCUMULATION_INTEGER_BITS)[0]
        .astype("int32"), name="recip")
    shift = te.compute(
        (outer,),
        lambda r: (_reciprocal(row_sum[r].astype("int64"), tm.SOFTMAX_ACCUMULATION_INTEGER_BITS)[1]
                   + _c(31 - 8)).astype("int32"), name="shift")

    def out(r, c):
        unsat = _rdbypot(_srdhm(recip[r].astype("int64"), exps[r, c].astype("int64")),
                         shift[r].astype("int64"))
        value = tirx.max(tirx.min(unsat - _c(128), _c(127)), _c(-128))
        return tirx.Select(diff(r, c) >= _c(a["diff_min"]), value, _c(-128)).astype("int8")

    output = te.compute((outer, depth), out, name="output")
    return [x, output]


def _compute_float32(spec):
    from tvm import te

    outer, depth = spec.attrs["outer"], spec.attrs["depth"]
    x = te.placeholder((outer, depth), "float32", name="input")
    beta = te.placeholder((1,), "float32", name="beta")
    k = te.reduce_axis((0, depth), name="k")
    row_max = te.compute((outer,), lambda r: te.max(x[r, k], axis=k), name="row_max")
    exps = te.compute((outer, depth), lambda r, c: te.exp((x[r, c] - row_max[r]) * beta[0]), name="exp")
    j = te.reduce_axis((0, depth), name="j")
    row_sum = te.compute((outer,), lambda r: te.sum(exps[r, j], axis=j), name="row_sum")
    output = te.compute((outer, depth), lambda r, c: exps[r, c] / row_sum[r], name="output")
    return [x, beta, output]


def _schedule(sch, spec):
    int8 = spec.family == "softmax_int8"
    sch.compute_inline(sch.get_sblock("exp"))
    out = sch.get_sblock("output")
    row, col = sch.get_loops(out)
    row_blocks = (["recip", "shift"] if int8 else []) + ["row_sum", "row_max"]
    for name in row_blocks:  # consumers first: each lands under the row loop of the output
        block = sch.get_sblock(name)
        sch.compute_at(block, row)
        sch.set_scope(block, 0, "local")
    factor = spec.knobs.get("unroll", 1)
    if factor > 1:
        for name in ("output", "row_sum", "row_max"):
            inner_loop = sch.get_loops(sch.get_sblock(name))[-1]
            _, inner = sch.split(inner_loop, [None, factor])
            sch.unroll(inner)


def _knob_space(spec):
    depth = spec.attrs["depth"]
    return {"unroll": [1] + [f for f in (2, 4) if depth % f == 0]}


OPS = {"SOFTMAX": lower_softmax}
FAMILIES = {
    "softmax_int8": KernelFamily(_compute_int8, _schedule, _knob_space),
    "softmax_float32": KernelFamily(_compute_float32, _schedule, _knob_space),
}
