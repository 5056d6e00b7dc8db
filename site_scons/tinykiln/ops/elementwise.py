"""ADD, SUB, MUL: int8 and float32, numpy broadcasting, fused activation.

int8 ADD/SUB as TFLite's general quantized path: both inputs, offset by their zero points, are
shifted left by 20 and rescaled to twice the larger input scale (MultiplyByQuantizedMultiplier-
SmallerThanOneExp with per-input multipliers), added or subtracted, rescaled to the output scale,
offset by the output zero point and clamped. A rescaled input depends on its int8 value alone, so
the lowering computes it for all 256 values at build time (TFLite's arithmetic in numpy): the kernel
reads two int32 tables (SUB negates the second one) and adds, then requantizes the sum with the
fused form of tinykiln.fixedpoint.fused (the sum stays below 2^29). int8 MUL: (x1 - zp1) * (x2 - zp2)
rescaled by s1 * s2 / s_out (computed in float, as TFLite does), + zp_out, clamped.
All scalars are baked into attrs; no knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported
from .epilogue import clamp_float, float_act_attr, int8_act_attr

LEFT_SHIFT = 20
KINDS = {"ADD": "add", "SUB": "sub", "MUL": "mul"}


def lower_binary(ctx, op):
    from tinykiln.fixedpoint.prepare import quantize_multiplier, quantize_multiplier_smaller_than_one_exp

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
    if a.dtype == "int8" and kind != "mul":
        for name, zp_key, mult_key, sign in (("table1", "a_zp", "a_mult", 1), ("table2", "b_zp", "b_mult", 1)):
            if kind == "sub" and name == "table2":
                sign = -1
            params.append(param(name, "int32", (256,), "const"))
            args.append(sign * rescaled_inputs(attrs[zp_key], *attrs[mult_key]))
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec(f"{kind}_{a.dtype}", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def rescaled_inputs(zero_point: int, multiplier: int, shift: int) -> np.ndarray:
    """Twice TFLite's rescaled ADD/SUB input, MultiplyByQuantizedMultiplierSmallerThanOneExp(
    (q - zp) << 20, multiplier, shift), for each int8 value q at index q & 255 (the kernel indexes
    with the byte read as unsigned). Twice: the fused requantization of the sum wants it doubled
    (|2 * rescaled| <= 255 * 2^21, so the doubled sum stays below 2^30)."""
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier

    q = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8).astype(np.int64)
    values = (q - zero_point) * (1 << LEFT_SHIFT)
    return (2 * multiply_by_quantized_multiplier(values, multiplier, shift)).astype(np.int32)


def _broadcast_index(in_shape, out_rank):
    """Map output indices to an input's indices (right-aligned, size-1 dims read index 0)."""
    offset = out_rank - len(in_shape)

    def index(idx):
        return [0 if d == 1 else idx[offset + i] for i, d in enumerate(in_shape)]

    return index


def compute(spec):
    from tvm import te

    from tinykiln.fixedpoint.fused import te_requantize

    from .epilogue import clamp_int8

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

    if kind == "mul":
        def value(*idx):
            va, vb = operands(idx)
            product = (va.astype("int32") - at["a_zp"]) * (vb.astype("int32") - at["b_zp"])
            return clamp_int8(te_requantize(product, at["multiplier"], at["shift"], at["output_zp"], 256 * 256),
                              at["act"])

        return [a, b, te.compute(out_shape or [1], value, name="output")]

    # ADD / SUB: twice the rescaled inputs from the tables (SUB's second one negated), summed
    table1 = te.placeholder((256,), "int32", name="table1")
    table2 = te.placeholder((256,), "int32", name="table2")

    def value(*idx):
        va, vb = operands(idx)
        doubled = table1[va.astype("uint8").astype("int32")] + table2[vb.astype("uint8").astype("int32")]
        return clamp_int8(te_requantize(doubled, *at["out_mult"], at["output_zp"], 1 << 29, doubled=True),
                          at["act"])

    return [a, b, table1, table2, te.compute(out_shape or [1], value, name="output")]


def schedule(sch, spec):
    """int8: one flat loop where nothing broadcasts (the operands then share the output's index),
    unrolled by up to four elements (fewer loop tests per element)."""
    at = spec.attrs
    if not spec.family.endswith("int8"):
        return
    loops = sch.get_loops(sch.get_sblock("output"))
    if len(loops) > 1 and list(at["a_shape"]) == list(at["b_shape"]) == list(at["out_shape"]):
        loops = [sch.fuse(*loops)]
    extent = int(sch.get(loops[-1]).extent)
    unroll = next((u for u in (4, 2) if extent % u == 0 and extent > u), None)
    if unroll:
        _, inner = sch.split(loops[-1], [None, unroll])
        sch.unroll(inner)


FAMILIES = {f"{kind}_{dtype}": KernelFamily(compute, schedule)
            for kind in KINDS.values() for dtype in ("int8", "float32")}
