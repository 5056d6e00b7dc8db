"""MEAN over constant axes: int8, int16 (16x8 quantization: the int8 arithmetic, clamped to int16) and
float32.

int8 is LiteRT's reference_ops::QuantizedMeanOrSum (compute_sum=false), what BUILTIN_REF runs for
every axis set in ai-edge-litert 2.3: the int32 sum of the raw codes, minus input_zp * count, then
one MultiplyByQuantizedMultiplier whose multiplier folds input_scale / output_scale and 1 / count
(tinykiln.ops.reference.mean_multiplier), + output_zp, clamped to int8.

float32 is reference_ops::Mean: a float32 sum in input order, divided by the count.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from . import reference as ref
from .base import KernelFamily, constant, param, quant_params, unsupported
from .rules import reduced_shape


def lower_mean(ctx, op):
    x_index, axes_index = op.inputs[0], op.inputs[1]
    y_index = op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    rank = len(x.shape)
    raw_axes = np.atleast_1d(constant(ctx, axes_index, op, "axes")).astype(np.int64).tolist()
    if any(not -rank <= a < rank for a in raw_axes):
        raise unsupported(op, f"axes {raw_axes} out of range for rank {rank}")
    axes = sorted({a % rank for a in raw_axes})
    keep_dims = bool(op.attrs.get("keep_dims", False))
    out_shape = reduced_shape(x.shape, axes, keep_dims)
    if int(np.prod(out_shape, dtype=np.int64)) != int(np.prod(y.shape, dtype=np.int64)):
        raise unsupported(op, f"output shape {y.shape} does not match the reduction {out_shape}")
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    attrs = {"in_shape": list(x.shape), "axes": axes, "keep_dims": keep_dims, "out_shape": out_shape}
    if x.dtype == y.dtype and x.dtype in ("int8", "int16"):
        in_scale, in_zp = quant_params(x, "input", op)
        out_scale, out_zp = quant_params(y, "output", op)
        multiplier, shift = ref.mean_multiplier(in_scale, out_scale, count)
        attrs.update(input_zp=in_zp, output_zp=out_zp, multiplier=multiplier, shift=shift, count=count)
        family = f"mean_{x.dtype}"
    elif x.dtype == "float32" and y.dtype == "float32":
        attrs["count"] = count
        family = "mean_float32"
    else:
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    spec = ctx.spec(family, [param("input", x.dtype, x.shape, "input"),
                             param("output", y.dtype, out_shape, "output")], attrs)
    return [KernelCall(spec, op.index, [x_index, y_index])]


def _compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier

    a = spec.attrs
    int8 = spec.family in ("mean_int8", "mean_int16")  # the integer path (int16: 16x8 quantization)
    in_shape, axes, keep = a["in_shape"], a["axes"], a["keep_dims"]
    x = te.placeholder(tuple(in_shape), spec.params[0].dtype, name="input")
    red = [te.reduce_axis((0, in_shape[d]), name=f"k{d}") for d in axes]
    acc_type = "int32" if int8 else "float32"

    def acc_fn(*o):
        idx, kept = [], 0
        for d in range(len(in_shape)):
            if d in axes:
                idx.append(red[axes.index(d)])
            else:
                idx.append(o[d] if keep else o[kept])
                kept += 1
        return te.sum(x[tuple(idx)].astype(acc_type), axis=red)

    out_shape = tuple(a["out_shape"])
    acc = te.compute(out_shape, acc_fn, name="acc")
    if int8:
        def out(*o):
            centred = acc[o] - tirx.const(a["input_zp"] * a["count"], "int32")
            scaled = te_multiply_by_quantized_multiplier(centred, a["multiplier"], a["shift"]) + a["output_zp"]
            lo, hi = (-128, 127) if spec.family == "mean_int8" else (-32768, 32767)
            return tirx.max(tirx.min(scaled, tirx.const(hi, "int32")), tirx.const(lo, "int32")).astype(
                spec.params[0].dtype)
    else:
        def out(*o):
            return acc[o] / tirx.const(float(a["count"]), "float32")  # an integer: printed exactly
    output = te.compute(out_shape, out, name="output")
    return [x, output]


def _schedule(sch, spec):
    acc = sch.get_sblock("acc")
    out = sch.get_sblock("output")
    loops = sch.get_loops(out)
    if loops:
        sch.compute_at(acc, loops[-1])
    # the loops under the output's are the reduction's (those of extent 1 are gone); initialise
    # before them (an init inside the loop trips gcc's -Wmaybe-uninitialized)
    reduce_loops = sch.get_loops(acc)[len(loops):]
    if reduce_loops:
        sch.decompose_reduction(acc, reduce_loops[0])


FAMILIES = {
    "mean_int8": KernelFamily(_compute, _schedule),
    "mean_float32": KernelFamily(_compute, _schedule),
    "mean_int16": KernelFamily(_compute, _schedule),
}
