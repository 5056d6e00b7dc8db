"""ADD, SUB, MUL with int16 activations (16x8 quantization), numpy broadcasting, fused activation, as
LiteRT's reference kernels compute them.

ADD/SUB take one of two paths, as LiteRT's Prepare chooses:
  pot      the option pot_scale_int16 (schema default true) is set, every zero point is 0 and every
           scale is a power of two (CheckedLog2: log2 within 1e-3 of an integer): one input must have
           the output's scale and the other a smaller one; that input is divided by 2^shift
           (RoundingDivideByPOT) and the two are added (or subtracted) with int16 saturation
           (gemmlowp's SaturatingAdd on Q0.15), then clamped;
  general  the int8 path's arithmetic with a left shift of 15 instead of 20: (q - zp) << 15 rescaled
           to twice the larger input scale (MultiplyByQuantizedMultiplierSmallerThanOneExp), added,
           rescaled to the output scale, + output zero point, clamped.
MUL: (q1 - zp1) * (q2 - zp2) (fits int32) rescaled by MultiplyByQuantizedMultiplier with s1 * s2 /
s_out (the product in float, as for int8), + output zero point, clamped.
The inputs' 65536 codes are too many for the int8 kernels' tables: the rescaling runs in the kernel
(fixedpoint.te). All scalars are baked into attrs; no knobs.
"""
from __future__ import annotations

import math

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported
from .elementwise import _broadcast_index

LEFT_SHIFT = 15
KINDS = {"ADD": "add", "SUB": "sub", "MUL": "mul"}


def checked_log2(scale: float) -> int | None:
    """TFLite's CheckedLog2 in float32: the rounded log2 of a scale, or None if it is not a power of
    two to within 1e-3 of an octave."""
    f32 = np.float32
    log2 = f32(f32(math.log(f32(scale))) * f32(1.0 / math.log(2.0)))
    rounded = f32(math.copysign(math.floor(abs(float(log2)) + 0.5), float(log2)))  # std::round
    return int(rounded) if abs(f32(log2 - rounded)) < f32(1e-3) else None


def pot_shifts(pot_option: bool, tensors) -> list[int] | None:
    """The right shifts of the two inputs on LiteRT's power-of-two path, or None for the general path
    (tensors: input 1, input 2, output)."""
    quants = [(float(t.quant.scale[0]), int(t.quant.zero_point[0])) for t in tensors]
    logs = [checked_log2(s) for s, _ in quants]
    if not pot_option or any(z for _, z in quants) or None in logs:
        return None
    return [logs[2] - logs[0], logs[2] - logs[1]]


def check_pot(v) -> None:
    """What LiteRT refuses on the power-of-two path: both inputs rescaled (or one scaled up), and (ADD:
    it aborts) broadcasting."""
    tensors = [*v.inputs[:2], v.y]
    if len(tensors) != 3 or any(t is None or t.quant is None for t in tensors):
        return
    shifts = pot_shifts(v.options.get("pot_scale_int16", True), tensors)
    if shifts is None:
        return
    if 0 not in shifts or min(shifts) < 0:
        v.fail(f"int16 {v.kind} with power-of-two scales {', '.join(f'{t.quant.scale[0]:g}' for t in tensors)}: "
               "one input needs the output's scale and the other a smaller one (LiteRT refuses others)")
    if v.kind == "ADD" and tensors[0].shape != tensors[1].shape:
        v.fail("int16 ADD with power-of-two scales does not broadcast in LiteRT (it aborts): give the inputs "
               "one shape, or set pot_scale_int16 false")


def lower_binary_int16(ctx, op):
    from tinykiln.fixedpoint.prepare import (
        activation_range_int16, quantize_multiplier, quantize_multiplier_smaller_than_one_exp,
    )

    a_index, b_index = op.inputs[0], op.inputs[1]
    a, b, y = ctx.tensor(a_index), ctx.tensor(b_index), ctx.tensor(op.outputs[0])
    if {a.dtype, b.dtype, y.dtype} != {"int16"}:
        raise unsupported(op, f"mixed types {a.dtype}, {b.dtype} -> {y.dtype}")
    shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    if shape != tuple(y.shape):
        raise unsupported(op, f"output shape {y.shape} is not the broadcast shape {shape}")
    kind = KINDS[op.kind]
    (sa, za), (sb, zb), (so, zo) = (quant_params(t, name, op) for t, name in
                                    ((a, "input 1"), (b, "input 2"), (y, "output")))
    try:
        act = list(activation_range_int16(op.attrs.get("activation", "NONE"), so, zo))
    except ValueError:
        raise unsupported(op, f"fused activation {op.attrs.get('activation')}") from None
    attrs = {"a_shape": list(a.shape), "b_shape": list(b.shape), "out_shape": list(y.shape),
             "a_zp": za, "b_zp": zb, "output_zp": zo, "act": act}
    f32 = np.float32
    shifts = pot_shifts(op.attrs.get("pot_scale_int16", True), (a, b, y))
    if kind == "mul":
        attrs["multiplier"], attrs["shift"] = quantize_multiplier(float(f32(f32(sa) * f32(sb)) / f32(so)))
    elif shifts is not None:
        if 0 not in shifts or min(shifts) < 0:
            raise unsupported(op, f"power-of-two scales {sa:g}, {sb:g} -> {so:g}")  # (the checker says why)
        attrs["pot_shifts"] = shifts
    else:
        twice_max = 2.0 * float(max(f32(sa), f32(sb)))
        try:
            attrs["a_mult"] = list(quantize_multiplier_smaller_than_one_exp(float(f32(sa)) / twice_max))
            attrs["b_mult"] = list(quantize_multiplier_smaller_than_one_exp(float(f32(sb)) / twice_max))
            attrs["out_mult"] = list(quantize_multiplier_smaller_than_one_exp(
                twice_max / ((1 << LEFT_SHIFT) * float(f32(so)))))
        except ValueError as error:
            raise unsupported(op, f"scales out of range ({error})") from None
    params, args = [], []
    for name, t, index in (("input1", a, a_index), ("input2", b, b_index)):
        if t.is_constant:
            params.append(param(name, "int16", t.shape, "const"))
            args.append(np.ascontiguousarray(t.data, dtype=np.int16))
        else:
            params.append(param(name, "int16", t.shape, "input"))
            args.append(index)
    params.append(param("output", "int16", y.shape, "output"))
    spec = ctx.spec(f"{kind}_int16", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier as mbqm, te_rdbpot

    at = spec.attrs
    kind = spec.family.split("_")[0]
    out_shape = at["out_shape"] or [1]
    a = te.placeholder(at["a_shape"] or [1], "int16", name="input1")
    b = te.placeholder(at["b_shape"] or [1], "int16", name="input2")
    a_idx = _broadcast_index(at["a_shape"] or [1], len(out_shape))
    b_idx = _broadcast_index(at["b_shape"] or [1], len(out_shape))
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731

    def clamp(value, lo, hi):
        return tirx.max(tirx.min(value, i32(hi)), i32(lo))

    def value(*idx):
        va = a[tuple(a_idx(idx))].astype("int32") - i32(at["a_zp"])
        vb = b[tuple(b_idx(idx))].astype("int32") - i32(at["b_zp"])
        if kind == "mul":
            result = mbqm(va * vb, at["multiplier"], at["shift"], may_saturate=False) + i32(at["output_zp"])
        elif "pot_shifts" in at:
            sa, sb = at["pot_shifts"]
            va = te_rdbpot(va.astype("int64"), sa).astype("int32") if sa else va
            vb = te_rdbpot(vb.astype("int64"), sb).astype("int32") if sb else vb
            # gemmlowp's SaturatingAdd / SaturatingSub on int16 raws
            result = clamp(va + vb if kind == "add" else va - vb, -32768, 32767)
        else:
            ra = mbqm(va * i32(1 << LEFT_SHIFT), *at["a_mult"], may_saturate=False)
            rb = mbqm(vb * i32(1 << LEFT_SHIFT), *at["b_mult"], may_saturate=False)
            total = ra + rb if kind == "add" else ra - rb
            result = mbqm(total, *at["out_mult"], may_saturate=False) + i32(at["output_zp"])
        return clamp(result, *at["act"]).astype("int16")

    return [a, b, te.compute(out_shape, value, name="output")]


FAMILIES = {f"{kind}_int16": KernelFamily(compute) for kind in KINDS.values()}
