"""FULLY_CONNECTED: int8 (per-tensor or per-channel weights) and float32, any batch, keep_num_dims.

The input is read as [batches, depth] (depth = the weights' second dimension), the output as
[batches, units]: keep_num_dims only changes the output tensor's shape, not its bytes.
int8: acc = sum(w * (x - input_zp)) + bias, zero point folded into the bias; per-tensor multipliers
as TFLite's GetQuantizedConvolutionMultipler (the scale product in float), per-channel ones as for
convolutions; the rescaling rounds once ((acc * m + 2^(30-s)) >> (31-s)), as LiteRT's reference
FULLY_CONNECTED does, where convolutions round twice.
Knobs: weight_layout (OI: TFLite's rows; IO: units innermost, for tiles), oc_tile, unroll, and for
int8 microkernel: "dot_s8" (default) calls the dot-product micro-kernel (runtime/kernels/tk_mk.h) on
each tile of OI rows, "none" leaves the whole loop nest to TVM.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import (
    KernelFamily, constant, divisors_up_to, epilogue, float_act_attr, int8_accumulate_quant, param,
    schedule_accumulate, unsupported,
)


def lower_fully_connected(ctx, op):
    x_index, w_index = op.inputs[0], op.inputs[1]
    b_index = op.inputs[2] if len(op.inputs) > 2 else -1
    x, w, y = ctx.tensor(x_index), ctx.tensor(w_index), ctx.tensor(op.outputs[0])
    units, depth = w.shape
    size = int(np.prod(x.shape))
    if size % depth != 0:
        raise unsupported(op, f"input of {size} values is not a whole number of rows of {depth}")
    batches = size // depth
    if int(np.prod(y.shape)) != batches * units:
        raise unsupported(op, f"output shape {y.shape} does not hold {batches} x {units} values")
    attrs = {"batches": batches, "depth": depth, "units": units}
    weights = constant(ctx, w_index, op, "weights")
    bias = constant(ctx, b_index, op, "bias") if b_index >= 0 else None
    activation = op.attrs.get("activation", "NONE")
    flat_w = param("weights", w.dtype, (weights.size,), "const")
    if x.dtype == "int8":
        sums = weights.astype(np.int64).sum(axis=1)
        per_tensor = w.quant is not None and not w.quant.per_channel
        extra_params, extra_args, attrs = int8_accumulate_quant(op, x, w, y, sums, bias, attrs, activation,
                                                                float_product=per_tensor)
        # LiteRT's reference FULLY_CONNECTED rescales with one rounding (checked bit for bit against
        # LiteRT 2.3: double rounding differs in ~0.05% of outputs), unlike its convolutions
        attrs["rounding"] = "single"
        params = [param("input", "int8", (batches, depth), "input"), flat_w, *extra_params,
                  param("output", "int8", (batches, units), "output")]
        spec = ctx.spec("fully_connected_int8", params, attrs)
        args = [x_index, _layout(weights, spec.knobs["weight_layout"]), *extra_args, op.outputs[0]]
        return [KernelCall(spec, op.index, args)]
    if x.dtype != "float32":
        raise unsupported(op, f"input type {x.dtype}")
    attrs["act"] = float_act_attr(activation, op)
    attrs["bias"] = bias is not None
    params = [param("input", "float32", (batches, depth), "input"), flat_w]
    extra = []
    if bias is not None:
        params.append(param("bias", "float32", (units,), "const"))
        extra.append(np.asarray(bias, dtype=np.float32))
    params.append(param("output", "float32", (batches, units), "output"))
    spec = ctx.spec("fully_connected_float32", params, attrs)
    args = [x_index, _layout(weights, spec.knobs["weight_layout"]), *extra, op.outputs[0]]
    return [KernelCall(spec, op.index, args)]


def _layout(weights: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(weights if layout == "OI" else weights.T).reshape(-1)


def compute(spec):
    from tvm import te

    a = spec.attrs
    batches, depth, units = a["batches"], a["depth"], a["units"]
    int8 = spec.family.endswith("int8")
    x = te.placeholder((batches, depth), spec.params[0].dtype, name="input")
    wt = te.placeholder(spec.params[1].shape, spec.params[1].dtype, name="weights")
    k = te.reduce_axis((0, depth), name="k")
    acc_type = "int32" if int8 else "float32"
    if spec.knobs["weight_layout"] == "OI":
        w_at = lambda o, i: wt[o * depth + i]  # noqa: E731
    else:
        w_at = lambda o, i: wt[i * units + o]  # noqa: E731
    acc = te.compute((batches, units),
                     lambda b, o: te.sum(x[b, k].astype(acc_type) * w_at(o, k).astype(acc_type), axis=k),
                     name="acc")
    return [x, wt, *epilogue(spec, acc, oc_axis=1)]


def schedule(sch, spec):
    if spec.knobs.get("microkernel", "none") == "dot_s8" and spec.knobs["weight_layout"] == "OI":
        return _schedule_dot(sch, spec)
    schedule_accumulate(sch, spec, n_reduce=1)
    return None


def _schedule_dot(sch, spec):
    """int8, OI rows: per batch row and unit tile, one call of the dot-product micro-kernel
    (ops/microkernel.py; SMLAD on Cortex-M DSP cores) over the whole depth."""
    from .microkernel import blockize_dot, call_on_tiles, dot_s8_call, loops_at

    depth, tile = spec.attrs["depth"], spec.knobs["oc_tile"]
    out, acc = sch.get_sblock("output"), sch.get_sblock("acc")
    oc_outer, _ = sch.split(sch.get_loops(out)[-1], [None, tile])
    _, rows_loop, _ = loops_at(sch, acc, oc_outer)  # (batch, units tile, depth), unit loops kept
    sch.decompose_reduction(acc, rows_loop)
    name = blockize_dot(sch, rows_loop)  # units tile x depth
    return call_on_tiles(sch.mod["main"], {name: dot_s8_call(depth, depth, tile)})


def knob_space(spec):
    tiles = divisors_up_to(spec.attrs["units"], 8)
    space = {"weight_layout": ["OI", "IO"], "oc_tile": tiles, "unroll": [False, True]}
    if spec.family == "fully_connected_int8":
        # the micro-kernel reads OI rows (with IO it is not used); default: up to four rows a call
        best = max(t for t in tiles if t <= 4)
        space["oc_tile"] = [best, *[t for t in tiles if t != best]]
        space["microkernel"] = ["dot_s8", "none"]
    return space


OPS = {"FULLY_CONNECTED": lower_fully_connected}
FAMILIES = {
    "fully_connected_int8": KernelFamily(compute, schedule, knob_space),
    "fully_connected_float32": KernelFamily(compute, schedule, knob_space),
}
