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
    KernelFamily, clamp_float, constant, divisors_up_to, float_act_attr, int8_act_attr,
    param, quant_params, requantize, unsupported, window_padding,
)
from tinykiln.quant import quantize_multiplier


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
        params, args, attrs = _int8_quant(ctx, op, x, w, y, weights, bias, attrs, activation, axis_size=oc)
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


def _int8_quant(ctx, op, x, w, y, weights, bias, attrs, activation, axis_size):
    """Folded bias and requantization of an int8 conv-like op (conv, depthwise: channel = last
    output dim). Returns (extra params after the weights, their args, attrs)."""
    in_scale, in_zp = quant_params(x, "input", op)
    out_scale, out_zp = quant_params(y, "output", op)
    if w.quant is None:
        raise unsupported(op, "int8 filter without quantization")
    if any(z != 0 for z in w.quant.zero_point):
        raise unsupported(op, "int8 filter with a non-zero zero point (TFLite requires symmetric weights)")
    w_scales = list(w.quant.scale)
    if len(w_scales) == 1:
        w_scales = w_scales * axis_size
    elif len(w_scales) != axis_size:
        raise unsupported(op, f"{len(w_scales)} filter scales for {axis_size} output channels")
    # PopulateConvolutionQuantizationParams: double(input_scale) * double(filter_scale) / double(output_scale)
    pairs = [quantize_multiplier(float(np.float32(in_scale)) * float(np.float32(s)) / float(np.float32(out_scale)))
             for s in w_scales]
    attrs = dict(attrs, input_zp=in_zp, output_zp=out_zp, act=int8_act_attr(activation, out_scale, out_zp, op))
    folded = _folded_bias(weights, bias, in_zp, op)
    params = [param("bias", "int32", (axis_size,), "const")]
    args = [folded]
    if len(set(pairs)) == 1:
        attrs["multiplier"], attrs["shift"] = pairs[0]
    else:
        params += [param("multiplier", "int32", (axis_size,), "const"), param("shift", "int32", (axis_size,), "const")]
        args += [np.array([m for m, _ in pairs], dtype=np.int32), np.array([s for _, s in pairs], dtype=np.int32)]
    return params, args, attrs


def _folded_bias(weights: np.ndarray, bias, in_zp: int, op) -> np.ndarray:
    """bias - input_zp * (sum of each output channel's weights); output channel = last axis for
    depthwise (1HWC) and first for conv/fc (O...)."""
    if op.kind == "DEPTHWISE_CONV_2D":
        sums = weights.astype(np.int64).reshape(-1, weights.shape[-1]).sum(axis=0)
    else:
        sums = weights.astype(np.int64).reshape(weights.shape[0], -1).sum(axis=1)
    base = np.zeros_like(sums) if bias is None else np.asarray(bias, dtype=np.int64)
    folded = base - in_zp * sums
    if folded.min() < -(1 << 31) or folded.max() >= (1 << 31):
        raise unsupported(op, "folded bias overflows int32")
    return folded.astype(np.int32)


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


def padded_input(x, attrs, fill, channels_fn=None):
    """TE stage: the input with `fill` around it (inlined by the schedule into a select)."""
    from tvm import te, tirx

    n, h, w, c = attrs["in_shape"]
    pt, pb, pl, pr = attrs["pad"]
    if not any(attrs["pad"]):
        return x
    fill = tirx.const(fill, x.dtype)

    def value(b, r, s, ch):
        inside = tirx.all(r >= pt, r < pt + h, s >= pl, s < pl + w)
        return tirx.if_then_else(inside, x[b, r - pt, s - pl, ch], fill)

    return te.compute((n, h + pt + pb, w + pl + pr, c), value, name="pad")


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


def epilogue(spec, acc, oc_axis):
    """Params after the weights and the output stage: bias, requantization / clamp."""
    from tvm import te

    a = spec.attrs
    names = [p.name for p in spec.params]
    shape = acc.shape
    oc = spec.params[names.index("output")].shape[oc_axis]
    if spec.family.endswith("int8"):
        bias = te.placeholder((oc,), "int32", name="bias")
        per_channel = "multiplier" in names
        mult = te.placeholder((oc,), "int32", name="multiplier") if per_channel else None
        shift = te.placeholder((oc,), "int32", name="shift") if per_channel else None

        def out(*idx):
            o = idx[oc_axis]
            total = acc[idx] + bias[o]
            if per_channel:
                return requantize(total, a, mult[o], shift[o])
            return requantize(total, a)

        output = te.compute(shape, out, name="output")
        return [bias, *( [mult, shift] if per_channel else []), output]
    bias = te.placeholder((oc,), "float32", name="bias") if a["bias"] else None

    def out_f(*idx):
        value = acc[idx] + bias[idx[oc_axis]] if bias is not None else acc[idx]
        return clamp_float(value, a)

    output = te.compute(shape, out_f, name="output")
    return [*([bias] if bias is not None else []), output]


def schedule(sch, spec):
    schedule_accumulate(sch, spec, n_reduce=3)


def schedule_accumulate(sch, spec, n_reduce):
    """Shared schedule of conv-like kernels (acc = reduction; output = epilogue, oc innermost):
    output channels split by oc_tile; the accumulators of one tile live in a small array on the C
    stack (TVM keeps temporaries under 1 KiB there), computed at the tile's loop, with the oc tile innermost so each input load feeds the tile."""
    from tvm.s_tir.schedule import SBlockRV  # noqa: F401  (documents the RV types in use)

    try:
        sch.compute_inline(sch.get_sblock("pad"))
    except Exception:  # no padding stage: nothing to inline
        pass
    tile = spec.knobs.get("oc_tile", 1)
    out = sch.get_sblock("output")
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(out)
    oc_outer, oc_inner = sch.split(loops[-1], [None, tile])
    sch.compute_at(acc, oc_outer)
    acc_loops = sch.get_loops(acc)
    reduce = acc_loops[-n_reduce:]
    if tile > 1:  # compute_at drops unit loops: the tile loop exists only for tiles > 1
        spatial_inner = acc_loops[-1 - n_reduce]
        sch.reorder(*reduce, spatial_inner)
    sch.decompose_reduction(acc, reduce[0])
    if spec.knobs.get("unroll") and tile > 1:
        sch.unroll(oc_inner)
        sch.unroll(spatial_inner)
        sch.unroll(sch.get_loops(sch.get_sblock("acc_init"))[-1])


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
