"""SOFTMAX on int16 activations (16x8 quantization), as LiteRT's reference_ops::SoftmaxInt16: two
513-entry tables with linear interpolation (exp on [-10, 0], 1 / (1 + x) on [0, 1], both to [-1, 1]
in Q0.15), made at build time the way LiteRT 2.3's Prepare makes them (in double: a float build of the
reciprocal table differs in two entries, which LiteRT's outputs show).

    table(fn)  build time: LiteRT's LUT of exp or 1 / (1 + x) (sample, minus half the rounded error at
               the step's midpoint of the interpolation, clamped to int16)
    lookup     v -> t[256 + (v >> 7)] + ((t[i + 1] - t[i]) * (v & 127) + 64) >> 7
Per row: d = x - max(row); e = lookup_exp(clamp(MultiplyByQuantizedMultiplier(d, m, s) + 32767)),
m and s from s_in * beta (in float) / (10 / 65535); sum = sum(e); h = clz(sum);
r = lookup_recip(clamp(((sum << (h - 1)) + 2^13 >> 14) - 3 * 2^15)); out = clamp((e * r + 2^(30 - h))
>> (31 - h), 0, 32767). The input and output are symmetric, the output scale 2^-15 (LiteRT's Prepare).
No knobs.
"""
from __future__ import annotations

import math

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported

OUTPUT_SCALE = 1.0 / 32768
def _round(value: float) -> float:
    return math.copysign(math.floor(abs(value) + 0.5), value)


def table(fn: str) -> np.ndarray:
    """LiteRT 2.3's 513-entry int16 LUT (gen_lut in double) of exp over [-10, 0] ("exp") or
    1 / (1 + x) over [0, 1] ("recip"), the output [-1, 1] in Q0.15; int32 for the kernel's table."""
    func, lo_in, hi_in = (math.exp, -10.0, 0.0) if fn == "exp" else (lambda v: 1.0 / (1.0 + v), 0.0, 1.0)
    step = (hi_in - lo_in) / 512
    inv = 65536.0 / 2.0  # the int16 range over the output's [-1, 1]
    values = []
    for i in range(512):
        val, mid, nxt = func(lo_in + i * step), func(lo_in + i * step + step / 2), func(lo_in + (i + 1) * step)
        interp = _round((nxt * inv + _round(val * inv)) / 2)
        bias = _round((interp - _round(mid * inv)) / 2)
        values.append(min(max(_round(val * inv) - bias, -32768.0), 32767.0))
    values.append(min(max(_round(func(hi_in) * inv), -32768.0), 32767.0))
    return np.array(values, dtype=np.int32)


def check_output(v) -> None:
    """LiteRT's Prepare: an int16 SOFTMAX output has scale 2^-15 (to 0.1 %) and zero point 0."""
    q = v.y.quant
    if v.y.dtype == "int16" and q is not None and abs(q.scale[0] - OUTPUT_SCALE) > OUTPUT_SCALE * 1e-3:
        v.fail(f"int16 SOFTMAX output '{v.y.name}' must have scale 1/32768 (has {q.scale[0]:g})")


def lower_softmax_int16(ctx, op):
    from tinykiln.fixedpoint.prepare import quantize_multiplier

    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if y.dtype != "int16":
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    depth = int(x.shape[-1])
    outer = int(np.prod(x.shape, dtype=np.int64)) // depth
    scale, _ = quant_params(x, "input", op)
    # s_in * beta in float (both are floats in LiteRT's Prepare), the division in double
    product = float(np.float32(np.float32(scale) * np.float32(op.attrs.get("beta", 1.0))))
    multiplier, shift = quantize_multiplier(product / (10.0 / 65535.0))
    attrs = {"outer": outer, "depth": depth, "multiplier": multiplier, "shift": shift}
    spec = ctx.spec("softmax_int16", [param("input", "int16", (outer, depth), "input"),
                                      param("exp_table", "int32", (513,), "const"),
                                      param("recip_table", "int32", (513,), "const"),
                                      param("output", "int16", (outer, depth), "output")], attrs)
    return [KernelCall(spec, op.index, [op.inputs[0], table("exp"), table("recip"), op.outputs[0]])]


def compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier as mbqm

    a = spec.attrs
    outer, depth = a["outer"], a["depth"]
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    i64 = lambda v: tirx.const(v, "int64")  # noqa: E731
    x = te.placeholder((outer, depth), "int16", name="input")
    exp_t = te.placeholder((513,), "int32", name="exp_table")
    recip_t = te.placeholder((513,), "int32", name="recip_table")

    def clamp16(v):
        return tirx.max(tirx.min(v, i32(32767)), i32(-32768))

    def lookup(t, v):
        index = i32(256) + (v >> i32(7))
        base = t[index]
        return base + (((t[index + i32(1)] - base) * tirx.bitwise_and(v, i32(127)) + i32(64)) >> i32(7))

    k = te.reduce_axis((0, depth), name="k")
    row_max = te.compute((outer,), lambda r: te.max(x[r, k].astype("int32"), axis=k), name="row_max")

    def exp_of(r, c):
        diff = x[r, c].astype("int32") - row_max[r]
        return lookup(exp_t, clamp16(mbqm(diff, a["multiplier"], a["shift"], may_saturate=False) + i32(32767)))

    j = te.reduce_axis((0, depth), name="j")
    row_sum = te.compute((outer,), lambda r: te.sum(exp_of(r, j), axis=j), name="row_sum")
    # clz of the (positive) sum
    headroom = te.compute((outer,), lambda r: i32(32) - sum(
        tirx.Select(row_sum[r] >= i32(1 << bit), i32(1), i32(0)) for bit in range(31)), name="headroom")

    def reciprocal(r):
        shifted = ((row_sum[r].astype("int64") << (headroom[r] - i32(1)).astype("int64")) + i64(1 << 13)) >> i64(14)
        return lookup(recip_t, clamp16(shifted.astype("int32") - i32((1 << 15) + (1 << 16))))

    recip = te.compute((outer,), reciprocal, name="recip")

    def out(r, c):
        # the right shift 31 - headroom is in [1, 31] for any positive sum: clamped so that TVM's
        # simplifier sees a bounded shift
        right = tirx.min(tirx.max(i32(31) - headroom[r], i32(1)), i32(31)).astype("int64")
        product = exp_of(r, c).astype("int64") * recip[r].astype("int64") + (i64(1) << (right - i64(1)))
        return tirx.max(tirx.min((product >> right).astype("int32"), i32(32767)), i32(0)).astype("int16")

    return [x, exp_t, recip_t, te.compute((outer, depth), out, name="output")]


def schedule(sch, spec):
    """The row stages under the output's row loop (small temporaries on the C stack), their
    reductions initialised before their loops (see ops/softmax.py)."""
    row = sch.get_loops(sch.get_sblock("output"))[0]
    for name in ("recip", "headroom", "row_sum", "row_max"):  # consumers first
        sch.compute_at(sch.get_sblock(name), row)
    for name in ("row_sum", "row_max"):
        block = sch.get_sblock(name)
        loops = sch.get_loops(block)
        if len(loops) > 1:
            sch.decompose_reduction(block, loops[1])


FAMILIES = {"softmax_int16": KernelFamily(compute, schedule)}
