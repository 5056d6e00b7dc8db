"""SVDF (singular value decomposition filter): float32, and int8 with an int16 state as TFLite quantizes
it. A stateful op: input 4 is a variable tensor, the last `memory` feature values of every filter,
kept from one run to the next (in the model's state region, memplan) and rewritten in place.

LiteRT's reference kernels (kernels/svdf.cc, internal/reference/svdf.h), per batch row b, with F
filters, M memory slots, U = F / rank units; the stored state's last slot is always 0 (the previous
run shifted it in):
    feature[f]   = sum_i weights_feature[f, i] * (x[i] - input_zp)
                   int8: clamp(MultiplyByQuantizedMultiplier(feature, scale 1), int16)
    state[f, M-1] = feature[f]                  (the state with this run's activation in its last slot)
    time[f]      = sum_m weights_time[f, m] * state[f, m]
    out[u]       = bias[u] + sum_r time[u * rank + r]
                   int8: clamp(MultiplyByQuantizedMultiplier(out, scale 2) + output_zp, int8)
                   float32: the fused activation
    state        = state shifted left by one slot, 0 in the last
scale 1 = input_scale * weights_feature_scale / state_scale, scale 2 = state_scale *
weights_time_scale / output_scale, each a float32 product made double for QuantizeMultiplier.
int8 SVDF needs fused activation RELU (LiteRT's Eval refuses others) but does not apply it: the int8
clamp is the only one. The int16 state must be symmetric (zero point 0), as LiteRT assumes.

Kernel: one C function. The state with this run's activation goes to an arena scratch (the state
param is read into it before anything writes the state), the time product and the output follow,
and the shifted state is written back through a second pointer to the same state bytes ("state_out",
the same graph tensor: AOT and kernelrun pass one buffer for both). No knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint.prepare import quantize_multiplier
from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier
from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported
from .checks import OpView

STATE_INPUT = 4  # the variable tensor among SVDF's inputs


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    if len(v.inputs) != 5 or len(v.outputs) != 1:
        v.fail(f"takes 5 inputs (the bias may be omitted) and 1 output, has {len(v.inputs)} and {len(v.outputs)}")
        return {}
    missing = [i for i in (0, 1, 2) if v.input(i) is None]
    if missing:
        v.fail(f"required input {missing[0]} is omitted (-1)")
        return {}
    x, wf, wt, y = v.x, v.input(1), v.input(2), v.y
    bias, state = v.input(3), v.input(4)
    activation = v.activation()
    rank = int(v.options.get("rank", 0))
    attrs = {"rank": rank, "activation": activation}
    if state is None:
        v.fail("the state (input 4) is omitted")
        return attrs
    if not state.variable:
        v.fail(f"state '{state.name}' (input 4) is not a variable tensor")
    if not (v.rank(x, 2, "input") and v.rank(wf, 2, "weights_feature") and v.rank(wt, 2, "weights_time")
            and v.rank(state, 2, "state")):
        return attrs
    batch, depth = x.shape
    filters, memory = wt.shape
    if rank < 1 or filters % rank:
        v.fail(f"rank {rank} does not divide the {filters} filters")
        return attrs
    units = filters // rank
    if wf.shape != (filters, depth):
        v.fail(f"weights_feature '{wf.name}' has shape {list(wf.shape)}, expected {[filters, depth]}")
    if state.shape != (batch, filters * memory):
        v.fail(f"state '{state.name}' has shape {list(state.shape)}, expected {[batch, filters * memory]}")
    v.shape_is(y, (batch, units))
    if bias is not None and bias.shape != (units,):
        v.fail(f"bias '{bias.name}' has shape {list(bias.shape)}, expected {[units]}")
    for t, role in ((wf, "weights_feature"), (wt, "weights_time")):
        if not t.is_constant:
            v.fail(f"{role} '{t.name}' must be a constant tensor")
    if x.dtype == "float32":
        want = {"weights_feature": (wf, "float32"), "weights_time": (wt, "float32"), "state": (state, "float32")}
        if bias is not None:
            want["bias"] = (bias, "float32")
    else:
        want = {"weights_feature": (wf, "int8"), "weights_time": (wt, "int16"), "state": (state, "int16")}
        if bias is not None:
            want["bias"] = (bias, "int32")
        if activation != "RELU":
            v.fail(f"int8 SVDF with fused activation {activation}: LiteRT runs it only with RELU")
        sq = state.quant
        if sq is None or sq.per_channel or sq.zero_point[0] != 0:
            v.fail(f"int16 state '{state.name}' must be quantized per tensor with zero point 0")
        for t in (wf, wt):
            if t.quant is None or t.quant.per_channel:
                v.fail(f"'{t.name}' must be quantized per tensor")
    for role, (t, dtype) in want.items():
        if t.dtype != dtype:
            v.fail(f"{role} '{t.name}' is {t.dtype}, expected {dtype} with {x.dtype} input")
        if role == "bias" and not t.is_constant:
            v.fail(f"bias '{t.name}' must be a constant tensor")
    return attrs


# -- numpy models (the tests' oracles) --------------------------------------------------------------

def svdf_int8_reference(x, state, wf, wt, bias, rank, input_zp, output_zp, scale1, scale2):
    """One int8 run: (output int8 [batch, units], the new int16 state), as LiteRT computes them."""
    batch = x.shape[0]
    filters, memory = wt.shape
    st = np.asarray(state, np.int64).reshape(batch, filters, memory).copy()
    feature = (np.asarray(x, np.int64) - input_zp) @ np.asarray(wf, np.int64).T
    st[:, :, -1] = np.clip(multiply_by_quantized_multiplier(feature, *scale1), -32768, 32767)
    time = (st * np.asarray(wt, np.int64)).sum(-1)
    acc = time.reshape(batch, -1, rank).sum(-1) + (0 if bias is None else np.asarray(bias, np.int64))
    out = np.clip(multiply_by_quantized_multiplier(acc, *scale2) + output_zp, -128, 127).astype(np.int8)
    shifted = np.concatenate([st[:, :, 1:], np.zeros_like(st[:, :, :1])], axis=-1)
    return out, shifted.reshape(batch, -1).astype(np.int16)


def int8_scales(x, wf, wt, state, y) -> tuple[tuple[int, int], tuple[int, int]]:
    """(multiplier, shift) of scale 1 and scale 2: float32 arithmetic, then QuantizeMultiplier."""
    s = {name: np.float32(t.quant.scale[0]) for name, t in
         (("x", x), ("wf", wf), ("wt", wt), ("state", state), ("y", y))}
    scale1 = float(np.float32(s["x"] * s["wf"]) / s["state"])
    scale2 = float(np.float32(s["state"] * s["wt"]) / s["y"])
    return quantize_multiplier(scale1), quantize_multiplier(scale2)


# -- lowering ---------------------------------------------------------------------------------------

def lower_svdf(ctx, op):
    x_i, wf_i, wt_i = op.inputs[0], op.inputs[1], op.inputs[2]
    b_i = op.inputs[3] if len(op.inputs) > 3 else -1
    s_i = op.inputs[STATE_INPUT]
    x, wf, wt, st, y = (ctx.tensor(i) for i in (x_i, wf_i, wt_i, s_i, op.outputs[0]))
    batch, depth = x.shape
    filters, memory = wt.shape
    rank = int(op.attrs["rank"])
    units = filters // rank
    attrs = {"batch": batch, "depth": depth, "filters": filters, "memory": memory, "rank": rank}
    weights_feature = constant(ctx, wf_i, op, "weights_feature")
    weights_time = constant(ctx, wt_i, op, "weights_time")
    if x.dtype == "int8":
        acc_type, state_type = "int32", "int16"
        attrs["input_zp"] = quant_params(x, "input", op)[1]
        attrs["output_zp"] = quant_params(y, "output", op)[1]
        attrs["scale1"], attrs["scale2"] = (list(s) for s in int8_scales(x, wf, wt, st, y))
    elif x.dtype == "float32":
        from .epilogue import float_act_attr

        acc_type, state_type = "float32", "float32"
        attrs["act"] = float_act_attr(op.attrs["activation"], op)
    else:
        raise unsupported(op, f"input type {x.dtype}")
    bias = constant(ctx, b_i, op, "bias") if b_i >= 0 else np.zeros(units, acc_type)
    state_shape = (batch, filters * memory)
    params = [param("input", x.dtype, (batch, depth), "input"),
              param("weights_feature", wf.dtype, (filters * depth,), "const"),
              param("weights_time", wt.dtype, (filters * memory,), "const"),
              param("bias", acc_type, (units,), "const"),
              param("state", state_type, state_shape, "input"),
              param("current", state_type, state_shape, "scratch"),
              param("output", y.dtype, (batch, units), "output"),
              param("state_out", state_type, state_shape, "output")]
    spec = ctx.spec(f"svdf_{x.dtype}", params, attrs)
    args = [x_i, np.ascontiguousarray(weights_feature).reshape(-1), np.ascontiguousarray(weights_time).reshape(-1),
            np.asarray(bias, acc_type).reshape(-1), s_i, None, op.outputs[0], s_i]
    return [KernelCall(spec, op.index, args)]


def compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier

    a = spec.attrs
    batch, depth, filters, memory, rank = a["batch"], a["depth"], a["filters"], a["memory"], a["rank"]
    units = filters // rank
    int8 = spec.family == "svdf_int8"
    acc_type = "int32" if int8 else "float32"
    state_type = spec.params[4].dtype
    x = te.placeholder((batch, depth), spec.params[0].dtype, name="input")
    wf = te.placeholder((filters * depth,), spec.params[1].dtype, name="weights_feature")
    wt = te.placeholder((filters * memory,), spec.params[2].dtype, name="weights_time")
    bias = te.placeholder((units,), acc_type, name="bias")
    state = te.placeholder((batch, filters * memory), state_type, name="state")

    i = te.reduce_axis((0, depth), name="i")
    if int8:
        zp = tirx.const(a["input_zp"], "int32")
        feature = te.compute((batch, filters), lambda b, f: te.sum(
            wf[f * depth + i].astype("int32") * (x[b, i].astype("int32") - zp), axis=i), name="feature")

        def activation(b, f):
            scaled = te_multiply_by_quantized_multiplier(feature[b, f], *a["scale1"])
            return tirx.max(tirx.min(scaled, tirx.const(32767, "int32")), tirx.const(-32768, "int32")).astype("int16")
    else:
        feature = te.compute((batch, filters), lambda b, f: te.sum(wf[f * depth + i] * x[b, i], axis=i),
                             name="feature")

        def activation(b, f):
            return feature[b, f]

    current = te.compute((batch, filters * memory), lambda b, k: tirx.if_then_else(
        tirx.floormod(k, memory) == memory - 1, activation(b, tirx.floordiv(k, memory)), state[b, k]),
        name="current")
    m = te.reduce_axis((0, memory), name="m")
    time = te.compute((batch, filters), lambda b, f: te.sum(
        wt[f * memory + m].astype(acc_type) * current[b, f * memory + m].astype(acc_type), axis=m), name="time")
    r = te.reduce_axis((0, rank), name="r")
    summed = te.compute((batch, units), lambda b, u: te.sum(time[b, u * rank + r], axis=r), name="summed")
    if int8:
        def out(b, u):
            scaled = te_multiply_by_quantized_multiplier(summed[b, u] + bias[u], *a["scale2"])
            value = scaled + tirx.const(a["output_zp"], "int32")
            return tirx.max(tirx.min(value, tirx.const(127, "int32")), tirx.const(-128, "int32")).astype("int8")
    else:
        from .epilogue import clamp_float

        def out(b, u):
            return clamp_float(bias[u] + summed[b, u], a)
    output = te.compute((batch, units), out, name="output")
    zero = tirx.const(0, state_type)
    state_out = te.compute((batch, filters * memory), lambda b, k: tirx.if_then_else(
        tirx.floormod(k, memory) == memory - 1, zero, current[b, tirx.min(k + 1, filters * memory - 1)]),
        name="state_out")
    return [x, wf, wt, bias, state, current, output, state_out]


FAMILIES = {
    "svdf_int8": KernelFamily(compute),
    "svdf_float32": KernelFamily(compute),
}
