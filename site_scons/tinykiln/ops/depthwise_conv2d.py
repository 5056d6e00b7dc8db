"""DEPTHWISE_CONV_2D: int8 (per-channel or per-tensor weights) and float32, any depth multiplier.

Output channel o reads input channel o // depth_multiplier; weights are TFLite's 1HW(C*M), kept as
is (output channels innermost already suit tiling). int8 as TFLite's DepthwiseConvPerChannel, with
the input zero point folded into the bias as for CONV_2D (padding taps read input_zp).
Knobs: oc_tile (output channels accumulated together), unroll.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import (
    KernelFamily, constant, divisors_up_to, epilogue, float_act_attr, int8_accumulate_quant, padded_input,
    param, schedule_accumulate, unsupported, window_padding,
)


def lower_depthwise_conv2d(ctx, op):
    x_index, w_index = op.inputs[0], op.inputs[1]
    b_index = op.inputs[2] if len(op.inputs) > 2 else -1
    x, w, y = ctx.tensor(x_index), ctx.tensor(w_index), ctx.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    _, kh, kw, oc = w.shape
    _, oh, ow, _ = y.shape
    if oc % c != 0:
        raise unsupported(op, f"{oc} output channels is not a multiple of {c} input channels")
    stride, dilation = tuple(op.attrs.get("stride", (1, 1))), tuple(op.attrs.get("dilation", (1, 1)))
    padding = op.attrs.get("padding", "VALID")
    attrs = {
        "in_shape": [n, h, wd, c], "out_shape": [n, oh, ow, oc], "kernel": [kh, kw],
        "stride": list(stride), "dilation": list(dilation),
        "pad": [*window_padding(padding, h, kh, stride[0], dilation[0], oh),
                *window_padding(padding, wd, kw, stride[1], dilation[1], ow)],
        "depth_multiplier": oc // c,
    }
    weights = constant(ctx, w_index, op, "filter")
    bias = constant(ctx, b_index, op, "bias") if b_index >= 0 else None
    activation = op.attrs.get("activation", "NONE")
    flat_w = param("weights", w.dtype, (weights.size,), "const")
    flat_data = np.ascontiguousarray(weights).reshape(-1)
    if x.dtype == "int8":
        sums = weights.astype(np.int64).reshape(-1, oc).sum(axis=0)
        extra_params, extra_args, attrs = int8_accumulate_quant(op, x, w, y, sums, bias, attrs, activation)
        params = [param("input", "int8", x.shape, "input"), flat_w, *extra_params,
                  param("output", "int8", y.shape, "output")]
        spec = ctx.spec("depthwise_conv2d_int8", params, attrs)
        return [KernelCall(spec, op.index, [x_index, flat_data, *extra_args, op.outputs[0]])]
    if x.dtype != "float32":
        raise unsupported(op, f"input type {x.dtype}")
    attrs["act"] = float_act_attr(activation, op)
    attrs["bias"] = bias is not None
    params = [param("input", "float32", x.shape, "input"), flat_w]
    args = [x_index, flat_data]
    if bias is not None:
        params.append(param("bias", "float32", (oc,), "const"))
        args.append(np.asarray(bias, dtype=np.float32))
    params.append(param("output", "float32", y.shape, "output"))
    spec = ctx.spec("depthwise_conv2d_float32", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def compute(spec):
    from tvm import te

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh_n, kw_n = a["kernel"]
    (sh, sw), (dh, dw) = a["stride"], a["dilation"]
    depth = a["depth_multiplier"]
    int8 = spec.family.endswith("int8")
    x = te.placeholder((n, h, w, c), spec.params[0].dtype, name="input")
    wt = te.placeholder(spec.params[1].shape, spec.params[1].dtype, name="weights")
    padded = padded_input(x, a, a["input_zp"] if int8 else 0.0)
    kh = te.reduce_axis((0, kh_n), name="kh")
    kw = te.reduce_axis((0, kw_n), name="kw")
    acc_type = "int32" if int8 else "float32"
    acc = te.compute(
        (n, oh, ow, oc),
        lambda b, r, s, o: te.sum(
            padded[b, r * sh + kh * dh, s * sw + kw * dw, o // depth if depth > 1 else o].astype(acc_type)
            * wt[(kh * kw_n + kw) * oc + o].astype(acc_type),
            axis=[kh, kw]),
        name="acc")
    return [x, wt, *epilogue(spec, acc, oc_axis=3)]


def schedule(sch, spec):
    schedule_accumulate(sch, spec, n_reduce=2)


def knob_space(spec):
    return {"oc_tile": divisors_up_to(spec.attrs["out_shape"][3], 8), "unroll": [False, True]}


OPS = {"DEPTHWISE_CONV_2D": lower_depthwise_conv2d}
FAMILIES = {
    "depthwise_conv2d_int8": KernelFamily(compute, schedule, knob_space),
    "depthwise_conv2d_float32": KernelFamily(compute, schedule, knob_space),
}
