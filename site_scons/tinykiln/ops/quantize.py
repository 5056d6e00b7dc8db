"""QUANTIZE and DEQUANTIZE between uint8, int8, int16 and float32 (LiteRT's quantize.cc, dequantize.cc).

float32 -> int8, int8 -> int8 and int8 -> float32 keep their kernels of ops/activations.py. The
other casts, each with the arithmetic of LiteRT's reference path:

  - 8-bit in (uint8 <-> int8, uint8 -> uint8, int8 -> int16; ST's models start with uint8 -> int8):
    reference_ops::Requantize, (q - zp_in) * MultiplyByQuantizedMultiplier(s_in / s_out) + zp_out,
    clamped. An 8-bit input has 256 values, so the kernel is a table lookup (family cast_lut, the
    table computed here in numpy, proven against LiteRT over every code).
  - int16 in (int16 -> int8, int16, int32): the same Requantize in TE (family requantize_int16).
  - float32 -> uint8 or int16: reference_ops::AffineQuantize, roundf(x / scale) + zp, clamped
    (family quantize_float).
  - uint8 or int16 -> float32: reference_ops::Dequantize, scale * (q - zp): activations' `unary`
    family, whose DEQUANTIZE reads the input dtype from its spec.

QUANTIZE_CASTS and DEQUANTIZE_CASTS are the (input, output) pairs compiled; the registry's rows
list them and `check_cast` holds a model to them pair by pair.
Knobs: unroll (inner loop unrolled by this factor).
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint.prepare import quantize_multiplier
from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier, wrap32
from tinykiln.kernel import KernelCall

from . import activations
from .base import KernelFamily, param, quant_params, unsupported

QUANTIZE_CASTS = (("float32", "int8"), ("int8", "int8"),  # the kernels of ops/activations.py
                  ("float32", "uint8"), ("float32", "int16"), ("int8", "uint8"), ("uint8", "int8"),
                  ("uint8", "uint8"), ("int16", "int8"), ("int16", "int16"), ("int16", "int32"),
                  ("int8", "int16"))  # (16x8 quantization: an int8 model input into int16 layers)
DEQUANTIZE_CASTS = (("int8", "float32"), ("uint8", "float32"), ("int16", "float32"))
_CASTS = {"QUANTIZE": QUANTIZE_CASTS, "DEQUANTIZE": DEQUANTIZE_CASTS}
_ACTIVATIONS_CASTS = {("float32", "int8"), ("int8", "int8"), ("int8", "float32")}
# the casts whose int16 sides LiteRT's Prepare requires symmetric (zero point 0)
_INT16_SYMMETRIC = {("int16", "int16"), ("int16", "float32")}
RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767), "int32": (-(1 << 31), (1 << 31) - 1)}


# -- numpy models of LiteRT's arithmetic (tables at build time, test oracles) -------------------

def requantize(q, in_scale, in_zp, out_scale, out_zp, out_dtype: str) -> np.ndarray:
    """reference_ops::Requantize with Prepare's multiplier: QuantizeMultiplier(double(s_in) /
    double(s_out)) (the scales are float32 in the file). The int32 output wraps like C's add."""
    m, s = quantize_multiplier(float(np.float64(np.float32(in_scale)) / np.float64(np.float32(out_scale))))
    y = multiply_by_quantized_multiplier(np.asarray(q, dtype=np.int64) - in_zp, m, s) + out_zp
    if out_dtype == "int32":
        return wrap32(y).astype(np.int32)
    return np.clip(y, *RANGES[out_dtype]).astype(out_dtype)


def quantize_float(x, scale, zero_point, out_dtype: str) -> np.ndarray:
    """reference_ops::AffineQuantize: roundf(x / scale) + zero_point, clamped (float32 division)."""
    v = (np.asarray(x, dtype=np.float32) / np.float32(scale)).astype(np.float64)
    r = np.clip(np.where(v >= 0, np.floor(v + 0.5), -np.floor(-v + 0.5)), -2.0**31, 2.0**31 - 1)
    return np.clip(r.astype(np.int64) + zero_point, *RANGES[out_dtype]).astype(out_dtype)


def dequantize(q, scale, zero_point) -> np.ndarray:
    """reference_ops::Dequantize: double(scale) * (q - zp) rounded to float32 once; the product is
    exact in double for 16-bit inputs, so float32 arithmetic gives the same value."""
    return (np.float64(np.float32(scale)) * (np.asarray(q, dtype=np.int64) - zero_point)).astype(np.float32)


def cast_table(in_dtype, in_q, out_q, out_dtype) -> np.ndarray:
    """The Requantize of every 8-bit input code, indexed by the code's unsigned byte (q & 255)."""
    codes = np.arange(256, dtype=np.int64)
    if in_dtype == "int8":
        codes = codes.astype(np.uint8).view(np.int8).astype(np.int64)
    return requantize(codes, *in_q, *out_q, out_dtype)


# -- importer check -------------------------------------------------------------------------------

def check_cast(v) -> dict:
    """QUANTIZE / DEQUANTIZE: one input, one output of its shape, a compiled (input, output) pair,
    per-tensor quantization with a positive scale on every integer side."""
    if not v.need((1, 1)):
        return {}
    v.shape_is(v.y, v.x.shape)
    pair = (v.x.dtype, v.y.dtype)
    if pair not in _CASTS[v.kind]:
        v.fail(f"{v.kind} from {pair[0]} to {pair[1]} is not supported (supported: "
               f"{', '.join(f'{a} to {b}' for a, b in _CASTS[v.kind])})")
        return {}
    for t in (v.x, v.y):
        if t.dtype == "float32" or (t.dtype == "int32" and v.kind == "QUANTIZE"):
            continue
        q = t.quant
        if q is None:
            v.fail(f"{t.dtype} tensor '{t.name}' has no quantization parameters")
        elif q.per_channel or q.axis is not None:
            v.fail(f"'{t.name}' is quantized per channel (expected per tensor)")
        elif not q.scale[0] > 0:
            v.fail(f"'{t.name}' has scale {q.scale[0]} (must be > 0)")
        elif not RANGES[t.dtype][0] <= q.zero_point[0] <= RANGES[t.dtype][1]:
            v.fail(f"{t.dtype} '{t.name}' has zero point {q.zero_point[0]} outside the {t.dtype} range")
        elif pair in _INT16_SYMMETRIC and t.dtype == "int16" and q.zero_point[0] != 0:
            v.fail(f"{v.kind} {pair[0]} -> {pair[1]} needs int16 zero points 0, '{t.name}' has "
                   f"{q.zero_point[0]} (LiteRT refuses it too)")
    return {}


# -- lowering -------------------------------------------------------------------------------------

def lower_cast(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    pair = (x.dtype, y.dtype)
    if pair in _ACTIVATIONS_CASTS:
        return activations.lower_activation(ctx, op)
    if pair not in _CASTS.get(op.kind, ()):
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    n = int(np.prod(x.shape, dtype=np.int64))
    io_in, io_out = param("input", x.dtype, (n,), "input"), param("output", y.dtype, (n,), "output")
    if op.kind == "DEQUANTIZE":
        scale, zp = quant_params(x, "input", op)
        spec = ctx.spec("unary", [io_in, param("value", "float32", (1,), "const"), io_out],
                        {"size": n, "fn": "DEQUANTIZE", "zero_point": zp})
        return [KernelCall(spec, op.index, [x_index, np.array([scale], dtype=np.float32), y_index])]
    if x.dtype == "float32":
        scale, zp = quant_params(y, "output", op)
        spec = ctx.spec("quantize_float", [io_in, param("value", "float32", (1,), "const"), io_out],
                        {"size": n, "zero_point": zp, "range": list(RANGES[y.dtype])})
        return [KernelCall(spec, op.index, [x_index, np.array([scale], dtype=np.float32), y_index])]
    in_q, out_q = quant_params(x, "input", op), quant_params(y, "output", op)
    if x.dtype in ("int8", "uint8"):
        table = cast_table(x.dtype, in_q, out_q, y.dtype)
        spec = ctx.spec("cast_lut", [io_in, param("table", y.dtype, (256,), "const"), io_out], {"size": n})
        return [KernelCall(spec, op.index, [x_index, table, y_index])]
    m, s = quantize_multiplier(float(np.float64(np.float32(in_q[0])) / np.float64(np.float32(out_q[0]))))
    spec = ctx.spec("requantize_int16", [io_in, io_out],
                    {"size": n, "multiplier": m, "shift": s, "input_zp": in_q[1], "output_zp": out_q[1]})
    return [KernelCall(spec, op.index, [x_index, y_index])]


# -- TE computes ----------------------------------------------------------------------------------

def _cast_lut_compute(spec):
    from tvm import te

    n = spec.attrs["size"]
    x = te.placeholder((n,), spec.params[0].dtype, name="input")
    table = te.placeholder((256,), spec.params[1].dtype, name="table")
    # the byte as unsigned indexes the table, whatever the input's signedness
    out = te.compute((n,), lambda i: table[x[i].astype("uint8").astype("int32")], name="output")
    return [x, table, out]


def _requantize_int16_compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier

    a = spec.attrs
    n = a["size"]
    out_dtype = spec.params[1].dtype
    x = te.placeholder((n,), "int16", name="input")

    def value(i):
        v = te_multiply_by_quantized_multiplier(x[i].astype("int32") - a["input_zp"], a["multiplier"], a["shift"])
        if out_dtype == "int32":
            # Requantize's int32 add wraps; as unsigned it stays defined C
            return (v.astype("uint32") + tirx.const(a["output_zp"] & 0xFFFFFFFF, "uint32")).astype("int32")
        lo, hi = RANGES[out_dtype]
        v = v.astype("int64") + a["output_zp"]  # v + zp may pass the int32 range: compare in int64
        return tirx.max(tirx.min(v, tirx.const(hi, "int64")), tirx.const(lo, "int64")).astype(out_dtype)

    return [x, te.compute((n,), value, name="output")]


def _quantize_float_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    n = a["size"]
    out_dtype = spec.params[2].dtype
    lo, hi = a["range"]
    zp = a["zero_point"]
    x = te.placeholder((n,), "float32", name="input")
    scale = te.placeholder((1,), "float32", name="value")

    def value(i):
        # clamped in float before the cast: the C cast of an out-of-range float is undefined
        # (the rounding and the flat schedule are activations.py's, which keeps them private so that
        # its generated code stays as it is)
        q = activations._round_half_away(x[i] / scale[0])
        q = tirx.max(tirx.min(q, tirx.const(float(hi - zp), "float32")), tirx.const(float(lo - zp), "float32"))
        return (q.astype("int32") + zp).astype(out_dtype)

    return [x, scale, te.compute((n,), value, name="output")]


FAMILIES = {
    "cast_lut": KernelFamily(_cast_lut_compute, activations._schedule, activations._knob_space),
    "requantize_int16": KernelFamily(_requantize_int16_compute, activations._schedule,
                                     activations._knob_space),
    "quantize_float": KernelFamily(_quantize_float_compute, activations._schedule,
                                   activations._knob_space),
}
