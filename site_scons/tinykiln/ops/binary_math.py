"""Arithmetic of several inputs with TFLite's numpy broadcasting: SQUARED_DIFFERENCE, DIV, FLOOR_DIV,
FLOOR_MOD, PRELU, and ADD_N (no broadcasting).

What LiteRT 2.3's reference kernels compute, and the kernels do:
    SQUARED_DIFFERENCE  float32 and int32: (a - b) * (a - b). int8 (squared_difference.cc): each
        input, offset by its zero point and shifted left by 7, rescaled by s / (2 max(s1, s2))
        (MultiplyByQuantizedMultiplierSmallerThanOneExp); the difference squared in int32, rescaled by
        (2 max)^2 / (2^14 s_out), + zp_out, clamped. A rescaled input depends on its code alone: the
        lowering computes both as 256-entry int32 tables.
    DIV  float32: a / b with the fused activation; int32: C's truncating a / b (no activation).
        int8 DIV is rejected (the importer names float32 and int32): LiteRT's reference (div.h,
        reciprocal of the divisor, shift by output_shift - reciprocal shift - headroom of the
        dividend) shifts an int32 by 32 or more for small dividends over large divisors, C undefined
        behaviour whose x86 result (quotients near 0 coming out as -128 or 127) no kernel can match.
    FLOOR_DIV, FLOOR_MOD  float32: floor(a / b) (divided in double, as LiteRT), and fmod(a, b)
        moved to b's sign; int8 and int32:
        integer floor division / modulo of the stored values (LiteRT ignores int8 quantization).
        LiteRT stops with an error on a zero divisor; the kernels give 0 there (no C undefined
        behaviour).
    PRELU  float32: x >= 0 ? x : x * alpha. int8 (prelu.cc): x - zp >= 0 ? MBQM(x - zp, s_in / s_out)
        : MBQM((x - zp) * (alpha - zp_alpha), s_in * s_alpha / s_out), + zp_out, clamped; the float
        quotients as LiteRT takes them (float32 arithmetic, then double).
    ADD_N  float32 and int32 (add_n.cc; LiteRT has no int8 ADD_N): the inputs of one shape summed in
        order from the first (int32 wraps, computed unsigned).
The numpy models (`*_reference`) are the tests' oracles beside LiteRT. No knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from . import broadcast
from .base import KernelFamily, param, quant_params, unsupported
from .epilogue import float_act_attr

F32, I32, I8 = ("float32", "float32"), ("int32", "int32"), ("int8", "int8")
DTYPES = {"SQUARED_DIFFERENCE": (I8, F32, I32), "DIV": (F32, I32), "FLOOR_DIV": (I8, F32, I32),
          "FLOOR_MOD": (I8, F32, I32), "PRELU": (I8, F32)}
KINDS = tuple(DTYPES)
LEFT_SHIFT = 7  # SQUARED_DIFFERENCE's input shift
f32 = np.float32


def check_binary(v) -> dict:
    """Two operands of one dtype broadcast to the output; DIV's fused activation."""
    attrs = {"activation": v.activation()} if v.kind == "DIV" else {}
    if broadcast.check_broadcast(v, 2):
        a, b = v.inputs
        if not a.dtype == b.dtype == v.y.dtype:
            v.fail(f"operands {a.dtype} and {b.dtype} -> {v.y.dtype}: LiteRT needs one dtype throughout")
        elif v.kind == "PRELU" and tuple(v.y.shape) != tuple(a.shape):
            v.fail(f"alpha {list(b.shape)} must broadcast to the input {list(a.shape)} (LiteRT's PRELU)")
        elif v.kind == "DIV" and a.dtype == "int32" and attrs["activation"] != "NONE":
            v.fail(f"int32 DIV with fused activation {attrs['activation']} is not supported")
    return attrs


ADD_N_DTYPES = (F32, I32)


def check_add_n(v) -> dict:
    if not v.need((2, 1 << 16)):  # LiteRT's Prepare wants two or more
        return {}
    if any(t is None for t in v.inputs):
        v.fail("an input is omitted (-1)")
    elif any(tuple(t.shape) != tuple(v.x.shape) or t.dtype != v.x.dtype for t in v.inputs):
        v.fail("ADD_N's inputs must have one shape and dtype (LiteRT does not broadcast them)")
    else:
        v.shape_is(v.y, v.x.shape)
    return {}


def lower_add_n(ctx, op):
    y = ctx.tensor(op.outputs[0])
    if (y.dtype, y.dtype) not in ADD_N_DTYPES:
        raise unsupported(op, f"{y.dtype} (LiteRT runs ADD_N on float32 or int32)")
    params, args, attrs = broadcast.operand_params(ctx, op)
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec("add_n", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def _add_n_compute(spec):
    from tvm import te

    holders, values = broadcast.loads(spec, len(spec.attrs["shapes"]))
    dtype = spec.params[-1].dtype

    def value(*idx):
        vs = values(idx)
        if dtype == "int32":
            total = vs[0].astype("uint32")
            for v in vs[1:]:
                total = total + v.astype("uint32")
            return total.astype("int32")
        total = vs[0]
        for v in vs[1:]:
            total = total + v
        return total

    return [*holders, te.compute(broadcast.out_shape(spec), value, name="output")]


# --------------------------------------------------------------------------- build-time models

def squared_difference_params(in1_q, in2_q, out_q) -> dict:
    """squared_difference.cc Prepare: the three multipliers (float scales, double quotients)."""
    from tinykiln.fixedpoint.prepare import quantize_multiplier_smaller_than_one_exp as smaller

    (s1, z1), (s2, z2), (so, zo) = in1_q, in2_q, out_q
    twice_max = float(f32(2) * max(f32(s1), f32(s2)))
    out_real = twice_max * twice_max / float(f32((1 << 2 * LEFT_SHIFT) * f32(so)))
    return {"in1": smaller(float(f32(s1)) / twice_max) + (z1,), "in2": smaller(float(f32(s2)) / twice_max) + (z2,),
            "out": smaller(out_real), "output_zp": zo}


def _rescaled_inputs(multiplier: int, shift: int, zero_point: int) -> np.ndarray:
    """(q - zp) << 7 rescaled, for each int8 code q at index q & 255."""
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier

    q = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8).astype(np.int64)
    return multiply_by_quantized_multiplier((q - zero_point) * (1 << LEFT_SHIFT), multiplier, shift).astype(np.int32)


def squared_difference_reference(a, b, in1_q, in2_q, out_q) -> np.ndarray:
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier

    p = squared_difference_params(in1_q, in2_q, out_q)
    t1, t2 = _rescaled_inputs(*p["in1"]), _rescaled_inputs(*p["in2"])
    diff = t1[np.asarray(a).astype(np.uint8)].astype(np.int64) - t2[np.asarray(b).astype(np.uint8)]
    out = multiply_by_quantized_multiplier(diff * diff, *p["out"]) + p["output_zp"]
    return np.clip(out, -128, 127).astype(np.int8)


def prelu_params(in_q, alpha_q, out_q) -> dict:
    from tinykiln.fixedpoint.prepare import quantize_multiplier

    (si, zi), (sa, za), (so, zo) = in_q, alpha_q, out_q
    return {"input_zp": zi, "alpha_zp": za, "output_zp": zo,
            "positive": quantize_multiplier(float(f32(si) / f32(so))),
            "negative": quantize_multiplier(float(f32(f32(si) * f32(sa)) / f32(so)))}


def prelu_reference(x, alpha, in_q, alpha_q, out_q) -> np.ndarray:
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier as mbqm

    p = prelu_params(in_q, alpha_q, out_q)
    xv = np.asarray(x, dtype=np.int64) - p["input_zp"]
    av = np.asarray(alpha, dtype=np.int64) - p["alpha_zp"]
    out = np.where(xv >= 0, mbqm(xv, *p["positive"]), mbqm(xv * av, *p["negative"])) + p["output_zp"]
    return np.clip(out, -128, 127).astype(np.int8)


def floor_div_reference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == np.float32:
        return np.floor(a.astype(np.float64) / b.astype(np.float64)).astype(np.float32)
    safe = np.where(b == 0, 1, b).astype(np.int64)
    return np.where(b == 0, 0, a.astype(np.int64) // safe).astype(a.dtype)


def floor_mod_reference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == np.float32:
        trunc = np.fmod(a, b)
        return np.where((trunc != 0) & ((b < 0) != (trunc < 0)), trunc + b, trunc).astype(np.float32)
    safe = np.where(b == 0, 1, b).astype(np.int64)
    return np.where(b == 0, 0, np.mod(a.astype(np.int64), safe)).astype(a.dtype)


# --------------------------------------------------------------------------- lowering

def lower_binary_math(ctx, op):
    a, b, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    supported = DTYPES[op.kind]
    if (a.dtype, y.dtype) not in supported or b.dtype != a.dtype:
        names = " or ".join(d for d, _ in supported)
        raise unsupported(op, f"{a.dtype}, {b.dtype} -> {y.dtype} (LiteRT runs {op.kind} on {names})")
    params, args, attrs = broadcast.operand_params(ctx, op)
    attrs["fn"] = op.kind
    if op.kind == "DIV" and a.dtype == "float32":
        attrs["act"] = float_act_attr(op.attrs.get("activation", "NONE"), op)
    if a.dtype == "int8" and op.kind == "SQUARED_DIFFERENCE":
        p = squared_difference_params(*(quant_params(t, r, op) for t, r in ((a, "input 1"), (b, "input 2"),
                                                                            (y, "output"))))
        attrs["out_mult"], attrs["output_zp"] = list(p["out"]), p["output_zp"]
        params += [param("table1", "int32", (256,), "const"), param("table2", "int32", (256,), "const")]
        args += [_rescaled_inputs(*p["in1"]), _rescaled_inputs(*p["in2"])]
    elif a.dtype == "int8" and op.kind == "PRELU":
        p = prelu_params(*(quant_params(t, r, op) for t, r in ((a, "input"), (b, "alpha"), (y, "output"))))
        attrs.update(input_zp=p["input_zp"], alpha_zp=p["alpha_zp"], output_zp=p["output_zp"],
                     positive=list(p["positive"]), negative=list(p["negative"]))
        if p["input_zp"] == -128:
            # no input is below the zero point: alpha is never read, and an unread param fails -Werror
            del params[1], args[1], attrs["shapes"][1]
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec(f"binary_math_{a.dtype}", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


# --------------------------------------------------------------------------- TE compute

def _float_value(at, va, vb):
    from tvm import tirx

    from .epilogue import clamp_float

    fn = at["fn"]
    zero = tirx.const(0.0, "float32")
    if fn == "SQUARED_DIFFERENCE":
        return (va - vb) * (va - vb)
    if fn == "DIV":
        return clamp_float(va / vb, at)
    if fn == "FLOOR_DIV":
        # LiteRT divides in double: 0.3f / 0.1f is 3 in float but 2.99999998 in double
        quotient = va.astype("float64") / vb.astype("float64")
        return tirx.call_pure_extern("float64", "floor", quotient).astype("float32")
    if fn == "FLOOR_MOD":
        trunc = tirx.call_pure_extern("float32", "fmodf", va, vb)
        moved = tirx.all(trunc != zero, (vb < zero) != (trunc < zero))
        return tirx.Select(moved, trunc + vb, trunc)
    return tirx.Select(va >= zero, va, va * vb)  # PRELU


def _integer_value(at, va, vb, dtype):
    """int32 (and int8 FLOOR_DIV / FLOOR_MOD) on the stored values, in int32."""
    from tvm import tirx

    fn = at["fn"]
    a, b = va.astype("int32"), vb.astype("int32")
    zero, one = tirx.const(0, "int32"), tirx.const(1, "int32")
    if fn == "SQUARED_DIFFERENCE":
        # int32 wraps as in C++, computed unsigned to stay defined C
        d = a.astype("uint32") - b.astype("uint32")
        return (d * d).astype("int32")
    safe = tirx.Select(b == zero, one, b)
    quotient = tirx.truncdiv(a, safe)
    remainder = tirx.truncmod(a, safe)
    if fn == "DIV":
        value = quotient
    elif fn == "FLOOR_DIV":
        value = tirx.Select(tirx.all(remainder != zero, (remainder < zero) != (safe < zero)), quotient - one,
                            quotient)
    else:  # FLOOR_MOD
        value = tirx.Select(tirx.all(remainder != zero, (remainder < zero) != (safe < zero)), remainder + safe,
                            remainder)
    return tirx.Select(b == zero, zero, value).astype(dtype)


def _int8_value(at, va, vb, tables):
    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier as mbqm

    from .epilogue import clamp_int8

    if at["fn"] == "SQUARED_DIFFERENCE":
        t1, t2 = tables
        diff = t1[va.astype("uint8").astype("int32")] - t2[vb.astype("uint8").astype("int32")]
        out = mbqm(diff * diff, *at["out_mult"], may_saturate=False) + at["output_zp"]
        return clamp_int8(out, (-128, 127))
    # PRELU
    from tvm import tirx

    x = va.astype("int32") - at["input_zp"]
    value = mbqm(x, *at["positive"], may_saturate=False)
    if vb is not None:
        alpha = vb.astype("int32") - at["alpha_zp"]
        value = tirx.Select(x >= tirx.const(0, "int32"), value, mbqm(x * alpha, *at["negative"], may_saturate=False))
    return clamp_int8(value + at["output_zp"], (-128, 127))


def _compute(spec):
    from tvm import te

    at = spec.attrs
    dtype = spec.family.rsplit("_", 1)[1]
    holders, values = broadcast.loads(spec, len(at["shapes"]))
    tables = []
    if dtype == "int8" and at["fn"] == "SQUARED_DIFFERENCE":
        tables = [te.placeholder((256,), "int32", name="table1"), te.placeholder((256,), "int32", name="table2")]

    def value(*idx):
        va, vb = (values(idx) + [None])[:2]
        if dtype == "float32":
            return _float_value(at, va, vb)
        if dtype == "int8" and at["fn"] in ("SQUARED_DIFFERENCE", "PRELU"):
            return _int8_value(at, va, vb, tables)
        return _integer_value(at, va, vb, dtype)

    return [*holders, *tables, te.compute(broadcast.out_shape(spec), value, name="output")]


FAMILIES = {**{f"binary_math_{dtype}": KernelFamily(_compute, broadcast.flat_schedule)
               for dtype in ("int8", "int32", "float32")},
            "add_n": KernelFamily(_add_n_compute, broadcast.flat_schedule)}
