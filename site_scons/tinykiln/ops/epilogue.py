"""The output stage of int8 and float32 kernels: the bias folded with the input zero point, the
requantization (TFLite's MultiplyByQuantizedMultiplier, in the fused forms of tinykiln.fixedpoint.fused
where build-time facts allow), + output zero point, and the fused activation's clamp.

    int8_accumulate_quant(...)   build time: folded bias, multipliers, params/args, attrs
    epilogue(spec, acc, oc_axis) TE: the output tensor from the accumulators
    requantize, clamp_int8, clamp_float, float_act_attr, int8_act_attr
"""
from __future__ import annotations

import numpy as np

from tinykiln.graph import Op

from .base import param, quant_params, unsupported


def requantize(acc, attrs: dict, multiplier=None, shift=None, offset=None):
    """int32 accumulator -> int8 output value: MultiplyByQuantizedMultiplier (double rounding, or
    single rounding when attrs["rounding"] == "single"), + output zero point, clamp to the fused
    activation's range.

    Per-tensor multipliers come from attrs (TFLite's pair), per-channel ones are PrimExprs (loads
    from the multiplier/shift params). Unless attrs["requant"] == "tflite" (the generic step-by-step
    form, for what the fused forms cannot take: see int8_accumulate_quant), the fused forms of
    tinykiln.fixedpoint.fused are used: then a per-channel shift holds rs - 1 (double rounding) or
    31 - shift - 32 (single), and single rounding adds `offset` (int64 PrimExpr: bias * m + rounding
    + zero point, the bias already in it) to acc * m."""

    from tinykiln.fixedpoint import fused, te as fte

    per_tensor = multiplier is None
    if per_tensor:
        multiplier, shift = int(attrs["multiplier"]), int(attrs["shift"])
    zp = int(attrs["output_zp"])
    single = attrs.get("rounding") == "single"
    if attrs.get("requant") == "tflite":
        if single:
            scaled = fte.te_multiply_by_quantized_multiplier_single(acc, multiplier, shift)
        else:
            # multipliers come from quantize_multiplier: positive, so SRDHM cannot saturate
            scaled = fte.te_multiply_by_quantized_multiplier(acc, multiplier, shift, may_saturate=False)
        scaled = scaled + zp
    elif single:
        if per_tensor:
            scaled = fused.te_requantize_fused_single(acc, multiplier, offset, shift=shift)
        else:
            scaled = fused.te_requantize_fused_single(acc, multiplier, offset, post=shift)
    else:
        if per_tensor:
            shift = fused.fused_double_shift(multiplier, shift)
        scaled = fused.te_requantize_fused_double(acc, multiplier, shift, zp)
    return clamp_int8(scaled, attrs["act"])


def clamp_int8(value, act):
    """int32 -> int8 clamped to the activation range [lo, hi]: tk_rq_sat8 (runtime/kernels/tk_rq.h,
    one SSAT on Cortex-M DSP cores), then whichever bound of the activation is narrower."""
    from tvm import tirx

    lo, hi = act
    value = tirx.call_pure_extern("int32", "tk_rq_sat8", value)
    if hi < 127:
        value = tirx.min(value, tirx.const(hi, "int32"))
    if lo > -128:
        value = tirx.max(value, tirx.const(lo, "int32"))
    return value.astype("int8")


def clamp_float(value, attrs: dict):
    """Fused activation of a float32 result (bounds in attrs["act"], None = unbounded)."""
    from tvm import tirx

    lo, hi = attrs["act"]
    if hi is not None:
        value = tirx.min(value, tirx.const(hi, "float32"))
    if lo is not None:
        value = tirx.max(value, tirx.const(lo, "float32"))
    return value


def float_act_attr(activation: str, op: Op) -> list:
    """JSON-friendly clamp bounds of a float fused activation ([lo, hi], None = unbounded)."""
    from tinykiln.fixedpoint.prepare import activation_range_float

    try:
        lo, hi = activation_range_float(activation)
    except ValueError:
        raise unsupported(op, f"fused activation {activation}") from None
    return [None if np.isinf(lo) else lo, None if np.isinf(hi) else hi]


def int8_act_attr(activation: str, scale: float, zero_point: int, op: Op) -> list:
    from tinykiln.fixedpoint.prepare import activation_range_int8

    try:
        return list(activation_range_int8(activation, scale, zero_point))
    except ValueError:
        raise unsupported(op, f"fused activation {activation}") from None


def offset_weights(op, w, weights):
    """(the weights the accumulation multiplies, wide): int8 weights are symmetric and taken as they
    are; uint8 ones (tflite/uint8.py: int8 with a per-tensor zero point) as w - zero_point in int16
    (-255..255), as LiteRT's uint8 kernels add the filter offset to each weight. wide: the lowering
    must use int16 weights (the layouts that re-pack them as int16 take any int16 value)."""
    zp = int(w.quant.zero_point[0]) if w.quant is not None and w.from_uint8 else 0
    if w.quant is not None and w.from_uint8 and w.quant.per_channel:
        raise unsupported(op, f"uint8 weights '{w.name}' quantized per channel")
    if zp == 0:
        return weights, False
    return np.asarray(weights, dtype=np.int16) - np.int16(zp), True


def int8_accumulate_quant(op, x, w, y, weight_sums, bias, attrs, activation, float_product=False):
    """Folded bias and requantization of an int8 op that accumulates w * (x - input_zp) per output
    channel (conv, depthwise, fully connected). weight_sums[c] = sum of channel c's weights.
    Returns (params after the weights, their const args, attrs with zero points and act range).

    Multipliers as TFLite's Prepare computes them: double(input_scale) * double(filter_scale) /
    double(output_scale) (PopulateConvolutionQuantizationParams), or, with float_product, the
    product taken in float first (GetQuantizedConvolutionMultipler, per-tensor FULLY_CONNECTED, and
    every op of a uint8 graph: LiteRT's uint8 kernels use that legacy multiplier). weight_sums are
    those of offset_weights: uint8 weights' zero point is in them."""
    from tinykiln.fixedpoint.prepare import quantize_multiplier

    channels = len(weight_sums)
    in_scale, in_zp = quant_params(x, "input", op)
    out_scale, out_zp = quant_params(y, "output", op)
    if w.quant is None:
        raise unsupported(op, "int8 weights without quantization")
    if any(z != 0 for z in w.quant.zero_point) and not w.from_uint8:
        raise unsupported(op, "int8 weights with a non-zero zero point (TFLite requires symmetric weights)")
    float_product = float_product or x.from_uint8
    w_scales = list(w.quant.scale)
    if len(w_scales) == 1:
        w_scales = w_scales * channels
    elif len(w_scales) != channels:
        raise unsupported(op, f"{len(w_scales)} weight scales for {channels} output channels")
    f32 = np.float32
    if float_product:
        reals = [float(f32(in_scale) * f32(s)) / float(f32(out_scale)) for s in w_scales]
    else:
        reals = [float(f32(in_scale)) * float(f32(s)) / float(f32(out_scale)) for s in w_scales]
    pairs = [quantize_multiplier(r) for r in reals]
    attrs = dict(attrs, input_zp=in_zp, output_zp=out_zp, act=int8_act_attr(activation, out_scale, out_zp, op))
    # sum(w * (x - zp)) = sum(w * x) - zp * sum(w): the second term joins the bias
    base = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(-1)
    folded = base - in_zp * np.asarray(weight_sums, dtype=np.int64)
    if folded.min() < -(1 << 31) or folded.max() >= (1 << 31):
        raise unsupported(op, "the bias with the input zero point folded in overflows int32")
    # |acc| <= 128 * 128 per tap (int8 times int8), whatever the input (padding taps included);
    # uint8 weights with their zero point taken out (offset_weights) reach 128 + |zero point|
    taps = int(np.asarray(w.data).size) // channels if w.data is not None else None
    w_max = 128 + (abs(int(w.quant.zero_point[0])) if w.from_uint8 else 0)
    acc_bound = None if taps is None else 128 * w_max * taps
    if op.kind == "FULLY_CONNECTED":
        attrs["rounding"] = "single"
        return _single_rounding_quant(folded, pairs, acc_bound, attrs)
    return _double_rounding_quant(folded, pairs, acc_bound, attrs)


def _double_rounding_quant(folded, pairs, acc_bound, attrs):
    """Params/args of a double-rounding requantization: the bias, and per-channel multipliers
    with, in the fused form, shift = rs - 1 (tinykiln.fixedpoint.fused.te_requantize_fused_double); the
    generic form (TFLite's shifts, attrs["requant"] = "tflite") where a channel has a left shift
    or rs = 0, or the accumulator could reach 2^30."""
    from tinykiln.fixedpoint.fused import FUSED_X_LIMIT, fused_double_shift

    channels = len(folded)
    shifts1 = [fused_double_shift(m, s) for m, s in pairs]
    fused = (acc_bound is not None and acc_bound + int(np.abs(folded).max()) < FUSED_X_LIMIT
             and all(s is not None for s in shifts1))
    if not fused:
        attrs["requant"] = "tflite"
    params = [param("bias", "int32", (channels,), "const")]
    args = [folded.astype(np.int32)]
    if len(set(pairs)) == 1:
        attrs["multiplier"], attrs["shift"] = pairs[0]
    else:
        params += [param("multiplier", "int32", (channels,), "const"),
                   param("shift", "int32", (channels,), "const")]
        args += [np.array([m for m, _ in pairs], dtype=np.int32),
                 np.array(shifts1 if fused else [s for _, s in pairs], dtype=np.int32)]
    return params, args, attrs


def _single_rounding_quant(folded, pairs, acc_bound, attrs):
    """Params/args of a single-rounding requantization (FULLY_CONNECTED). Fused form: an int64
    offset per channel (bias * m + rounding + zero point) replaces the bias; per-channel multipliers
    with shift = 31 - s - 32, which needs s <= -1 (a zero multiplier takes -1: its result is the
    zero point anyway). Else the generic form (attrs["requant"] = "tflite", the int32 bias)."""
    from tinykiln.fixedpoint.fused import fused_single_fits, fused_single_offset

    channels = len(folded)
    zp = attrs["output_zp"]
    per_channel = len(set(pairs)) > 1
    if per_channel:
        pairs = [(m, s if m else -1) for m, s in pairs]
    fused = acc_bound is not None and all(
        fused_single_fits(acc_bound, int(b), m, s, zp) and (s <= -1 or not per_channel)
        for b, (m, s) in zip(folded, pairs))
    if fused:
        params = [param("offset", "int64", (channels,), "const")]
        args = [np.array([fused_single_offset(int(b), m, s, zp) for b, (m, s) in zip(folded, pairs)],
                         dtype=np.int64)]
    else:
        attrs["requant"] = "tflite"
        params = [param("bias", "int32", (channels,), "const")]
        args = [folded.astype(np.int32)]
    if not per_channel:
        attrs["multiplier"], attrs["shift"] = pairs[0]
    else:
        params += [param("multiplier", "int32", (channels,), "const"),
                   param("shift", "int32", (channels,), "const")]
        args += [np.array([m for m, _ in pairs], dtype=np.int32),
                 np.array([-1 - s if fused else s for _, s in pairs], dtype=np.int32)]
    return params, args, attrs


def epilogue(spec, acc, oc_axis, bias_in_acc=False):
    """Params after the weights and the output stage: bias (or the int64 offset of a fused single
    rounding), requantization / clamp. bias_in_acc: the accumulators already start from the bias
    (double rounding only: the offset of a single rounding holds bias * multiplier)."""
    from tvm import te

    a = spec.attrs
    names = [p.name for p in spec.params]
    shape = acc.shape
    oc = spec.params[names.index("output")].shape[oc_axis]
    if spec.family.endswith("int8"):
        has_offset = "offset" in names
        first = (te.placeholder((oc,), "int64", name="offset") if has_offset
                 else te.placeholder((oc,), "int32", name="bias"))
        per_channel = "multiplier" in names
        mult = te.placeholder((oc,), "int32", name="multiplier") if per_channel else None
        shift = te.placeholder((oc,), "int32", name="shift") if per_channel else None

        def out(*idx):
            o = idx[oc_axis]
            offset = first[o] if has_offset else None
            total = acc[idx] if has_offset or bias_in_acc else acc[idx] + first[o]
            if per_channel:
                return requantize(total, a, mult[o], shift[o], offset=offset)
            return requantize(total, a, offset=offset)

        output = te.compute(shape, out, name="output")
        return [first, *([mult, shift] if per_channel else []), output]
    bias = te.placeholder((oc,), "float32", name="bias") if a["bias"] else None

    def out_f(*idx):
        value = acc[idx] + bias[idx[oc_axis]] if bias is not None else acc[idx]
        return clamp_float(value, a)

    output = te.compute(shape, out_f, name="output")
    return [*([bias] if bias is not None else []), output]
