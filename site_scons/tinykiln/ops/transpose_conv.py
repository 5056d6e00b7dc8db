"""TRANSPOSE_CONV: int8 (per-channel or per-tensor symmetric weights) and float32; SAME/VALID,
strides, optional bias; the output shape a constant operand.

Operands (TFLite's order): 0 output_shape (int32 [4], constant), 1 weights [OC, KH, KW, IC]
(constant), 2 input [N, H, W, IC], 3 bias [OC] (optional).

LiteRT's reference kernels (transpose_conv.cc -> reference_ops / reference_integer_ops::
TransposeConv) scatter: every input pixel (b, y, x, ic) adds x * w[oc, fy, fx, ic] to output
(y * stride - pad + fy, x * stride - pad + fx, oc) when that lies inside the output; the padding
is ComputePaddingHeightWidth with the output as the convolution's input (rules.conv_padding of the
output size). Then bias; int8: (x - input_zp) summed in int32, + bias, MultiplyByQuantizedMultiplier
per channel (double rounding, PopulateConvolutionQuantizationParams' multipliers), + output_zp,
clamped to the fused activation's range (LiteRT 2.3 applies it, found by testing). float32 sums
in the scatter's order: input row, input column, input channel; + bias; the activation's clamp.

Kernel: the gather form of the same sum. For output row oy only the filter rows
ky = (oy + pad) mod stride + stride * j meet an input row, iy = (oy + pad) div stride - j, so the
reduction runs over j (ceil(KH / stride) values; likewise for columns) and the input channels,
with a guard for rows outside the input or past the filter: no tap is visited that adds nothing.
j runs downwards from the last, so that iy ascends, which keeps LiteRT's float order. Conv-like
schedule (ops/accumulate.py): output channels split by oc_tile, the tile's accumulators on the stack.
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint.fused import FUSED_X_LIMIT
from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier
from tinykiln.kernel import KernelCall

from .accumulate import divisors_up_to, schedule_accumulate
from .base import KernelFamily, constant, param, quant_params, unsupported
from .checks import OpView, _bias, _weights_quant
from .epilogue import epilogue, float_act_attr, int8_accumulate_quant
from .rules import conv_out, conv_padding


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    attrs = {"stride": v.positive_pair("stride", "stride_h", "stride_w"), "padding": v.padding(),
             "activation": v.activation()}
    v.known_bias_type()
    if not v.need((3, 4)):
        return attrs
    shape, w, x, b = v.inputs[0], v.inputs[1], v.inputs[2], v.input(3)
    if not v.rank(x, 4, "input") or not v.constant(shape, "output_shape", ("int32",)):
        return attrs
    want = "int8" if x.dtype in ("int8", "int16") else "float32"  # int16: 16x8 (ops/conv_int16.py)
    if not v.constant(w, "filter", (want,)) or not v.rank(w, 4, "filter"):
        return attrs
    if want == "int8":
        _weights_quant(v, w, 0, "filter")
    if w.shape[3] != x.shape[3]:
        v.fail(f"filter '{w.name}' has {w.shape[3]} input channels, the input has {x.shape[3]}")
    _bias(v, b, w.shape[0], x, w)
    target = shape.data.reshape(-1).tolist()
    if len(target) != 4 or target[0] != x.shape[0] or target[3] != w.shape[0]:
        v.fail(f"output_shape {target} does not fit input {list(x.shape)} and filter {list(w.shape)}")
        return attrs
    v.shape_is(v.y, target)
    return attrs


# -- shapes ---------------------------------------------------------------------------------------

def transpose_padding(padding: str, out_size: int, kernel: int, stride: int) -> int:
    """Rows (columns) of padding before the output: ComputePaddingHeightWidth with the output as the
    convolution's input."""
    return conv_padding(padding, out_size, kernel, stride, 1, conv_out(out_size, kernel, stride, 1, padding))[0]


# -- numpy models (the tests' oracles) --------------------------------------------------------------

def _scatter(x, w, stride, pad, out_shape, dtype):
    n, h, wd, ic = x.shape
    oc, kh, kw, _ = w.shape
    _, oh, ow, _ = out_shape
    out = np.zeros(out_shape, dtype)
    for iy in range(h):
        for ix in range(wd):
            for ky in range(kh):
                oy = iy * stride[0] - pad[0] + ky
                for kx in range(kw):
                    ox = ix * stride[1] - pad[1] + kx
                    if 0 <= oy < oh and 0 <= ox < ow:
                        # over ic at once: float32 loses the order within a pixel (tests allow 1e-5)
                        out[:, oy, ox, :] = (out[:, oy, ox, :] + x[:, iy, ix, :] @ w[:, ky, kx, :].T).astype(dtype)
    return out


def transpose_conv_float_reference(x, w, bias, stride, padding, out_shape, activation="NONE") -> np.ndarray:
    from tinykiln.fixedpoint.prepare import activation_range_float

    x, w = np.asarray(x, np.float32), np.asarray(w, np.float32)
    pad = [transpose_padding(padding, out_shape[1 + i], w.shape[1 + i], stride[i]) for i in range(2)]
    out = _scatter(x, w, stride, pad, tuple(out_shape), np.float32)
    out = out if bias is None else (out + np.asarray(bias, np.float32)).astype(np.float32)
    return np.clip(out, *activation_range_float(activation)).astype(np.float32)


def transpose_conv_int8_reference(x, w, bias, stride, padding, out_shape, in_q, w_scales, out_q,
                                  activation="NONE") -> np.ndarray:
    from tinykiln.fixedpoint.prepare import activation_range_int8, quantize_multiplier

    d = np.asarray(x, np.int64) - in_q[1]
    pad = [transpose_padding(padding, out_shape[1 + i], w.shape[1 + i], stride[i]) for i in range(2)]
    acc = _scatter(d, np.asarray(w, np.int64), stride, pad, tuple(out_shape), np.int64)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    scales = np.broadcast_to(np.asarray(w_scales, np.float64), (w.shape[0],))
    pairs = [quantize_multiplier(float(np.float32(in_q[0])) * float(np.float32(s)) / float(np.float32(out_q[0])))
             for s in scales]
    m = np.array([p[0] for p in pairs], np.int64)
    s = np.array([p[1] for p in pairs], np.int64)
    lo, hi = activation_range_int8(activation, out_q[0], out_q[1])
    return np.clip(multiply_by_quantized_multiplier(acc, m, s) + out_q[1], lo, hi).astype(np.int8)


# -- lowering ---------------------------------------------------------------------------------------

def lower_transpose_conv(ctx, op):
    w_index, x_index = op.inputs[1], op.inputs[2]
    b_index = op.inputs[3] if len(op.inputs) > 3 else -1
    x, w, y = ctx.tensor(x_index), ctx.tensor(w_index), ctx.tensor(op.outputs[0])
    n, h, wd, ic = x.shape
    oc, kh, kw, wic = w.shape
    _, oh, ow, yoc = y.shape
    if wic != ic or yoc != oc or y.shape[0] != n:
        raise unsupported(op, f"input {list(x.shape)}, filter {list(w.shape)}, output {list(y.shape)}")
    activation = op.attrs.get("activation", "NONE")
    stride = list(op.attrs.get("stride", (1, 1)))
    padding = op.attrs.get("padding", "SAME")
    pad = [transpose_padding(padding, oh, kh, stride[0]), transpose_padding(padding, ow, kw, stride[1])]
    attrs = {"in_shape": [n, h, wd, ic], "out_shape": [n, oh, ow, oc], "kernel": [kh, kw], "stride": stride,
             "pad": pad}
    weights = constant(ctx, w_index, op, "filter")
    bias = constant(ctx, b_index, op, "bias") if b_index >= 0 else None
    if x.dtype == "int8":
        # (x - zp) is taken inside the sum (only the taps that meet an input are visited, so the zero
        # point cannot be folded into the bias as conv does): no weight sums to fold
        params, args, attrs = int8_accumulate_quant(op, x, w, y, np.zeros(oc, np.int64), bias, attrs, activation)
        taps = -(-kh // stride[0]) * -(-kw // stride[1]) * ic
        bound = 255 * 128 * taps + (0 if bias is None else int(np.abs(np.asarray(bias, np.int64)).max()))
        if attrs.get("requant") != "tflite" and bound >= FUSED_X_LIMIT:
            raise unsupported(op, f"int8 with {taps} taps per output (the accumulators could reach 2^30)")
        attrs["input_zp"] = quant_params(x, "input", op)[1]
        params = [param("input", "int8", x.shape, "input"), param("weights", "int8", w.shape, "const"), *params,
                  param("output", "int8", y.shape, "output")]
        spec = ctx.spec("transpose_conv_int8", params, attrs)
        return [KernelCall(spec, op.index, [x_index, np.asarray(weights), *args, op.outputs[0]])]
    if x.dtype != "float32":
        raise unsupported(op, f"input type {x.dtype}")
    attrs["act"] = float_act_attr(activation, op)
    attrs["bias"] = bias is not None
    params = [param("input", "float32", x.shape, "input"), param("weights", "float32", w.shape, "const")]
    extra = []
    if bias is not None:
        params.append(param("bias", "float32", (oc,), "const"))
        extra.append(np.asarray(bias, dtype=np.float32))
    params.append(param("output", "float32", y.shape, "output"))
    spec = ctx.spec("transpose_conv_float32", params, attrs)
    return [KernelCall(spec, op.index, [x_index, np.asarray(weights, np.float32), *extra, op.outputs[0]])]


def _compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    n, h, w, ic = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh, kw = a["kernel"]
    (sh, sw), (ph, pw) = a["stride"], a["pad"]
    int8 = spec.family == "transpose_conv_int8"
    x = te.placeholder((n, h, w, ic), spec.params[0].dtype, name="input")
    wt = te.placeholder((oc, kh, kw, ic), spec.params[1].dtype, name="weights")
    jh, jw = -(-kh // sh), -(-kw // sw)
    ry = te.reduce_axis((0, jh), name="ry")
    rx = te.reduce_axis((0, jw), name="rx")
    rc = te.reduce_axis((0, ic), name="rc")
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731

    def acc_fn(b, oy, ox, o):
        # j = (taps - 1) - r runs downwards: the input row ascends with r (LiteRT's float order)
        ky = tirx.floormod(oy + i32(ph), i32(sh)) + i32(sh) * (i32(jh - 1) - ry)
        kx = tirx.floormod(ox + i32(pw), i32(sw)) + i32(sw) * (i32(jw - 1) - rx)
        iy = tirx.floordiv(oy + i32(ph), i32(sh)) - (i32(jh - 1) - ry)
        ix = tirx.floordiv(ox + i32(pw), i32(sw)) - (i32(jw - 1) - rx)
        inside = tirx.all(ky < i32(kh), kx < i32(kw), iy >= i32(0), iy < i32(h), ix >= i32(0), ix < i32(w))
        if int8:
            value = x[b, iy, ix, rc].astype("int32") - i32(a["input_zp"])
            term = value * wt[o, ky, kx, rc].astype("int32")
            zero = i32(0)
        else:
            term = x[b, iy, ix, rc] * wt[o, ky, kx, rc]
            zero = tirx.const(0.0, "float32")
        return te.sum(tirx.if_then_else(inside, term, zero), axis=[ry, rx, rc])

    acc = te.compute((n, oh, ow, oc), acc_fn, name="acc")
    return [x, wt, *epilogue(spec, acc, 3)]


def _schedule(sch, spec):
    schedule_accumulate(sch, spec, 3)


def _knob_space(spec):
    oc = spec.attrs["out_shape"][3]
    return {"oc_tile": [1] + [d for d in divisors_up_to(oc, 8) if d > 1], "unroll": [False, True]}


FAMILIES = {
    "transpose_conv_int8": KernelFamily(_compute, _schedule, _knob_space),
    "transpose_conv_float32": KernelFamily(_compute, _schedule, _knob_space),
}
