"""CONV_2D: int8 (per-channel or per-tensor weights) and float32.

int8 follows TFLite's reference ConvPerChannel: acc = sum(w * (x - input_zp)) over the taps inside
the image (padding taps add nothing), + bias, requantized per output channel, + output_zp, clamped
to the fused activation. We pad with input_zp instead, so every tap is (x - zp) = 0 there and
sum(w * (x - zp)) = sum(w * x) - zp * sum(w): the second term is folded into the bias at build time.

int8 with padding copies the padded input into a scratch param (the arena), so no schedule tests
for the border inside its inner loop: with HOWI, only the padded input rows that one output row
reads, just before computing that row (a scratch of `scratch_rows` rows: a rolling buffer or each
window's rows afresh, see _recopy); other layouts pad the whole input.

Weights are a flat const array whose order is the `weight_layout` knob:
  HOWI  int8 only, the default where it applies (no dilation across the width): per filter row, each
        output channel's kw x ic taps are one contiguous run, matching one contiguous run of the
        padded input; the schedule calls the dot-product micro-kernel (ops/microkernel.py,
        runtime/kernels/tk_mk.h: SMLAD on Cortex-M DSP cores) on every (filter row, oc tile)
  OHWI  TFLite's order: one output channel's taps are contiguous (dot products over input channels)
  HWIO  output channels innermost: neighbouring output channels share each input load (oc tiling)
Knobs: weight_layout, oc_tile (output channels accumulated together), unroll (HOWI: the filter rows,
on by default where the padding uses a rolling scratch; other layouts: the oc tile),
weights16 (int8 HOWI: weights re-packed at build time as int16 in the order the micro-kernel
tk_mk_dot_s8w16 multiplies them, so it loads pairs instead of unpacking every weight word; twice the
weight bytes, fewer instructions),
weights8 (with input16: the weights kept int8 in flash, tk_mk_conv_s16w8 widening them in registers;
chosen by optimize=, ops/footprint.py),
input16 (int8 HOWI, default on where one output row's accumulators fit the stack): the input rows
widened once to int16 into the scratch (tk_mk_widen_row, even with no padding), int16 weights, and
per (output row, oc tile, filter row) one tk_mk_conv_s16 call computing all the row's pixels in
blocks of 2 pixels x 2 channels (LDRD + SMLAD: 16 MACs per 12 instructions); the accumulators start
from the bias (tk_mk_acc_init, or inside the call where one call covers the tile: tk_mk_conv_s16_bias);
the requantization keeps each channel's multiplier and shift in locals, over pixel pairs or (rows
of up to 8 pixels) straight-line; odd channel counts whose runs would start unaligned get a padding
channel (Geometry16, channels16). With it, im2col (default for up to 4 input channels over several
filter rows): the scratch holds each output pixel's whole window instead (tk_mk_im2col_s16), one
call per (output row, oc tile). runtime/kernels/tk_mk_conv.h has the micro-kernels; the input16
schedule is in ops/conv2d_input16.py.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tinykiln.kernel import KernelCall

from .accumulate import divisors_up_to, padded_input, schedule_accumulate, window_rows
from .base import KernelFamily, constant, param, unsupported
from .conv2d_input16 import (
    channels16, compute_rows16, geometry16, input16_fits, schedule_rows16, short_runs,
)
from .epilogue import epilogue, float_act_attr, int8_accumulate_quant, offset_weights
from .microkernel import pack_w16, w16_index
from .rules import window_padding
from .tir_rewrites import pow2_at_least


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
        weights, wide = offset_weights(op, w, weights)
        if wide:
            # uint8 weights minus their zero point: int16 weights in every layout (see knob_space)
            attrs["wide_weights"] = True
            flat_w = param("weights", "int16", (weights.size,), "const")
        sums = weights.astype(np.int64).reshape(oc, -1).sum(axis=1)
        params, args, attrs = int8_accumulate_quant(op, x, w, y, sums, bias, attrs, activation)
        scratch = []
        if any(attrs["pad"]):
            # sized for the HOWI schedule (the padded input rows of one output row), the workload
            # key's size whatever the knobs; other layouts pad the whole input (set below)
            pt, pb, pl, pr = attrs["pad"]
            row = (wd + pl + pr) * c
            scratch = [param("padded", "int8", (n * scratch_rows(attrs) * row,), "scratch")]
        params = [param("input", "int8", x.shape, "input"), flat_w, *params, *scratch,
                  param("output", "int8", y.shape, "output")]
        spec = ctx.spec("conv2d_int8", params, attrs)
        if _input16(spec):
            # int16 rows of the padded input (or windows, im2col) and int16 weights: see Geometry16
            g = geometry16(attrs, spec.knobs.get("im2col", False))
            wide = param("padded", "int16", (n * g.rows * g.length,), "scratch")
            params = params[:-1] + [wide, params[-1]] if not scratch else [*params[:-2], wide, params[-1]]
            if g.im2col:
                # one run per output channel: OHWI order, a zero after an odd run
                laid_out = np.zeros((oc, g.k), np.int16)
                laid_out[:, :kh * kw * ic] = weights.reshape(oc, -1)
                laid_out = laid_out.reshape(-1)
            else:
                cp = channels16(attrs)
                wide_w = np.zeros((oc, kh, kw, cp), np.int16)
                wide_w[..., :ic] = weights
                laid_out = _layout(wide_w, "HOWI")
            params[1] = param("weights", "int16", (laid_out.size,), "const")
            if spec.knobs.get("weights8"):
                # int8 in flash, each run's whole groups of four as (w0, w2, w1, w3) for
                # tk_mk_conv_s16w8's SXTB16 pairs (the values are int8: no wide weights here)
                laid_out = pack_w16(laid_out.reshape(-1, g.k)).astype(np.int8).reshape(-1)
                params[1] = param("weights", "int8", (laid_out.size,), "const")
            spec = replace(spec, params=tuple(params))
            args = [x_index, laid_out, *args, None, op.outputs[0]]
            return [KernelCall(spec, op.index, args)]
        if scratch and spec.knobs["weight_layout"] != "HOWI":
            params[-2] = param("padded", "int8", (n * (h + pt + pb) * row,), "scratch")
            spec = replace(spec, params=tuple(params))
        laid_out = _layout(weights, spec.knobs["weight_layout"])
        if spec.knobs["weights16"] and spec.knobs["weight_layout"] == "HOWI":
            # int16 in the micro-kernel's SXTB16 order (the workload key stays that of the int8 spec)
            laid_out = pack_w16(laid_out.reshape(-1, kw * ic)).reshape(-1)
            params[1] = param("weights", "int16", (laid_out.size,), "const")
            spec = replace(spec, params=tuple(params))
        args = [x_index, laid_out, *args, *[None] * len(scratch), op.outputs[0]]
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


def _input16(spec) -> bool:
    return spec.knobs.get("weight_layout") == "HOWI" and bool(spec.knobs.get("input16"))


def _recopy(attrs) -> bool:
    """How the HOWI schedule pads the input, one output row at a time (the scratch is sized by the
    op alone, never by knobs: scratch_rows):
      rolling  a rolling buffer of pow2_at_least(window_rows) rows: padded row r in slot
               r % that (a mask); each input row is copied once, but every micro-kernel call
               computes its row's slot (a few instructions more per call);
      recopy   the kh rows of each output row copied afresh into kh rows: plain addresses, but rows
               shared by neighbouring windows are copied again.
    Recopy where its extra copying (about 8 instructions per byte) costs less than the rolling
    slots (about 5 per call, counting the default oc tile of 4), or where windows do not overlap."""
    _, h, w, c = attrs["in_shape"]
    _, oh, ow, oc = attrs["out_shape"]
    kh = attrs["kernel"][0]
    pt, pb, pl, pr = attrs["pad"]
    if attrs["stride"][0] >= window_rows(attrs):
        return True
    row = (w + pl + pr) * c
    extra_bytes = (oh * kh - (h + pt + pb)) * row
    calls = oh * ow * -(-oc // 4) * kh
    return 8 * extra_bytes < 5 * calls


def scratch_rows(attrs) -> int:
    return attrs["kernel"][0] if _recopy(attrs) else pow2_at_least(window_rows(attrs))


def _layout(weights: np.ndarray, layout: str) -> np.ndarray:
    if layout == "OHWI":
        return np.ascontiguousarray(weights).reshape(-1)
    if layout == "HWIO":
        return np.ascontiguousarray(weights.transpose(1, 2, 3, 0)).reshape(-1)
    if layout == "HOWI":
        return np.ascontiguousarray(weights.transpose(1, 0, 2, 3)).reshape(-1)
    raise ValueError(layout)


def _weight_index(spec, o, kh, kw, i):
    kh_n, kw_n = spec.attrs["kernel"]
    oc_n, ic_n = spec.attrs["out_shape"][3], spec.attrs["in_shape"][3]
    if spec.knobs["weight_layout"] == "OHWI":
        return ((o * kh_n + kh) * kw_n + kw) * ic_n + i
    return ((kh * kw_n + kw) * ic_n + i) * oc_n + o


def compute(spec):
    from tvm import te

    if _input16(spec):
        return compute_rows16(spec)
    if spec.knobs.get("weight_layout") == "HOWI":
        return _compute_rows(spec)
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
    return _with_scratch(spec, x, wt, padded, epilogue(spec, acc, oc_axis=3))


def _with_scratch(spec, x, wt, padded, tail):
    """Tensors in the order of spec.params: the padded input is the scratch param (if any)."""
    if any(p.role == "scratch" for p in spec.params):
        return [x, wt, *tail[:-1], padded, tail[-1]]
    return [x, wt, *tail]


def _compute_rows(spec):
    """int8 conv as dot products of contiguous runs: the padded input seen as (n, rows, width * ic)
    and the weights as (kh, oc, kw * ic), so for output (r, s) and filter row kh the kw * ic taps
    are padded[r * sh + kh * dh, s * sw * ic + k] for k < kw * ic (needs dilation 1 across)."""
    from tvm import te, tirx

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh_n, kw_n = a["kernel"]
    (sh, sw), (dh, _) = a["stride"], a["dilation"]
    pt, pb, pl, pr = a["pad"]
    x = te.placeholder((n, h, w * c), "int8", name="input")
    w16 = bool(spec.knobs.get("weights16"))
    wt = te.placeholder((kh_n, oc, kw_n * c), "int16" if w16 else "int8", name="weights")
    w_at = (lambda r, o, k: wt[r, o, w16_index(k, kw_n * c)]) if w16 else (lambda r, o, k: wt[r, o, k])
    zp = tirx.const(a["input_zp"], "int8")

    def pad_value(b, r, q):
        return tirx.if_then_else(
            tirx.all(r >= pt, r < pt + h, q >= pl * c, q < (pl + w) * c), x[b, r - pt, q - pl * c], zp)

    padded = x
    if any(a["pad"]):
        padded = te.compute((n, h + pt + pb, (w + pl + pr) * c), pad_value, name="pad")
    row_of = lambda b, r, kh: padded[b, r * sh + kh * dh]  # noqa: E731
    if any(a["pad"]) and _recopy(a):
        # the kh padded rows of each output row r (see _schedule_rows)
        padded = te.compute((n, oh, kh_n, (w + pl + pr) * c),
                            lambda b, r, kh, q: pad_value(b, r * sh + kh * dh, q), name="pad")
        row_of = lambda b, r, kh: padded[b, r, kh]  # noqa: E731
    kh = te.reduce_axis((0, kh_n), name="kh")
    k = te.reduce_axis((0, kw_n * c), name="k")
    acc = te.compute(
        (n, oh, ow, oc),
        lambda b, r, s, o: te.sum(
            row_of(b, r, kh)[s * sw * c + k].astype("int32") * w_at(kh, o, k).astype("int32"),
            axis=[kh, k]),
        name="acc")
    return _with_scratch(spec, x, wt, padded, epilogue(spec, acc, oc_axis=3))


def _schedule_rows(sch, spec):
    """Per output pixel and oc tile: accumulators on the stack, then for each filter row one call
    of the micro-kernel over the tile's weight rows (ops/microkernel.py)."""
    import tvm

    from .tir_rewrites import alloc_to_param, param_to_alloc, unmark_opaque, widen_rolling
    from .microkernel import blockize_dot, call_on_tiles, dot_s8_call, dot_s8w16_call, loops_at

    a = spec.attrs
    tile = spec.knobs["oc_tile"]
    k = a["kernel"][1] * a["in_shape"][3]
    padded = any(p.role == "scratch" for p in spec.params)
    if padded:
        # the scratch param is an output of the compute; schedule it as a temporary (see tir_rewrites.py)
        func, index = param_to_alloc(sch.mod["main"], "pad")
        sch = tvm.s_tir.Schedule(func)
    out = sch.get_sblock("output")
    acc = sch.get_sblock("acc")
    row_loop = sch.get_loops(out)[1]
    oc_outer, _ = sch.split(sch.get_loops(out)[-1], [None, tile])
    # one loop per axis of acc (b, r, s, o, kh, k), unit ones kept: the call covers the tile's
    # weight rows (o) over one filter row's run (k), so kh goes outside the tile, then o
    _, _, _, rows_loop, kh_loop, k_loop = loops_at(sch, acc, oc_outer)
    sch.reorder(kh_loop, rows_loop, k_loop)
    sch.decompose_reduction(acc, kh_loop)
    name = blockize_dot(sch, rows_loop)
    if spec.knobs.get("unroll") and a["kernel"][0] > 1:
        sch.unroll(kh_loop)
    # weight rows of neighbouring output channels are k apart in the (kh, oc, kw * ic) layout
    call = dot_s8w16_call(k, k, tile) if spec.knobs.get("weights16") else dot_s8_call(k, k, tile)
    if padded:
        # pad the input rows of one output row just before computing it (the scratch holds
        # scratch_rows() rows; see _recopy for the two ways)
        pad = sch.get_sblock("pad")
        sch.compute_at(pad, row_loop)
        if _recopy(a):
            # one output row's kh rows, rewritten for every output row
            sch.transform_layout(pad, ("write", 0), lambda b, r, kh, q: (b, kh, q),
                                 assume_injective_transform=True)
            func = alloc_to_param(sch.mod["main"], "pad", index)
        else:
            sch.rolling_buffer(pad, 0)
            func = widen_rolling(alloc_to_param(sch.mod["main"], "pad", index), "pad", window_rows(a))
            func = unmark_opaque(func, keep="pad")
        return call_on_tiles(func, {name: call})
    return call_on_tiles(sch.mod["main"], {name: call})


def schedule(sch, spec):
    if _input16(spec):
        return schedule_rows16(sch, spec)
    if spec.knobs.get("weight_layout") == "HOWI":
        return _schedule_rows(sch, spec)
    schedule_accumulate(sch, spec, n_reduce=3)
    return None


def knob_space(spec):
    oc = spec.attrs["out_shape"][3]
    layouts = ["OHWI", "HWIO"]
    if spec.family == "conv2d_int8" and spec.attrs["dilation"][1] == 1:
        layouts = ["HOWI", *layouts]
    a = spec.attrs
    # a rolling scratch (see _recopy) computes each filter row's slot in the micro-kernel call's
    # address; unrolled, those slots only depend on the output row and the compiler hoists them
    rolling = spec.family == "conv2d_int8" and any(a["pad"]) and not _recopy(a)
    space = {
        "weight_layout": layouts,
        "oc_tile": _tiles(oc),
        # input16 (the default where it applies) calls its micro-kernel once per filter row and
        # output row: unrolled rows only copy its code
        "unroll": [True, False] if rolling and not input16_fits(a) else [False, True],
    }
    if spec.family == "conv2d_int8":
        space["weights16"] = [True, False]  # HOWI only: int16 weights in SXTB16 order, or int8
        if a.get("wide_weights"):
            space["weights16"] = [True]  # weights beyond int8 (uint8 minus its zero point): HOWI needs int16
        if "HOWI" in layouts and input16_fits(a):
            # HOWI only: int16 input rows, pixel pairs x channel pairs (tk_mk_conv_s16); weights16 unused
            space["input16"] = [True, False]
            # input16 only: each pixel's whole window in one run (see Geometry16), first where
            # the filter rows are short runs
            space["im2col"] = [True, False] if short_runs(a) else [False, True]
            if not a.get("wide_weights"):
                # input16 only: int8 weights in flash (tk_mk_conv_s16w8); optimize= picks it
                space["weights8"] = [False, True]
    return space


def _tiles(oc):
    """Divisors of oc up to 8, the default first: the largest up to 4 (four accumulators and one
    input word fit the registers next to the micro-kernel's pointers)."""
    tiles = divisors_up_to(oc, 8)
    best = max(t for t in tiles if t <= 4)
    return [best, *[t for t in tiles if t != best]]


def int8_weights(spec) -> dict:
    """optimize= (ops/footprint.py): the knobs that keep the weights int8: input16 with int8 weights
    (tk_mk_conv_s16w8) where input16 applies, HOWI's int8 rows (tk_mk_dot_s8) elsewhere."""
    return {} if spec.attrs.get("wide_weights") else {"weights16": False, "weights8": True}


FAMILIES = {
    "conv2d_int8": KernelFamily(compute, schedule, knob_space, int8_weights),
    "conv2d_float32": KernelFamily(compute, schedule, knob_space),
}
