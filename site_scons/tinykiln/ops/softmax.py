"""SOFTMAX over the last axis: int8 -> int8 (fixed point), int8 -> int16 and float32.

int8 is LiteRT's reference kernel (reference_ops::Softmax, what BUILTIN_REF runs): per row,
    diff = x - max(row)                           (diff < diff_min contributes nothing, outputs -128)
    e    = exp_on_negative_values(SRDHM(diff << left_shift, multiplier))   Q5.26 -> Q0.31
    sum  = sum(RoundingDivideByPOT(e, 12))        Q12.19
    r, n = GetReciprocal(sum)                     Newton-Raphson 1/(1+x), n = bits over unit
    out  = clamp(RoundingDivideByPOT(SRDHM(r, e), n + 23) - 128)
e depends only on diff, one of 256 values for int8 data, so it is a const table of 256 int32
computed at build time by the numpy model (tinykiln.ops.reference, proven bit-exact against LiteRT);
entries below diff_min are 0, which makes those outputs -128 with no test. The rest is TE integer
arithmetic (int64 values that stay in the int32 range, so the C compiler sees no overflow). The
reciprocal is split into small stages: one deep expression makes TVM's simplifier blow up.

int8 -> int16 (keyword models end so) is the same kernel with a 16-bit output: the last shift is
n + 31 - 16 and the offset -32768 (output scale 1/65536, zero point -32768, as LiteRT requires).
float32 is reference_ops::Softmax<float>: exp((x - max) * beta), summed in order, then divided.

Schedule: the per-row stages are computed at the row loop (scalars, no buffer); the exponential is
looked up (int8) or recomputed (float32) in the sum and output loops, as LiteRT does.
Knob: unroll (the output loop over the row, unrolled by this factor).
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint import INT32_MAX
from tinykiln.fixedpoint.reference import exp_on_negative_values, srdhm, wrap32
from tinykiln.kernel import KernelCall

from . import reference as ref
from .base import KernelFamily, param, quant_params, unsupported
from .rules import fixed_output_quant_ok

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
    if x.dtype == "int8" and y.dtype in ("int8", "int16"):
        in_scale, _ = quant_params(x, "input", op)
        out_scale, out_zp = quant_params(y, "output", op)
        if y.dtype == "int16":
            attrs["output_bits"] = 16  # only for int16: the int8 kernels' specs stay as they were
            if abs(out_scale * 65536 - 1) > 1e-3 or out_zp != -32768:
                raise unsupported(op, f"int16 SOFTMAX output must have scale 1/65536 and zero point -32768 "
                                      f"(got {out_scale}, {out_zp}); re-quantize the model")
        elif not fixed_output_quant_ok("SOFTMAX", out_scale, out_zp):
            raise unsupported(op, f"int8 SOFTMAX output must have scale 1/256 and zero point -128 "
                                  f"(got {out_scale}, {out_zp}); re-quantize the model")
        if depth > MAX_DEPTH:
            raise unsupported(op, f"int8 SOFTMAX over {depth} classes (at most {MAX_DEPTH})")
        family = "softmax_int8"
        p = ref.softmax_params(in_scale, beta)
        diffs = -np.arange(256, dtype=np.int64)  # table[i] = e(diff = -i)
        rescaled = srdhm(wrap32(diffs * (1 << p["input_left_shift"])), p["input_multiplier"])
        exps = exp_on_negative_values(rescaled, ref.SOFTMAX_SCALED_DIFF_INTEGER_BITS)
        exp_table = np.where(diffs >= p["diff_min"], exps, 0).astype(np.int32)
    elif x.dtype == "float32" and y.dtype == "float32":
        attrs["beta"] = beta
        family = "softmax_float32"
    else:
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    params = [param("input", x.dtype, (outer, depth), "input")]
    args = [x_index]
    if family == "softmax_int8":
        params.append(param("exp_table", "int32", (256,), "const"))
        args.append(exp_table)
    else:
        # beta as data: TVM prints float immediates with 7 digits, which does not round-trip
        params.append(param("beta", "float32", (1,), "const"))
        args.append(np.array([beta], dtype=np.float32))
    spec = ctx.spec(family, params + [param("output", y.dtype, (outer, depth), "output")], attrs)
    return [KernelCall(spec, op.index, args + [y_index])]


# --------------------------------------------------------------------------- TE computes

def _compute_int8(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import const64 as c64
    from tinykiln.fixedpoint.te import te_rdbpot_select, te_saturating_shl, te_srdhm_select

    a = spec.attrs
    outer, depth = a["outer"], a["depth"]
    acc_bits = ref.SOFTMAX_ACCUMULATION_INTEGER_BITS
    bits = a.get("output_bits", 8)
    low, out_dtype = 1 << (bits - 1), f"int{bits}"
    x = te.placeholder((outer, depth), "int8", name="input")
    table = te.placeholder((256,), "int32", name="exp_table")

    def row(name, fn):
        return te.compute((outer,), lambda r: fn(r).astype("int32"), name=name)

    def i64(t, *idx):
        return t[idx].astype("int64")

    k = te.reduce_axis((0, depth), name="k")
    row_max = te.compute((outer,), lambda r: te.max(x[r, k].astype("int32"), axis=k), name="row_max")

    def exp_q31(r, c):  # e(x - max), looked up by -(x - max) in [0, 255]
        return table[row_max[r] - x[r, c].astype("int32")].astype("int64")

    j = te.reduce_axis((0, depth), name="j")
    row_sum = te.compute(
        (outer,),
        lambda r: te.sum(te_rdbpot_select(exp_q31(r, j), c64(acc_bits)).astype("int32"), axis=j),
        name="row_sum")
    # GetReciprocal: headroom = clz(sum); x = (sum << headroom) - 2^31 in Q0.31 is in [0, 1)
    headroom = row("headroom", lambda r: c64(32) - sum(
        tirx.Select(i64(row_sum, r) >= c64(1 << bit), c64(1), c64(0)) for bit in range(31)))
    # one_over_one_plus_x_for_x_in_0_1: half_denominator = (x + 1) / 2 rounded, then Newton-Raphson
    half = row("half", lambda r: tirx.truncdiv(
        (i64(row_sum, r) << i64(headroom, r)) - c64(1 << 31) + c64(INT32_MAX) + c64(1), c64(2)))
    estimate = row("newton0", lambda r: c64(1515870810) + te_srdhm_select(i64(half, r), c64(-1010580540)))
    for step in range(1, 4):
        prev = estimate
        product = row(f"hx{step}", lambda r, prev=prev: te_srdhm_select(i64(half, r), i64(prev, r)))
        estimate = row(f"newton{step}", lambda r, prev=prev, product=product: i64(prev, r) + te_saturating_shl(
            te_srdhm_select(i64(prev, r), c64(1 << 29) - i64(product, r)), 2))
    recip = row("recip", lambda r: te_saturating_shl(i64(estimate, r), 1))

    def scaled(r, c):
        return te_srdhm_select(i64(recip, r), exp_q31(r, c))

    prod = te.compute((outer, depth), lambda r, c: scaled(r, c).astype("int32"), name="prod")

    def out(r, c):
        # exponent = num_bits_over_unit + 31 - 8 = (12 - headroom) + 23. LiteRT CHECKs it is at most
        # 31 (it aborts on rows whose sum needs more); the clamp also gives TVM's simplifier a
        # bounded shift (with an unbounded one it folds the whole expression to a constant).
        exponent = tirx.min(tirx.max(c64(acc_bits + 31 - bits) - i64(headroom, r), c64(0)), c64(31))
        unsat = te_rdbpot_select(i64(prod, r, c), exponent)
        return tirx.max(tirx.min(unsat - c64(low), c64(low - 1)), c64(-low)).astype(out_dtype)

    output = te.compute((outer, depth), out, name="output")
    return [x, table, output]


ROW_STAGES_INT8 = ["recip", "newton3", "hx3", "newton2", "hx2", "newton1", "hx1", "newton0", "half",
                   "headroom", "row_sum", "row_max"]


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
    out = sch.get_sblock("output")
    if int8:
        prod = sch.get_sblock("prod")
        sch.compute_at(prod, sch.get_loops(out)[1])
    else:
        sch.compute_inline(sch.get_sblock("exp"))
    row = sch.get_loops(out)[0]
    for name in (ROW_STAGES_INT8 if int8 else ["row_sum", "row_max"]):
        block = sch.get_sblock(name)  # consumers first: each lands under the output's row loop
        # left in "global" scope: TVM puts small global temporaries on the C stack, while "local"
        # ones go through TVMBackendAllocWorkspace
        sch.compute_at(block, row)
    factor = spec.knobs.get("unroll", 1)
    if factor > 1:
        # only the output loop: TVM 0.27's C printer reuses a stale load of the accumulator when a
        # max reduction is unrolled (two updates both read the value from before the first)
        _, inner = sch.split(sch.get_loops(sch.get_sblock("output"))[1], [None, factor])
        sch.unroll(inner)
    # initialise the reductions before their loops (an init inside the loop also trips gcc's
    # -Wmaybe-uninitialized)
    for name in ("row_sum", "row_max"):
        block = sch.get_sblock(name)
        loops = sch.get_loops(block)
        if len(loops) > 1:  # a row of one element has no reduction loop left
            sch.decompose_reduction(block, loops[1])


def _knob_space(spec):
    depth = spec.attrs["depth"]
    return {"unroll": [1] + [f for f in (2, 4) if depth % f == 0]}


FAMILIES = {
    "softmax_int8": KernelFamily(_compute_int8, _schedule, _knob_space),
    "softmax_float32": KernelFamily(_compute_float32, _schedule, _knob_space),
}
