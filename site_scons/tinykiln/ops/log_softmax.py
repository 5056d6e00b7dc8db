"""LOG_SOFTMAX over the last axis: int8 -> int8 (fixed point) and float32.

int8 is LiteRT's reference_ops::LogSoftmax (LogSoftmaxQuantized, what BUILTIN_REF runs), output
quantized with scale 16/256 and zero point 127 (LiteRT's Prepare requires it). Per row:
    diff      = x - max(row)
    d5        = MultiplyByQuantizedMultiplier(diff, input_multiplier, input_left_shift)  Q5.26
    sum       = sum over diff >= diff_min of RoundingDivideByPOT(exp_on_negative_values(d5), 12)  Q12.19
    log_sum   = log_x_for_x_greater_than_or_equal_to_1<5>(sum)        (tinykiln.fixedpoint.logarithm)
    cut       = max(diff_min - 1, MBQM(log_sum + INT32_MIN, reverse_scaling_divisor, its shift))
    out       = diff > cut ? clamp(RoundingDivideByPOT(d5 - log_sum, 22) + 127) : -128
with PreprocessLogSoftmaxScalingExp's constants for beta = 1 (log_softmax_params). d5 and the
exponential depend only on diff, one of 256 values: build-time tables (the exponential already
divided by 2^12, 0 below diff_min), as SOFTMAX does.
float32 is reference_ops::LogSoftmax<float>: x - max - log(sum(exp(x - max))), the sum in order.

Kernel: the row stages (max, sum, the logarithm's steps, the cut) computed at the row loop as
scalars, then the output loop. No knobs.
"""
from __future__ import annotations

import math

import numpy as np

from tinykiln.fixedpoint import INT32_MIN
from tinykiln.fixedpoint.logarithm import LOG_STAGES, log_x_ge_1
from tinykiln.fixedpoint.prepare import quantize_multiplier
from tinykiln.fixedpoint.reference import exp_on_negative_values, multiply_by_quantized_multiplier, rdbpot, wrap32
from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported
from .checks import OpView

OUTPUT_QUANT = (16 / 256, 127)
INPUT_BITS, ACCUM_BITS, OUTPUT_BITS = 5, 12, 4
MAX_DEPTH = 4095  # the Q12.19 sum of exponentials stays below 2^31 for rows up to 2^12


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    if not v.need((1, 1)):
        return {}
    v.shape_is(v.y, v.x.shape)
    if len(v.x.shape) < 1:
        v.fail("input must have rank >= 1")
    q = v.y.quant
    if v.y.dtype == "int8" and q is not None and (abs(q.scale[0] * 16 - 1) > 1e-3 or q.zero_point[0] != 127):
        v.fail(f"int8 output '{v.y.name}' must have scale 16/256 and zero point 127 "
               f"(has {q.scale[0]:g}, {q.zero_point[0]})")
    if v.x.dtype == "int8" and v.x.shape and v.x.shape[-1] > MAX_DEPTH:
        v.fail(f"int8 LOG_SOFTMAX over {v.x.shape[-1]} values (at most {MAX_DEPTH})")
    return {}


# -- build-time constants and the numpy models ------------------------------------------------------

def log_softmax_params(in_scale: float) -> dict:
    """LogSoftmaxPrepare: PreprocessLogSoftmaxScalingExp(beta = 1) and CalculateInputRadius."""
    real = min(1.0 * float(np.float32(in_scale)) * (1 << (31 - INPUT_BITS)), (1 << 31) - 1.0)
    m, left = quantize_multiplier(real)
    divisor, divisor_shift = quantize_multiplier((1 << (31 - left)) / float(m))
    radius = math.floor(1.0 * ((1 << INPUT_BITS) - 1) * (1 << (31 - INPUT_BITS)) / (1 << left))
    return {"input_multiplier": m, "input_left_shift": left, "reverse_divisor": divisor,
            "reverse_shift": divisor_shift, "diff_min": -radius}


def _tables(p):
    """d5 and the exponential (already / 2^12, 0 where diff < diff_min) for diff = -index."""
    diffs = -np.arange(256, dtype=np.int64)
    d5 = multiply_by_quantized_multiplier(diffs, p["input_multiplier"], p["input_left_shift"])
    exps = rdbpot(exp_on_negative_values(d5, INPUT_BITS), ACCUM_BITS)
    return d5, np.where(diffs >= p["diff_min"], exps, 0)


def log_softmax_int8_reference(q, in_scale: float) -> np.ndarray:
    p = log_softmax_params(in_scale)
    d5_table, exp_table = _tables(p)
    q = np.asarray(q, np.int64)
    index = q.max(axis=-1, keepdims=True) - q  # -diff
    total = wrap32(exp_table[index].sum(axis=-1, keepdims=True))
    log_sum = log_x_ge_1(total, ACCUM_BITS, INPUT_BITS)
    cut = np.maximum(p["diff_min"] - 1, multiply_by_quantized_multiplier(
        wrap32(log_sum + INT32_MIN), p["reverse_divisor"], p["reverse_shift"]))
    out = np.clip(rdbpot(wrap32(d5_table[index] - log_sum), 31 - INPUT_BITS - OUTPUT_BITS) + 127, -128, 127)
    return np.where(-index > cut, out, -128).astype(np.int8)


def log_softmax_float_reference(x) -> np.ndarray:
    x = np.asarray(x, np.float32)
    mx = x.max(axis=-1, keepdims=True)
    e = np.exp(x - mx).astype(np.float32)
    s = np.zeros(mx.shape, np.float32)
    for i in range(x.shape[-1]):
        s = (s + e[..., i:i + 1]).astype(np.float32)
    return (x - mx - np.log(s)).astype(np.float32)


# -- lowering ---------------------------------------------------------------------------------------

def lower_log_softmax(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    if tuple(x.shape) != tuple(y.shape) or len(x.shape) < 1:
        raise unsupported(op, f"input shape {x.shape}, output shape {y.shape}")
    depth = int(x.shape[-1])
    outer = int(np.prod(x.shape[:-1], dtype=np.int64))
    attrs = {"outer": outer, "depth": depth}
    params = [param("input", x.dtype, (outer, depth), "input")]
    args = [x_index]
    if x.dtype == "int8" and y.dtype == "int8":
        scale, zp = quant_params(y, "output", op)
        if abs(scale * 16 - 1) > 1e-3 or zp != 127:
            raise unsupported(op, f"int8 output must have scale 16/256 and zero point 127 (has {scale}, {zp})")
        if depth > MAX_DEPTH:
            raise unsupported(op, f"int8 rows of {depth} values (at most {MAX_DEPTH})")
        p = log_softmax_params(quant_params(x, "input", op)[0])
        attrs.update({k: p[k] for k in ("reverse_divisor", "reverse_shift", "diff_min")})
        d5, exps = _tables(p)
        params += [param("d5_table", "int32", (256,), "const"), param("exp_table", "int32", (256,), "const")]
        args += [d5.astype(np.int32), exps.astype(np.int32)]
    elif not (x.dtype == "float32" and y.dtype == "float32"):
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    spec = ctx.spec(f"log_softmax_{x.dtype}", params + [param("output", y.dtype, (outer, depth), "output")], attrs)
    return [KernelCall(spec, op.index, args + [y_index])]


def _compute_int8(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.logarithm import te_log_x_ge_1
    from tinykiln.fixedpoint.te import const64 as c64
    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier, te_rdbpot_select

    a = spec.attrs
    outer, depth = a["outer"], a["depth"]
    x = te.placeholder((outer, depth), "int8", name="input")
    d5 = te.placeholder((256,), "int32", name="d5_table")
    exps = te.placeholder((256,), "int32", name="exp_table")
    k = te.reduce_axis((0, depth), name="k")
    row_max = te.compute((outer,), lambda r: te.max(x[r, k].astype("int32"), axis=k), name="row_max")

    def index(r, c):  # -diff, in [0, 255]
        return row_max[r] - x[r, c].astype("int32")

    j = te.reduce_axis((0, depth), name="j")
    row_sum = te.compute((outer,), lambda r: te.sum(exps[index(r, j)], axis=j), name="row_sum")

    def stage(name, fn):
        t = te.compute((outer,), lambda r: fn(r).astype("int32"), name=name)
        return lambda r: t[r].astype("int64")

    log_sum = te_log_x_ge_1(stage, lambda r: row_sum[r].astype("int64"), ACCUM_BITS, INPUT_BITS)
    shifted = stage("shifted", lambda r: log_sum(r) + c64(INT32_MIN))  # wraps in the int32 stage
    cut = stage("cut", lambda r: tirx.max(
        c64(a["diff_min"] - 1), te_multiply_by_quantized_multiplier(
            shifted(r).astype("int32"), a["reverse_divisor"], a["reverse_shift"]).astype("int64")))

    def out(r, c):
        diff = (c64(0) - index(r, c).astype("int64"))
        centred = (d5[index(r, c)].astype("int64") - log_sum(r)).astype("int32").astype("int64")
        value = te_rdbpot_select(centred, c64(31 - INPUT_BITS - OUTPUT_BITS)) + c64(127)
        clamped = tirx.max(tirx.min(value, c64(127)), c64(-128))
        return tirx.Select(diff > cut(r), clamped, c64(-128)).astype("int8")

    output = te.compute((outer, depth), out, name="output")
    return [x, d5, exps, output]


ROW_STAGES_INT8 = ["row_max", "row_sum", *LOG_STAGES, "shifted", "cut"]


def _compute_float32(spec):
    from tvm import te

    outer, depth = spec.attrs["outer"], spec.attrs["depth"]
    x = te.placeholder((outer, depth), "float32", name="input")
    k = te.reduce_axis((0, depth), name="k")
    row_max = te.compute((outer,), lambda r: te.max(x[r, k], axis=k), name="row_max")
    j = te.reduce_axis((0, depth), name="j")
    row_sum = te.compute((outer,), lambda r: te.sum(te.exp(x[r, j] - row_max[r]), axis=j), name="row_sum")
    log_sum = te.compute((outer,), lambda r: te.log(row_sum[r]), name="log_sum")
    output = te.compute((outer, depth), lambda r, c: x[r, c] - row_max[r] - log_sum[r], name="output")
    return [x, output]


def _schedule(sch, spec):
    row = sch.get_loops(sch.get_sblock("output"))[0]
    names = ROW_STAGES_INT8 if spec.family == "log_softmax_int8" else ["row_max", "row_sum", "log_sum"]
    for name in reversed(names):  # consumers first: each lands under the output's row loop
        sch.compute_at(sch.get_sblock(name), row)
    for name in ("row_sum", "row_max"):
        block = sch.get_sblock(name)
        loops = sch.get_loops(block)
        if len(loops) > 1:  # a row of one element has no reduction loop left
            sch.decompose_reduction(block, loops[1])


FAMILIES = {
    "log_softmax_int8": KernelFamily(_compute_int8, _schedule),
    "log_softmax_float32": KernelFamily(_compute_float32, _schedule),
}
