"""CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED and TRANSPOSE_CONV with 16x8 quantization: int16 activations (zero
point 0, as LiteRT's Prepare requires), int8 symmetric weights, an int64 bias (or int32, which LiteRT
takes too), int16 output.

As LiteRT's reference kernels (reference_integer_ops::ConvPerChannel, DepthwiseConvPerChannel,
FullyConnected and TransposeConv over int16 inputs; TRANSPOSE_CONV's sum in the gather form of
ops/transpose_conv.py): acc = sum(w * x) over the taps inside the image (the zero padding
adds nothing, so we pad with 0), + bias, then MultiplyByQuantizedMultiplier on the accumulator, clamped
to the fused activation's int16 range (no output zero point). The accumulator's type is the bias's:
  int64  the int64 overload: the multiplier reduced to 16 bits and one rounding,
         (acc + bias) * rm + 2^(T - 1) >> T with T = 15 - shift; bias * rm + 2^(T - 1) is one int64
         constant per channel (param "offset"), rm and T are params "multiplier" and "shift";
         FULLY_CONNECTED instead keeps the whole multiplier m, T = 31 - shift (LiteRT 2.3's int16
         FULLY_CONNECTED rounds once with it, checked bit for bit: the reduced one differs);
  int32  (CONV_2D only: LiteRT's depthwise and fully connected take int64 biases alone) the int32
         overload (TFLite's double rounding, fixedpoint.te), params bias/multiplier/shift.
LiteRT 2.3 refuses int16 CONV_2D and DEPTHWISE_CONV_2D without a bias; we compute them with a zero one.
The multipliers are those of the int8 kernels (per channel: double(s_in) * double(s_w) / double(s_out);
per-tensor FULLY_CONNECTED: the scale product in float). Output stage and accumulation are plain TE,
scheduled as the other conv-like kernels (ops/accumulate.py: the accumulators of one output
channel at a time). No knobs.

    lower_conv2d_int16 / lower_depthwise_int16 / lower_fully_connected_int16 / lower_transpose_conv_int16
(the 16x8 rules of the importer, the int64-only biases among them, are in ops/int16.py)
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .accumulate import padded_input, schedule_accumulate
from .base import KernelFamily, constant, param, quant_params, unsupported
from .rules import window_padding

# -- build time -------------------------------------------------------------------------------------

def _quant(op, x, w, y, bias, channels, float_product=False, single=False):
    """(params after the weights, their args, attrs) of the output stage (see the module doc)."""
    from tinykiln.fixedpoint.prepare import activation_range_int16, quantize_multiplier, reduced_multiplier

    in_scale, _ = quant_params(x, "input", op)
    out_scale, _ = quant_params(y, "output", op)
    if w.quant is None or any(z != 0 for z in w.quant.zero_point):
        raise unsupported(op, "16x8 weights must be int8, symmetrically quantized")
    scales = list(w.quant.scale)
    if len(scales) == 1:
        scales *= channels
    elif len(scales) != channels:
        raise unsupported(op, f"{len(scales)} weight scales for {channels} output channels")
    f32 = np.float32
    if float_product:
        reals = [float(f32(in_scale) * f32(s)) / float(f32(out_scale)) for s in scales]
    else:
        reals = [float(f32(in_scale)) * float(f32(s)) / float(f32(out_scale)) for s in scales]
    pairs = [quantize_multiplier(r) for r in reals]
    try:
        act = list(activation_range_int16(op.attrs.get("activation", "NONE"), out_scale, 0))
    except ValueError:
        raise unsupported(op, f"fused activation {op.attrs.get('activation')}") from None
    base = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(-1)
    acc = "int32" if bias is not None and np.asarray(bias).dtype == np.int32 else "int64"
    attrs = {"act": act, "acc": acc}
    if acc == "int32":
        params = [param("bias", "int32", (channels,), "const")]
        args = [base.astype(np.int32), np.array([m for m, _ in pairs], np.int32),
                np.array([s for _, s in pairs], np.int32)]
    elif single:
        reduced = [m for m, _ in pairs]
        totals = [31 - s for _, s in pairs]
    else:
        reduced = [reduced_multiplier(m) for m, _ in pairs]
        totals = [15 - s for _, s in pairs]
    if acc == "int64":
        offsets = [int(b) * r + (1 << (t - 1)) for b, r, t in zip(base.tolist(), reduced, totals)]
        params = [param("offset", "int64", (channels,), "const")]
        args = [np.array(offsets, np.int64), np.array(reduced, np.int32), np.array(totals, np.int32)]
    params += [param("multiplier", "int32", (channels,), "const"), param("shift", "int32", (channels,), "const")]
    return params, args, attrs


def _window_attrs(op, x, kernel, y):
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    kh, kw = kernel
    stride, dilation = tuple(op.attrs.get("stride", (1, 1))), tuple(op.attrs.get("dilation", (1, 1)))
    padding = op.attrs.get("padding", "VALID")
    return {"in_shape": [n, h, wd, c], "out_shape": [n, oh, ow, oc], "kernel": [kh, kw],
            "stride": list(stride), "dilation": list(dilation),
            "pad": [*window_padding(padding, h, kh, stride[0], dilation[0], oh),
                    *window_padding(padding, wd, kw, stride[1], dilation[1], ow)]}


def _bias(ctx, op):
    b_index = op.inputs[2] if len(op.inputs) > 2 else -1
    return constant(ctx, b_index, op, "bias") if b_index >= 0 else None


def lower_conv2d_int16(ctx, op):
    x, w, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    oc, kh, kw, ic = w.shape
    if ic != x.shape[3]:
        raise unsupported(op, f"grouped convolution (filter has {ic} input channels, input has {x.shape[3]})")
    weights = constant(ctx, op.inputs[1], op, "filter")
    attrs = _window_attrs(op, x, (kh, kw), y)
    params, args, extra = _quant(op, x, w, y, _bias(ctx, op), oc)
    return _call(ctx, op, "conv2d_int16", x, weights, params, args, dict(attrs, **extra))


def lower_depthwise_int16(ctx, op):
    x, w, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    _, kh, kw, oc = w.shape
    if oc % x.shape[3]:
        raise unsupported(op, f"{oc} output channels is not a multiple of {x.shape[3]} input channels")
    weights = constant(ctx, op.inputs[1], op, "filter")
    attrs = dict(_window_attrs(op, x, (kh, kw), y), depth_multiplier=oc // x.shape[3])
    params, args, extra = _quant(op, x, w, y, _bias(ctx, op), oc)
    return _call(ctx, op, "depthwise_conv2d_int16", x, weights, params, args, dict(attrs, **extra))


def lower_fully_connected_int16(ctx, op):
    x, w, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1]), ctx.tensor(op.outputs[0])
    units, depth = w.shape
    size = int(np.prod(x.shape))
    if size % depth:
        raise unsupported(op, f"input of {size} values is not a whole number of rows of {depth}")
    batches = size // depth
    weights = constant(ctx, op.inputs[1], op, "weights")
    per_tensor = not w.quant.per_channel if w.quant is not None else True
    params, args, extra = _quant(op, x, w, y, _bias(ctx, op), units, float_product=per_tensor, single=True)
    attrs = dict({"batches": batches, "depth": depth, "units": units}, **extra)
    return _call(ctx, op, "fully_connected_int16", x, weights, params, args, attrs,
                 in_shape=(batches, depth), out_shape=(batches, units))


def lower_transpose_conv_int16(ctx, op):
    from .transpose_conv import transpose_padding

    w, x, y = ctx.tensor(op.inputs[1]), ctx.tensor(op.inputs[2]), ctx.tensor(op.outputs[0])
    n, h, wd, ic = x.shape
    oc, kh, kw, wic = w.shape
    _, oh, ow, yoc = y.shape
    if wic != ic or yoc != oc or y.shape[0] != n:
        raise unsupported(op, f"input {list(x.shape)}, filter {list(w.shape)}, output {list(y.shape)}")
    stride = list(op.attrs.get("stride", (1, 1)))
    padding = op.attrs.get("padding", "SAME")
    attrs = {"in_shape": [n, h, wd, ic], "out_shape": [n, oh, ow, oc], "kernel": [kh, kw], "stride": stride,
             "pad": [transpose_padding(padding, oh, kh, stride[0]), transpose_padding(padding, ow, kw, stride[1])]}
    b_index = op.inputs[3] if len(op.inputs) > 3 else -1
    bias = constant(ctx, b_index, op, "bias") if b_index >= 0 else None
    weights = constant(ctx, op.inputs[1], op, "filter")
    params, args, extra = _quant(op, x, w, y, bias, oc)
    calls = _call(ctx, op, "transpose_conv_int16", x, weights, params, args, dict(attrs, **extra), x_index=2)
    return calls


def _call(ctx, op, family, x, weights, params, args, attrs, in_shape=None, out_shape=None, x_index=0):
    y = ctx.tensor(op.outputs[0])
    flat = np.ascontiguousarray(weights, dtype=np.int8).reshape(-1)
    params = [param("input", "int16", in_shape or x.shape, "input"), param("weights", "int8", flat.shape, "const"),
              *params, param("output", "int16", out_shape or y.shape, "output")]
    spec = ctx.spec(family, params, attrs)
    return [KernelCall(spec, op.index, [op.inputs[x_index], flat, *args, op.outputs[0]])]


# -- kernels ----------------------------------------------------------------------------------------

def compute(spec):
    from tvm import te

    a = spec.attrs
    acc_t = a["acc"]
    x = te.placeholder(spec.params[0].shape, "int16", name="input")
    wt = te.placeholder(spec.params[1].shape, "int8", name="weights")
    if spec.family == "fully_connected_int16":
        depth = a["depth"]
        k = te.reduce_axis((0, depth), name="k")
        acc = te.compute((a["batches"], a["units"]), lambda b, u: te.sum(
            x[b, k].astype(acc_t) * wt[u * depth + k].astype(acc_t), axis=k), name="acc")
    elif spec.family == "transpose_conv_int16":
        acc = _transpose_acc(a, x, wt, acc_t)
    else:
        _, oh, ow, oc = a["out_shape"]
        kh_n, kw_n = a["kernel"]
        ic_n = a["in_shape"][3]
        (sh, sw), (dh, dw) = a["stride"], a["dilation"]
        padded = padded_input(x, a, 0)
        kh = te.reduce_axis((0, kh_n), name="kh")
        kw = te.reduce_axis((0, kw_n), name="kw")
        if spec.family == "conv2d_int16":
            ic = te.reduce_axis((0, ic_n), name="ic")
            acc = te.compute((a["out_shape"][0], oh, ow, oc), lambda b, r, s, o: te.sum(
                padded[b, r * sh + kh * dh, s * sw + kw * dw, ic].astype(acc_t)
                * wt[((o * kh_n + kh) * kw_n + kw) * ic_n + ic].astype(acc_t), axis=[kh, kw, ic]), name="acc")
        else:
            mult = a["depth_multiplier"]
            acc = te.compute((a["out_shape"][0], oh, ow, oc), lambda b, r, s, o: te.sum(
                padded[b, r * sh + kh * dh, s * sw + kw * dw, o // mult].astype(acc_t)
                * wt[(kh * kw_n + kw) * oc + o].astype(acc_t), axis=[kh, kw]), name="acc")
    channels = spec.params[-1].shape[-1]
    first = te.placeholder((channels,), acc_t, name="bias" if acc_t == "int32" else "offset")
    multiplier = te.placeholder((channels,), "int32", name="multiplier")
    shift = te.placeholder((channels,), "int32", name="shift")

    def out(*idx):
        o = idx[-1]
        return requantize16(acc[idx], first[o], multiplier[o], shift[o], a)

    output = te.compute(acc.shape, out, name="output")
    return [x, wt, first, multiplier, shift, output]


def _transpose_acc(a, x, wt, acc_t):
    """TRANSPOSE_CONV's sum in the gather form of ops/transpose_conv.py (see there): for output row oy
    the filter rows ky = (oy + pad) mod stride + stride * j meet input row (oy + pad) div stride - j."""
    from tvm import te, tirx

    n, h, w, ic = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh, kw = a["kernel"]
    (sh, sw), (ph, pw) = a["stride"], a["pad"]
    jh, jw = -(-kh // sh), -(-kw // sw)
    ry, rx, rc = (te.reduce_axis((0, e), name=nm) for e, nm in ((jh, "ry"), (jw, "rx"), (ic, "rc")))
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731

    def acc_fn(b, oy, ox, o):
        ky = tirx.floormod(oy + i32(ph), i32(sh)) + i32(sh) * ry
        kx = tirx.floormod(ox + i32(pw), i32(sw)) + i32(sw) * rx
        iy = tirx.floordiv(oy + i32(ph), i32(sh)) - ry
        ix = tirx.floordiv(ox + i32(pw), i32(sw)) - rx
        inside = tirx.all(ky < i32(kh), kx < i32(kw), iy >= i32(0), iy < i32(h), ix >= i32(0), ix < i32(w))
        term = x[b, iy, ix, rc].astype(acc_t) * wt[((o * kh + ky) * kw + kx) * ic + rc].astype(acc_t)
        return te.sum(tirx.if_then_else(inside, term, tirx.const(0, acc_t)), axis=[ry, rx, rc])

    return te.compute((n, oh, ow, oc), acc_fn, name="acc")


def requantize16(acc, first, multiplier, shift, attrs):
    """The int16 output of one accumulator (see the module doc for the two forms), clamped."""
    from tvm import tirx

    from tinykiln.fixedpoint import te as fte

    if attrs["acc"] == "int32":
        scaled = fte.te_multiply_by_quantized_multiplier(acc + first, multiplier, shift, may_saturate=False)
    else:
        total = acc * multiplier.astype("int64") + first
        scaled = (total >> shift.astype("int64")).astype("int32")
    lo, hi = attrs["act"]
    return tirx.max(tirx.min(scaled, tirx.const(hi, "int32")), tirx.const(lo, "int32")).astype("int16")


def schedule(sch, spec):
    schedule_accumulate(sch, spec, n_reduce=1 if spec.family == "fully_connected_int16" else 3)


FAMILIES = {name: KernelFamily(compute, schedule)
            for name in ("conv2d_int16", "depthwise_conv2d_int16", "fully_connected_int16", "transpose_conv_int16")}
