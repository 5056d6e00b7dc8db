"""ADD, SUB, MUL: int8 and float32, numpy broadcasting, fused activation.

int8 ADD/SUB as TFLite's general quantized path: both inputs, offset by their zero points, are
shifted left by 20 and rescaled to twice the larger input scale (MultiplyByQuantizedMultiplier-
SmallerThanOneExp with per-input multipliers), added or subtracted, rescaled to the output scale,
offset by the output zero point and clamped. int8 MUL: (x1 - zp1) * (x2 - zp2) rescaled by
s1 * s2 / s_out (computed in float, as TFLite does), + zp_out, clamped.
All scalars are baked into attrs; no knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, clamp_float, float_act_attr, int8_act_attr, param, quant_params, unsupported

LEFT_SHIFT = 20
KINDS = {"ADD": "add", "SUB": "sub", "MUL": "mul"}


def lower_binary(ctx, op):
    from tinykiln.quant import quantize_multiplier, quantize_multiplier_smaller_than_one_exp

    a_index, b_index = op.inputs[0], op.inputs[1]
    a, b, y = ctx.tensor(a_index), ctx.tensor(b_index), ctx.tensor(op.outputs[0])
    try:
        shape = tuple(np.broadcast_shapes(a.shape, b.shape))
    except ValueError:
        raise unsupported(op, f"shapes {a.shape} and {b.shape} do not broadcast") from None
    if shape != tuple(y.shape):
        raise unsupported(op, f"output shape {y.shape} is not the broadcast shape {shape}")
    kind = KINDS[op.kind]
    activation = op.attrs.get("activation", "NONE")
    attrs = {"a_shape": list(a.shape), "b_shape": list(b.shape), "out_shape": list(y.shape)}
    if a.dtype == "int8":
        (sa, za), (sb, zb), (so, zo) = (quant_params(t, name, op) for t, name in
                                        ((a, "input 1"), (b, "input 2"), (y, "output")))
        attrs.update(a_zp=za, b_zp=zb, output_zp=zo, act=int8_act_attr(activation, so, zo, op))
        f32 = np.float32
        if kind == "mul":
            # TFLite: double real_multiplier = s1 * s2 / s_out, evaluated in float
            attrs["multiplier"], attrs["shift"] = quantize_multiplier(float(f32(f32(sa) * f32(sb)) / f32(so)))
        else:
            twice_max = 2.0 * float(max(f32(sa), f32(sb)))
            try:
                attrs["a_mult"] = list(quantize_multiplier_smaller_than_one_exp(float(f32(sa)) / twice_max))
                attrs["b_mult"] = list(quantize_multiplier_smaller_than_one_exp(float(f32(sb)) / twice_max))
                attrs["out_mult"] = list(quantize_multiplier_smaller_than_one_exp(
                    twice_max / ((1 << LEFT_SHIFT) * float(f32(so)))))
            except ValueError as error:
                raise unsupported(op, f"scales out of range ({error})") from None
    elif a.dtype == "float32":
        attrs["act"] = float_act_attr(activation, op)
    else:
        raise unsupported(op, f"input type {a.dtype}")
    if b.dtype != a.dtype or y.dtype != a.dtype:
        raise unsupported(op, f"mixed types {a.dtype}, {b.dtype} -> {y.dtype}")
    args, params = [], []
    for name, t, index in (("input1", a, a_index), ("input2", b, b_index)):
        if t.is_constant:
            params.append(param(name, t.dtype, t.shape, "const"))
            args.append(np.ascontiguousarray(t.data, dtype=t.dtype))
        else:
            params.append(param(name, t.dtype, t.shape, "input"))
            args.append(index)
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec(f"{kind}_{a.dtype}", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def _broadcast_index(in_shape, out_rank):
    """Map output indices to an input's indices (right-aligned, size-1 dims read index 0)."""
    offset = out_rank - len(in_shape)

    def index(idx):
        return [0 if d == 1 else idx[offset + i] for i, d in enumerate(in_shape)]

    return index


def compute(spec):
    from tvm import te, tirx

    from tinykiln.quant import te_multiply_by_quantized_multiplier as mbqm

    at = spec.attrs
    kind, dtype = spec.family.split("_")
    out_shape = at["out_shape"]
    a = te.placeholder(at["a_shape"] or [1], dtype, name="input1")
    b = te.placeholder(at["b_shape"] or [1], dtype, name="input2")
    a_idx = _broadcast_index(at["a_shape"] or [1], len(out_shape))
    b_idx = _broadcast_index(at["b_shape"] or [1], len(out_shape))

    def operands(idx):
        return a[tuple(a_idx(idx))], b[tuple(b_idx(idx))]

    if dtype == "float32":
        def value(*idx):
            va, vb = operands(idx)
            return clamp_float({"add": va + vb, "sub": va - vb, "mul": va * vb}[kind], at)

        return [a, b, te.compute(out_shape or [1], value, name="output")]

    def offset(idx):
        va, vb = operands(idx)
        return va.astype("int32") - at["a_zp"], vb.astype("int32") - at["b_zp"]

    def clamp(raw):
        lo, hi = at["act"]
        return tirx.max(tirx.min(raw + at["output_zp"], hi), lo).astype("int8")

    if kind == "mul":
        def value(*idx):
            xa, xb = offset(idx)
            return clamp(mbqm(xa * xb, at["multiplier"], at["shift"], may_saturate=False))

        return [a, b, te.compute(out_shape or [1], value, name="output")]

    # each rescaled input is its own stage (one scalar temporary after scheduling): nesting the
    # three rescalings in one expression makes TVM's simplifier blow up
    scaled_a = te.compute(out_shape or [1], lambda *idx: mbqm(offset(idx)[0] * (1 << LEFT_SHIFT), *at["a_mult"],
                                                              may_saturate=False), name="scaled_a")
    scaled_b = te.compute(out_shape or [1], lambda *idx: mbqm(offset(idx)[1] * (1 << LEFT_SHIFT), *at["b_mult"],
                                                              may_saturate=False), name="scaled_b")

    def value(*idx):
        total = scaled_a[idx] + scaled_b[idx] if kind == "add" else scaled_a[idx] - scaled_b[idx]
        return clamp(mbqm(total, *at["out_mult"], may_saturate=False))

    return [a, b, te.compute(out_shape or [1], value, name="output")]


def schedule(sch, spec):
    """ADD/SUB: compute both rescaled inputs inside the output's innermost loop."""
    kind, dtype = spec.family.split("_")
    if dtype != "int8" or kind == "mul":
        return
    out = sch.get_sblock("output")
    for name in ("scaled_a", "scaled_b"):
        sch.compute_at(sch.get_sblock(name), sch.get_loops(out)[-1])


OPS = {"ADD": lower_binary, "SUB": lower_binary, "MUL": lower_binary}
FAMILIES = {f"{kind}_{dtype}": KernelFamily(compute, schedule) for kind in KINDS.values() for dtype in ("int8", "float32")}
