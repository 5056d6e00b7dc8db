"""CONV_2D: int8 (per-channel or per-tensor weights) and float32.

int8 follows TFLite's reference ConvPerChannel: acc = sum(w * (x - input_zp)) over the taps inside
the image (padding taps add nothing), + bias, requantized per output channel, + output_zp, clamped
to the fused activation. We pad with input_zp instead, so every tap is (x - zp) = 0 there and
sum(w * (x - zp)) = sum(w * x) - zp * sum(w): the second term is folded into the bias at build time.

Weights are a flat const array whose order is the `weight_layout` knob:
  OHWI  TFLite's order: one output channel's taps are contiguous (dot products over input channels)
  HWIO  output channels innermost: neighbouring output channels share each input load (oc tiling)
Knobs: weight_layout, oc_tile (output channels accumulated together), unroll (unroll the oc tile).
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import (
    KernelFamily, constant, divisors_up_to, epilogue, int8_accumulate_quant, float_act_attr, int8_act_attr, padded_input, param,
    quant_params, schedule_accumulate, unsupported, window_padding,
)


def lower_conv2d(ctx, op):
    x_index, w_index = op.inputs[0], op.inputs[1]
    b_index = op.inputs[2] if len(op.inputs) > 2 else -1
    x, w, y = ctx.tensor(x_index), ctx.tensor(w_index), ctx.tensor(op.outputs[0])
    n, h, wd, c = x.shape
    oc, kh, kw, ic = w.shape
    _, oh, ow, _ = y.shape
    if ic != c:
        raise unsupported(op, f"grouped convolution (filter has {ic} input channels, input has {c})")
    stride, dilation = tuple(op.attrs.get("stride", (1, 1))), tuple(op.attrs.get("dilation", (1, 1)))
    padding = op.attrs.get("padding", "VALID")
    pad_h = window_padding(padding, h, kh, stride[0], dilation[0], oh)
    pad_w = window_padding(padding, wd, kw, stride[1], dilation[1], ow)
    attrs = {
        "in_shape": [n, h, wd, c], "out_shape": [n, oh, ow, oc], "kernel": [kh, kw],
        "stride": list(stride), "dilation": list(dilation), "pad": [*pad_h, *pad_w],
    }
    weights = constant(ctx, w_index, op, "filter")
    bias = constant(ctx, b_index, op, "bias") if b_index >= 0 else None
    activation = op.attrs.get("activation", "NONE")
    flat_w = param("weights", w.dtype, (weights.size,), "const")

    if x.dtype == "int8":
        sums = weights.astype(np.int64).reshape(oc, -1).sum(axis=1)
        params, args, attrs = int8_accumulate_quant(op, x, w, y, sums, bias, attrs, activation)
        params = [param("input", "int8", x.shape, "input"), flat_w, *params,
                  param("output", "int8", y.shape, "output")]
        spec = ctx.spec("conv2d_int8", params, attrs)
        args = [x_index, _layout(weights, spec.knobs["weight_layout"]), *args, op.outputs[0]]
        return [KernelCall(spec, op.index, args)]

    if x.dtype != "float32":
        raise unsupported(op, f"input type {x.dtype}")
    attrs["act"] = float_act_attr(activation, op)
    attrs["bias"] = bias is not None
    params = [param("input", "float32", x.shape, "input"), flat_w]
    extra = []
    if bias is not None:
        params.append(param("bias", "float32", (oc,), "const"))
        extra.append(np.asarray(bias, dtype=np.float32))
    params.append(param("output", "float32", y.shape, "output"))
    spec = ctx.spec("conv2d_float32", params, attrs)
    args = [x_index, _layout(weights, spec.knobs["weight_layout"]), *extra, op.outputs[0]]
    return [KernelCall(spec, op.index, args)]


def _layout(weights: np.ndarray, layout: str) -> np.ndarray:
    if layout == "OHWI":
        return np.ascontiguousarray(weights).reshape(-1)
    if layout == "HWIO":
        return np.ascontiguousarray(weights.transpose(1, 2, 3, 0)).reshape(-1)
    raise ValueError(layout)


def _weight_index(spec, o, kh, kw, i):
    kh_n, kw_n = spec.attrs["kernel"]
    oc_n, ic_n = spec.attrs["out_shape"][3], spec.attrs["in_shape"][3]
    if spec.knobs["weight_layout"] == "OHWI":
        return ((o * kh_n + kh) * kw_n + kw) * ic_n + i
    return ((kh * kw_n + kw) * ic_n + i) * oc_n + o


def compute(spec):
    from tvm import te

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh_n, kw_n = a["kernel"]
    (sh, sw), (dh, dw) = a["stride"], a["dilation"]
    int8 = spec.family.endswith("int8")
    x = te.placeholder((n, h, w, c), spec.params[0].dtype, name="input")
    wt = te.placeholder(spec.params[1].shape, spec.params[1].dtype, name="weights")
    padded = padded_input(x, a, a["input_zp"] if int8 else 0.0)
    kh = te.reduce_axis((0, kh_n), name="kh")
    kw = te.reduce_axis((0, kw_n), name="kw")
    ic = te.reduce_axis((0, c), name="ic")
    acc_type = "int32" if int8 else "float32"
    acc = te.compute(
        (n, oh, ow, oc),
        lambda b, r, s, o: te.sum(
            padded[b, r * sh + kh * dh, s * sw + kw * dw, ic].astype(acc_type)
            * wt[_weight_index(spec, o, kh, kw, ic)].astype(acc_type),
            axis=[kh, kw, ic]),
        name="acc")
    return [x, wt, *epilogue(spec, acc, oc_axis=3)]


def schedule(sch, spec):
    schedule_accumulate(sch, spec, n_reduce=3)


def knob_space(spec):
    oc = spec.attrs["out_shape"][3]
    return {
        "weight_layout": ["OHWI", "HWIO"],
        "oc_tile": divisors_up_to(oc, 8),
        "unroll": [False, True],
    }


OPS = {"CONV_2D": lower_conv2d}
FAMILIES = {
    "conv2d_int8": KernelFamily(compute, schedule, knob_space),
    "conv2d_float32": KernelFamily(compute, schedule, knob_space),
}
