"""SUM, REDUCE_MAX, REDUCE_MIN (int8 and float32) and REDUCE_PROD (float32) over constant axes,
with keep_dims and any set of axes (MEAN is ops/reduce.py).

LiteRT's arithmetic (reduce.cc):
  REDUCE_MAX/MIN  the extreme of the raw values; int8 requires the output quantized exactly like
                  the input (LiteRT's Eval refuses anything else), so codes pass through.
  SUM float32     a float32 sum in input order (reference_ops::ReduceGeneric), as REDUCE_PROD's
                  product.
  SUM int8        ("rescaling 8bit reduce sum": EvalSum -> QuantizedMeanOrSum with compute_sum)
                  the int32 sum of the codes minus input_zp * count, MultiplyByQuantizedMultiplier
                  by QuantizeMultiplier(double(input_scale) / double(output_scale)), + output_zp,
                  clamped to int8. LiteRT 2.3.0 takes this path also when the output is quantized
                  like the input (found by testing; the multiplier is then exactly 1); TFLite Micro
                  always does.
LiteRT 2.3.0's binary reads int8 SUM inputs as unsigned bytes and clamps the result to [0, 255]
(found by testing): it agrees with the above whenever every input code is >= 0 and the result
lies in [0, 127], which is what the tests compare; elsewhere the kernel follows the int8
reference source (and TFLite Micro), not that misreading.

Kernel: acc (the reduction, computed at the output's innermost loop: a scalar) and the output
stage. No knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint.prepare import quantize_multiplier
from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier
from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported
from .checks import OpView
from .rules import reduced_shape

REDUCERS = {"SUM": "sum", "REDUCE_MAX": "max", "REDUCE_MIN": "min", "REDUCE_PROD": "prod"}


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    """(input, axes): axes a constant int32 tensor (LiteRT refuses other types), each in range;
    the output has the reduced shape; int8 REDUCE_MAX/MIN keep the input's quantization."""
    if not v.need((2, 2)):
        return {}
    attrs = {"keep_dims": bool(v.options.get("keep_dims", False))}
    axes = v.inputs[1]
    if v.kind == "REDUCE_PROD" and v.x.dtype == "int8":
        v.fail("int8 REDUCE_PROD is not supported (float32 is)")
    if v.x.dtype == "int8" and v.kind in ("REDUCE_MAX", "REDUCE_MIN") and v.x.quant != v.y.quant:
        v.fail(f"int8 {v.kind} needs the output quantized like the input (LiteRT refuses it otherwise)")
    if not v.constant(axes, "axes", ("int32",)):
        return attrs
    rank = len(v.x.shape)
    values = axes.data.reshape(-1).tolist()
    if any(not -rank <= a < rank for a in values):
        v.fail(f"axes {values} out of range for rank {rank}")
        return attrs
    v.shape_is(v.y, reduced_shape(v.x.shape, {a % rank for a in values}, attrs["keep_dims"]))
    return attrs


# -- numpy models (the tests' oracles) --------------------------------------------------------------

def sum_multiplier(in_scale: float, out_scale: float) -> tuple[int, int]:
    """PrepareMeanOrSum: QuantizeMultiplier(double(input_scale) / double(output_scale))."""
    return quantize_multiplier(float(np.float64(np.float32(in_scale)) / np.float64(np.float32(out_scale))))


def sum_int8_reference(q, axes, keep_dims, in_q, out_q) -> np.ndarray:
    """SUM int8 as described above; in_q, out_q = (scale, zero_point)."""
    q = np.asarray(q, dtype=np.int64)
    axes = tuple(sorted({a % q.ndim for a in axes}))
    total = q.sum(axis=axes, keepdims=keep_dims)
    count = int(np.prod([q.shape[a] for a in axes], dtype=np.int64))
    m, s = sum_multiplier(in_q[0], out_q[0])
    y = multiply_by_quantized_multiplier(total - in_q[1] * count, m, s) + out_q[1]
    return np.clip(y, -128, 127).astype(np.int8)


def reduce_float_reference(kind: str, x, axes, keep_dims) -> np.ndarray:
    """float32 SUM / REDUCE_PROD in input order; REDUCE_MAX / MIN (also the int8 codes)."""
    x = np.asarray(x)
    axes = tuple(sorted({a % x.ndim for a in axes}))
    if kind in ("REDUCE_MAX", "REDUCE_MIN"):
        return (np.max if kind == "REDUCE_MAX" else np.min)(x, axis=axes, keepdims=keep_dims)
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(moved.shape[: x.ndim - len(axes)] + (-1,)).astype(np.float32)
    acc = np.full(flat.shape[:-1], 0.0 if kind == "SUM" else 1.0, np.float32)
    for i in range(flat.shape[-1]):
        acc = (acc + flat[..., i] if kind == "SUM" else acc * flat[..., i]).astype(np.float32)
    return np.expand_dims(acc, axes) if keep_dims else acc


# -- lowering ---------------------------------------------------------------------------------------

def lower_reduce(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    rank = len(x.shape)
    raw = np.atleast_1d(constant(ctx, op.inputs[1], op, "axes")).astype(np.int64).tolist()
    if any(not -rank <= a < rank for a in raw):
        raise unsupported(op, f"axes {raw} out of range for rank {rank}")
    axes = sorted({a % rank for a in raw})
    keep = bool(op.attrs.get("keep_dims", False))
    out_shape = reduced_shape(x.shape, axes, keep)
    if int(np.prod(out_shape, dtype=np.int64)) != int(np.prod(y.shape, dtype=np.int64)):
        raise unsupported(op, f"output shape {y.shape} does not match the reduction {out_shape}")
    if x.dtype != y.dtype or x.dtype not in ("int8", "float32"):
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    reducer = REDUCERS[op.kind]
    attrs = {"in_shape": list(x.shape), "axes": axes, "keep_dims": keep, "out_shape": out_shape,
             "reducer": reducer}
    if x.dtype == "int8":
        if reducer == "prod":
            raise unsupported(op, "int8 REDUCE_PROD")
        in_q, out_q = quant_params(x, "input", op), quant_params(y, "output", op)
        if reducer == "sum":
            count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
            m, s = sum_multiplier(in_q[0], out_q[0])
            attrs.update(rescale=True, input_zp=in_q[1], output_zp=out_q[1], count=count, multiplier=m, shift=s)
        elif reducer != "sum" and in_q != out_q:
            raise unsupported(op, "int8 output quantized differently from the input")
    spec = ctx.spec(f"reduce_{x.dtype}", [param("input", x.dtype, x.shape, "input"),
                                          param("output", y.dtype, out_shape, "output")], attrs)
    return [KernelCall(spec, op.index, [x_index, y_index])]


def _compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier

    a = spec.attrs
    dtype = spec.params[0].dtype
    in_shape, axes, keep, reducer = a["in_shape"], a["axes"], a["keep_dims"], a["reducer"]
    x = te.placeholder(tuple(in_shape), dtype, name="input")
    red = [te.reduce_axis((0, in_shape[d]), name=f"k{d}") for d in axes]
    widen = dtype == "int8" and reducer == "sum"  # int8 sums in int32, then rescaled
    acc_type = "int32" if widen else dtype
    prod = te.comm_reducer(lambda p, q: p * q, lambda t: tirx.const(1, t), name="prod")
    combine = {"sum": te.sum, "max": te.max, "min": te.min, "prod": prod}[reducer]

    def acc_fn(*o):
        idx, kept = [], 0
        for d in range(len(in_shape)):
            if d in axes:
                idx.append(red[axes.index(d)])
            else:
                idx.append(o[d] if keep else o[kept])
                kept += 1
        return combine(x[tuple(idx)].astype(acc_type), axis=red)

    out_shape = tuple(a["out_shape"])
    acc = te.compute(out_shape, acc_fn, name="acc")
    if a.get("rescale"):
        def out(*o):
            centred = acc[o] - tirx.const(a["input_zp"] * a["count"], "int32")
            scaled = te_multiply_by_quantized_multiplier(centred, a["multiplier"], a["shift"]) + a["output_zp"]
            return tirx.max(tirx.min(scaled, tirx.const(127, "int32")), tirx.const(-128, "int32")).astype("int8")
    else:
        def out(*o):
            return acc[o]
    output = te.compute(out_shape, out, name="output")
    return [x, output]


def _schedule(sch, spec):
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(sch.get_sblock("output"))
    if loops:
        sch.compute_at(acc, loops[-1])
    # the loops under the output's are the reduction's (those of extent 1 are gone); initialise
    # before them (an init inside the loop trips gcc's -Wmaybe-uninitialized)
    reduce_loops = sch.get_loops(acc)[len(loops):]
    if reduce_loops:
        sch.decompose_reduction(acc, reduce_loops[0])


FAMILIES = {
    "reduce_int8": KernelFamily(_compute, _schedule),
    "reduce_float32": KernelFamily(_compute, _schedule),
}
