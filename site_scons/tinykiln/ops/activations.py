"""One-input elementwise ops: RELU, RELU6, RELU_N1_TO_1, LEAKY_RELU, HARD_SWISH, LOGISTIC, TANH,
QUANTIZE, DEQUANTIZE.

int8 -> int8 (all but DEQUANTIZE): an int8 input has only 256 values, so the kernel is a 256-entry
table lookup, out[i] = table[in[i] + 128]. The table is computed at build time by the numpy models
of tinykiln.ops.reference, which are proven bit-exact against LiteRT's reference kernels over every
input code (tests/kernels/test_tflite_math.py): LiteRT itself uses such a table for LOGISTIC and TANH, and
for the others the table reproduces its fixed-point arithmetic exactly while costing one load per
element on the device. Tables are const params, so every int8 activation of one size shares one
kernel.

float32 (and the int8 <-> float32 casts): one TE expression per element, written with the float
operations of LiteRT's reference kernels, in the same order. Float values that are not round
numbers (scales, alpha) are const params, not immediates: TVM's C printer writes float immediates
with 7 significant digits, which does not round-trip a float32.

Tensors are flattened: a kernel's spec depends only on the element count.
Knobs: unroll (inner loop unrolled by this factor).
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from . import reference as ref
from .base import KernelFamily, param, quant_params, unsupported
from .rules import FIXED_OUTPUT_QUANT, fixed_output_quant_ok


def _size(tensor) -> int:
    return int(np.prod(tensor.shape, dtype=np.int64))


def _int8_table(op, kind, in_q, out_q):
    in_scale, in_zp = in_q
    out_scale, out_zp = out_q
    codes = np.arange(-128, 128, dtype=np.int64)
    if kind == "RELU":
        return ref.relu_x_int8(codes, in_scale, in_zp, out_scale, out_zp, 0.0, None)
    if kind == "RELU6":
        return ref.relu_x_int8(codes, in_scale, in_zp, out_scale, out_zp, 0.0, 6.0)
    if kind == "RELU_N1_TO_1":
        return ref.relu_x_int8(codes, in_scale, in_zp, out_scale, out_zp, -1.0, 1.0)
    if kind == "LEAKY_RELU":
        return ref.leaky_relu_int8(codes, in_scale, in_zp, out_scale, out_zp, op.attrs.get("alpha", 0.2))
    if kind == "HARD_SWISH":
        if ref.hard_swish_params(in_scale, in_zp, out_scale, out_zp)["output_exponent"] > 0:
            raise unsupported(op, "int8 HARD_SWISH whose output scale is below input scale / 128 "
                                  "(LiteRT rejects it too); requantize the model with a wider output range")
        return ref.hard_swish_int8(codes, in_scale, in_zp, out_scale, out_zp)
    if kind == "LOGISTIC":
        return ref.logistic_lut_int8(in_scale, in_zp, out_scale, out_zp)
    if kind == "TANH":
        return ref.tanh_lut_int8(in_scale, in_zp, out_scale, out_zp)
    if kind == "QUANTIZE":
        return ref.requantize_int8(codes, in_scale, in_zp, out_scale, out_zp)
    raise unsupported(op, "no int8 table for this op")


def lower_activation(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    n = _size(x)
    if _size(y) != n:
        raise unsupported(op, f"output has {_size(y)} elements, input {n}")
    kind = op.kind

    if x.dtype == "int8" and y.dtype == "int8":
        in_q = quant_params(x, "input", op)
        out_q = quant_params(y, "output", op)
        if not fixed_output_quant_ok(kind, *out_q):
            expected = FIXED_OUTPUT_QUANT[kind]
            raise unsupported(op, f"int8 {kind} output quantization must be scale {expected[0]}, "
                                  f"zero point {expected[1]} (got {out_q[0]}, {out_q[1]})")
        table = _int8_table(op, kind, in_q, out_q)
        spec = ctx.spec("lut_int8", [param("input", "int8", (n,), "input"),
                                     param("table", "int8", (256,), "const"),
                                     param("output", "int8", (n,), "output")], {"size": n})
        return [KernelCall(spec, op.index, [x_index, np.asarray(table, dtype=np.int8), y_index])]

    attrs = {"size": n, "fn": kind}
    value = None  # the float32 constant of the op (alpha, scale), passed as a one-element param
    if x.dtype == "float32" and y.dtype == "float32" and kind in _FLOAT_FNS:
        if kind == "LEAKY_RELU":
            value = op.attrs.get("alpha", 0.2)
    elif kind == "QUANTIZE" and x.dtype == "float32" and y.dtype == "int8":
        value, attrs["zero_point"] = quant_params(y, "output", op)
    elif kind == "DEQUANTIZE" and x.dtype == "int8" and y.dtype == "float32":
        value, attrs["zero_point"] = quant_params(x, "input", op)
    else:
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    params = [param("input", x.dtype, (n,), "input")]
    args = [x_index]
    if value is not None:
        params.append(param("value", "float32", (1,), "const"))
        args.append(np.array([value], dtype=np.float32))
    spec = ctx.spec("unary", params + [param("output", y.dtype, (n,), "output")], attrs)
    return [KernelCall(spec, op.index, args + [y_index])]


# --------------------------------------------------------------------------- TE computes

def _lut_compute(spec):
    """out[i] = table[in[i] + 128]."""
    from tvm import te

    n = spec.attrs["size"]
    x = te.placeholder((n,), "int8", name="input")
    table = te.placeholder((256,), spec.params[2].dtype, name="table")
    out = te.compute((n,), lambda i: table[x[i].astype("int32") + 128], name="output")
    return [x, table, out]


def _f(value):
    from tvm import tirx

    return tirx.const(value, "float32")


def _round_half_away(v):
    """roundf() with float32 operations only, exact for every float: v - trunc(v) is exact, so
    comparing it with 0.5 decides the rounding without the error of floor(v + 0.5)."""
    from tvm import tirx

    t = tirx.trunc(v)
    frac = v - t
    return tirx.Select(frac >= _f(0.5), t + _f(1.0), tirx.Select(frac <= _f(-0.5), t - _f(1.0), t))


def _float_relu(v, value):
    from tvm import tirx
    return tirx.max(v, _f(0.0))


def _float_relu6(v, value):
    from tvm import tirx
    return tirx.min(tirx.max(v, _f(0.0)), _f(6.0))


def _float_relu1(v, value):
    from tvm import tirx
    return tirx.min(tirx.max(v, _f(-1.0)), _f(1.0))


def _float_leaky(v, alpha):
    # reference_ops::LeakyRelu: x > 0 ? x : x * alpha
    from tvm import tirx
    return tirx.Select(v > _f(0.0), v, v * alpha)


def _float_hard_swish(v, value):
    # reference_ops::HardSwish: in * min(6, max(0, in + 3)) / 6
    from tvm import tirx
    return v * tirx.min(_f(6.0), tirx.max(_f(0.0), v + _f(3.0))) / _f(6.0)


def _float_logistic(v, value):
    # reference_ops::Logistic<float>: 1 above x = 16.619047164916992188, exp(x) below x = -9, else
    # 1 / (1 + exp(-x)); the cutoffs matter: below -9 the two forms differ by up to 1.2e-4 relative
    from tvm import te, tirx
    middle = _f(1.0) / (_f(1.0) + te.exp(_f(0.0) - v))
    return tirx.Select(v > _f(16.619047164916992188), _f(1.0), tirx.Select(v < _f(-9.0), te.exp(v), middle))


def _float_tanh(v, value):
    from tvm import te
    return te.tanh(v)


_FLOAT_FNS = {
    "RELU": _float_relu, "RELU6": _float_relu6, "RELU_N1_TO_1": _float_relu1,
    "LEAKY_RELU": _float_leaky, "HARD_SWISH": _float_hard_swish,
    "LOGISTIC": _float_logistic, "TANH": _float_tanh,
}


def _unary_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    n = a["size"]
    x = te.placeholder((n,), spec.params[0].dtype, name="input")
    has_value = spec.params[1].name == "value"
    const = te.placeholder((1,), "float32", name="value") if has_value else None
    fn = a["fn"]
    if fn == "QUANTIZE":
        # reference_ops::AffineQuantize: roundf(x / scale) + zero_point, clamped to int8. The clamp
        # is done in float before the cast (the C cast of an out-of-range float is undefined).
        zp = a["zero_point"]

        def value(i):
            q = _round_half_away(x[i] / const[0])
            q = tirx.max(tirx.min(q, _f(127.0 - zp)), _f(-128.0 - zp))
            return (q.astype("int32") + zp).astype("int8")
    elif fn == "DEQUANTIZE":
        # scale * (q - zero_point): the product is exact in double, so float32 gives the same value
        def value(i):
            return (x[i].astype("int32") - a["zero_point"]).astype("float32") * const[0]
    else:
        def value(i):
            return _FLOAT_FNS[fn](x[i], const[0] if has_value else None)
    out = te.compute((n,), value, name="output")
    return [x, *([const] if has_value else []), out]


def _schedule(sch, spec):
    factor = spec.knobs.get("unroll", 1)
    if factor > 1:
        (loop,) = sch.get_loops(sch.get_sblock("output"))
        _, inner = sch.split(loop, [None, factor])
        sch.unroll(inner)


def _knob_space(spec):
    n = spec.attrs["size"]
    return {"unroll": [1] + [f for f in (4, 8) if n % f == 0]}


FAMILIES = {
    "lut_int8": KernelFamily(_lut_compute, _schedule, _knob_space),
    "unary": KernelFamily(_unary_compute, _schedule, _knob_space),
}
