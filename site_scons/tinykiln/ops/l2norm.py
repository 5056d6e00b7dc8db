"""L2_NORMALIZATION over the last axis: int8 -> int8 (fixed point) and float32.

int8 is LiteRT's reference_integer_ops::L2Normalization (what BUILTIN_REF runs): per row,
    acc        = sum((x - input_zp)^2)                      int32
    (m, s)     = GetInvSqrtQuantizedMultiplierExp(acc, -1)  (tinykiln.fixedpoint.invsqrt)
    out        = clamp(MultiplyByQuantizedMultiplier(x - input_zp, m, s + 7), -128, 127)
The output is quantized with scale 1/128 and zero point 0 (LiteRT's Prepare requires it).
float32 is reference_ops::L2Normalization: x / max(sqrt(sum(x^2)), 1e-6), the sum in order.

Kernel: the per-row stages (the sum, the inverse square root's normalisation and Newton steps)
are computed at the row loop, as scalars; then the output loop over the row. No knobs. The fused
activation must be NONE (LiteRT's Prepare refuses the others).
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint.invsqrt import HALF_SQRT_2, NEWTON_STAGES, NEWTON_STEPS, inv_sqrt_quantized_multiplier_exp
from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier
from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported
from .checks import OpView

OUTPUT_QUANT = (1 / 128, 0)
EPSILON = 1e-6  # reference_ops::L2Normalization's default
OUTPUT_SHIFT = 7  # kOutputScale: the result in Q0.7


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    if not v.need((1, 1)):
        return {}
    attrs = {"activation": v.activation()}
    v.shape_is(v.y, v.x.shape)
    if len(v.x.shape) < 1:
        v.fail("input must have rank >= 1")
    if attrs["activation"] != "NONE":
        v.fail(f"fused activation {attrs['activation']} on L2_NORMALIZATION (LiteRT refuses it too)")
    q = v.y.quant
    if v.y.dtype == "int8" and q is not None and (abs(q.scale[0] * 128 - 1) > 1e-3 or q.zero_point[0] != 0):
        v.fail(f"int8 output '{v.y.name}' must have scale 1/128 and zero point 0 "
               f"(has {q.scale[0]:g}, {q.zero_point[0]})")
    return attrs


# -- numpy models (the tests' oracles) --------------------------------------------------------------

def l2norm_int8_reference(q, input_zp: int) -> np.ndarray:
    d = np.asarray(q, dtype=np.int64) - input_zp
    m, s = inv_sqrt_quantized_multiplier_exp((d * d).sum(-1, keepdims=True), -1)
    return np.clip(multiply_by_quantized_multiplier(d, m, s + OUTPUT_SHIFT), -128, 127).astype(np.int8)


def l2norm_float_reference(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    acc = np.zeros(x.shape[:-1] + (1,), np.float32)
    for c in range(x.shape[-1]):
        acc = (acc + x[..., c:c + 1] * x[..., c:c + 1]).astype(np.float32)
    norm = np.maximum(np.sqrt(acc), np.float32(EPSILON))
    return (x / norm).astype(np.float32)


# -- lowering ---------------------------------------------------------------------------------------

def lower_l2norm(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    if tuple(x.shape) != tuple(y.shape) or len(x.shape) < 1:
        raise unsupported(op, f"input shape {x.shape}, output shape {y.shape}")
    depth = int(x.shape[-1])
    outer = int(np.prod(x.shape[:-1], dtype=np.int64))
    attrs = {"outer": outer, "depth": depth}
    if x.dtype == "int8" and y.dtype == "int8":
        attrs["input_zp"] = quant_params(x, "input", op)[1]
        scale, zp = quant_params(y, "output", op)
        if abs(scale * 128 - 1) > 1e-3 or zp != 0:
            raise unsupported(op, f"int8 output must have scale 1/128 and zero point 0 (has {scale}, {zp})")
        if depth * 255 * 255 >= 1 << 31:
            raise unsupported(op, f"int8 rows of {depth} values (the int32 sum of squares could overflow)")
    elif not (x.dtype == "float32" and y.dtype == "float32"):
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    spec = ctx.spec(f"l2norm_{x.dtype}", [param("input", x.dtype, (outer, depth), "input"),
                                          param("output", y.dtype, (outer, depth), "output")], attrs)
    return [KernelCall(spec, op.index, [x_index, y_index])]


def _compute_int8(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.invsqrt import te_clz32_nonneg, te_newton_step
    from tinykiln.fixedpoint.te import const64 as c64
    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier, te_rdbpot_select, te_srdhm_select

    a = spec.attrs
    outer, depth, zp = a["outer"], a["depth"], a["input_zp"]
    x = te.placeholder((outer, depth), "int8", name="input")

    def centred(r, c):
        return x[r, c].astype("int32") - tirx.const(zp, "int32")

    def row(name, fn):
        """A per-row int32 stage (named in ROW_STAGES_INT8); returns r -> its value as int64."""
        t = te.compute((outer,), lambda r: fn(r).astype("int32"), name=name)
        return lambda r: t[r].astype("int64")

    k = te.reduce_axis((0, depth), name="k")
    acc_t = te.compute((outer,), lambda r: te.sum(centred(r, k) * centred(r, k), axis=k), name="acc")
    acc = lambda r: acc_t[r].astype("int64")  # noqa: E731
    # normalise into [2^27, 2^29): divide by 4 once if >= 2^29, then shift left by pairs of bits
    big = row("big", lambda r: tirx.Select(acc(r) >= c64(1 << 29), c64(1), c64(0)))
    reduced = row("reduced", lambda r: acc(r) >> (c64(2) * big(r)))
    pairs = row("pairs", lambda r: ((te_clz32_nonneg(reduced(r)) - c64(1)) >> c64(1)) - c64(1))
    small = row("small", lambda r: tirx.Select(acc(r) <= c64(1), c64(1), c64(0)))
    # rows with acc <= 1 take (INT32_MAX, 0) below; normalise them to anything in range meanwhile
    normal = row("normal", lambda r: tirx.Select(small(r) > c64(0), c64(1 << 27), reduced(r) << (c64(2) * pairs(r))))
    half = row("half", lambda r: te_rdbpot_select(normal(r) >> c64(1), c64(1)))
    est = lambda r: c64(1 << 28)  # noqa: E731  (1.0 in Q3.28)
    for step in range(NEWTON_STEPS):
        est = te_newton_step(row, step, est, half)
    raw = row("raw", lambda r: te_srdhm_select(est(r), c64(HALF_SQRT_2)))
    shift = row("exponent", lambda r: c64(11) + big(r) - pairs(r))
    # a negative exponent goes into the multiplier: an int32 left shift, wrapping like the C code
    mult = row("mult", lambda r: tirx.Select(
        small(r) > c64(0), c64((1 << 31) - 1),
        tirx.Select(shift(r) < c64(0), (raw(r) << (c64(0) - shift(r))).astype("int32").astype("int64"), raw(r))))
    right = row("right", lambda r: tirx.Select(small(r) > c64(0), c64(0), tirx.max(shift(r), c64(0))))

    def out(r, c):
        scaled = te_multiply_by_quantized_multiplier(centred(r, c), mult(r).astype("int32"), tirx.const(
            OUTPUT_SHIFT, "int32") - right(r).astype("int32"), may_saturate=False)
        return tirx.max(tirx.min(scaled, tirx.const(127, "int32")), tirx.const(-128, "int32")).astype("int8")

    output = te.compute((outer, depth), out, name="output")
    return [x, output]


# the per-row stages of _compute_int8, in the order they are made
ROW_STAGES_INT8 = (["acc", "big", "reduced", "pairs", "small", "normal", "half"]
                   + [f"{n}{step}" for step in range(NEWTON_STEPS) for n in NEWTON_STAGES]
                   + ["raw", "exponent", "mult", "right"])


def _compute_float32(spec):
    from tvm import te, tirx

    outer, depth = spec.attrs["outer"], spec.attrs["depth"]
    x = te.placeholder((outer, depth), "float32", name="input")
    k = te.reduce_axis((0, depth), name="k")
    acc = te.compute((outer,), lambda r: te.sum(x[r, k] * x[r, k], axis=k), name="acc")
    norm = te.compute((outer,), lambda r: tirx.max(te.sqrt(acc[r]), tirx.const(EPSILON, "float32")), name="norm")
    output = te.compute((outer, depth), lambda r, c: x[r, c] / norm[r], name="output")
    return [x, output]


def _schedule(sch, spec):
    row = sch.get_loops(sch.get_sblock("output"))[0]
    names = ROW_STAGES_INT8 if spec.family == "l2norm_int8" else ["acc", "norm"]
    for name in reversed(names):  # consumers first: each lands under the output's row loop
        sch.compute_at(sch.get_sblock(name), row)
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(acc)
    if len(loops) > 1:  # a row of one element has no reduction loop left
        sch.decompose_reduction(acc, loops[1])


FAMILIES = {
    "l2norm_int8": KernelFamily(_compute_int8, _schedule),
    "l2norm_float32": KernelFamily(_compute_float32, _schedule),
}
