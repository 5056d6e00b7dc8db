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
input16 (int8 HOWI, default on where one output row's accumulators fit the stack): the input rows
widened once to int16 into the scratch (tk_mk_widen_row, even with no padding), int16 weights, and
per (output row, oc tile, filter row) one tk_mk_conv_s16 call computing all the row's pixels in
blocks of 2 pixels x 2 channels (LDRD + SMLAD: 16 MACs per 12 instructions); the accumulators start
from the bias (tk_mk_acc_init, or inside the call where one call covers the tile: tk_mk_conv_s16_bias);
the requantization keeps each channel's multiplier and shift in locals, over pixel pairs or (rows
of up to 8 pixels) straight-line; odd channel counts whose runs would start unaligned get a padding
channel (Geometry16, channels16). With it, im2col (default for up to 4 input channels over several
filter rows): the scratch holds each output pixel's whole window instead (tk_mk_im2col_s16), one
call per (output row, oc tile). runtime/kernels/tk_mk_conv.h has the micro-kernels.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from tinykiln.kernel import KernelCall

from .microkernel import pack_w16, w16_index
from .base import (
    KernelFamily, constant, divisors_up_to, epilogue, int8_accumulate_quant, float_act_attr, padded_input, param,
    pow2_at_least, schedule_accumulate, unsupported,
)
from .rules import window_padding


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


def window_rows(attrs) -> int:
    """Rows of the padded input that one output row reads: the filter's height, dilated."""
    return (attrs["kernel"][0] - 1) * attrs["dilation"][0] + 1


def _input16(spec) -> bool:
    return spec.knobs.get("weight_layout") == "HOWI" and bool(spec.knobs.get("input16"))


@dataclass(frozen=True)
class Geometry16:
    """How the input16 schedule lays out its int16 scratch and runs:
      rows     rows of the scratch (`length` int16 each, even: every row starts 4-byte aligned for
               the micro-kernel's paired loads)
      recopy   each output row's `rows` rows written afresh (laid out (oh, rows, length)), or
               a rolling buffer of the padded input's rows (row r in slot r % rows)
      taps     filter rows, one micro-kernel call each per (output row, oc tile)
      k, xs    taps per run, and the distance between the runs of neighbouring output pixels
      im2col   one row per output row holding each pixel's whole window (kh * kw * ic taps, a
               padding tap after an odd window): one call per (output row, oc tile), for filters
               whose rows are short runs (kws' first layer: 4 taps a row over 10 rows)."""
    rows: int
    length: int
    recopy: bool
    taps: int
    k: int
    xs: int
    im2col: bool


def _even(n: int) -> int:
    return n + (n & 1)


def geometry16(attrs, im2col: bool) -> Geometry16:
    _, _, w, c = attrs["in_shape"]
    _, _, ow, _ = attrs["out_shape"]
    kh, kw = attrs["kernel"]
    pt, pb, pl, pr = attrs["pad"]
    if im2col:
        window = _even(kh * kw * c)
        return Geometry16(1, ow * window, True, 1, window, window, True)
    cp = channels16(attrs)
    length = _even((w + pl + pr) * cp)
    xs = attrs["stride"][1] * cp
    if attrs["stride"][0] >= window_rows(attrs):
        return Geometry16(kh, length, True, kh, kw * cp, xs, False)
    return Geometry16(window_rows(attrs), length, False, kh, kw * cp, xs, False)


def channels16(attrs) -> int:
    """Channels per pixel in the input16 rows: an odd count above one gets a padding channel (zero
    weights) where the runs would otherwise start at odd positions (odd runs or pixel distances):
    the micro-kernel's paired loads need even ones, and 4 channels at 0.8 instructions per MAC beat
    3 unpaired (resnet8's and cifar10's first layers). One channel stays one (im2col covers it)."""
    c = attrs["in_shape"][3]
    if c > 1 and c % 2 and (attrs["stride"][1] % 2 or attrs["kernel"][1] % 2):
        return c + 1
    return c


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
        return _compute_rows16(spec)
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


def _compute_rows16(spec):
    """int8 conv over int16 rows (geometry16): the padded input widened to int16 once per row, int16
    weights (taps, oc, k); output (r, s), filter row kh: the k taps at row_of(r, kh)[s * xs + j]."""
    from tvm import te, tirx

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh_n, kw_n = a["kernel"]
    (sh, sw), (dh, dw) = a["stride"], a["dilation"]
    pt, pb, pl, pr = a["pad"]
    g = geometry16(a, spec.knobs.get("im2col", False))
    x = te.placeholder((n, h, w * c), "int8", name="input")
    wt = te.placeholder((g.taps, oc, g.k), "int16", name="weights")
    zp = tirx.const(a["input_zp"], "int16")

    cp = channels16(a)

    def value(b, r, q):
        if cp == c:
            inside = tirx.all(r >= pt, r < pt + h, q >= pl * c, q < (pl + w) * c)
            return tirx.if_then_else(inside, x[b, r - pt, q - pl * c].astype("int16"), zp)
        col, ch = tirx.floordiv(q, cp), tirx.floormod(q, cp)  # a padding channel after the c
        inside = tirx.all(r >= pt, r < pt + h, col >= pl, col < pl + w, ch < c)
        return tirx.if_then_else(inside, x[b, r - pt, (col - pl) * c + ch].astype("int16"), zp)

    def window_value(b, r, s, j):
        # tap j of output (r, s)'s window: filter row, column, channel
        run = kw_n * c
        row = r * sh + tirx.floordiv(j, run) * dh - pt
        col = s * sw + tirx.floordiv(tirx.floormod(j, run), c) * dw - pl
        inside = tirx.all(j < kh_n * run, row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, x[b, row, col * c + tirx.floormod(j, c)].astype("int16"), zp)

    if g.im2col:
        wide = te.compute((n, oh, 1, ow, g.k), lambda b, r, _, s, j: window_value(b, r, s, j), name="pad")
        row_of = lambda b, r, kh, s, j: wide[b, r, kh, s, j]  # noqa: E731
    elif g.recopy:
        wide = te.compute((n, oh, kh_n, g.length), lambda b, r, kh, q: value(b, r * sh + kh * dh, q), name="pad")
        row_of = lambda b, r, kh, s, j: wide[b, r, kh, s * g.xs + j]  # noqa: E731
    else:
        wide = te.compute((n, h + pt + pb, g.length), value, name="pad")
        row_of = lambda b, r, kh, s, j: wide[b, r * sh + kh * dh, s * g.xs + j]  # noqa: E731
    kh = te.reduce_axis((0, g.taps), name="kh")
    k = te.reduce_axis((0, g.k), name="k")
    acc = te.compute(
        (n, oh, ow, oc),
        lambda b, r, s, o: te.sum(row_of(b, r, kh, s, k).astype("int32") * wt[kh, o, k].astype("int32"),
                                  axis=[kh, k]),
        name="acc")
    # the accumulators start from the bias (the schedule's acc_init tile, _init_from_bias)
    tail = epilogue(spec, acc, oc_axis=3, bias_in_acc=_bias_init(spec))
    return [x, wt, *tail[:-1], wide, tail[-1]]


def _bias_init(spec) -> bool:
    """Whether input16's accumulators start from the bias (an int32 bias param: not with a fused
    single rounding, whose int64 offset carries bias * multiplier)."""
    return any(p.name == "bias" for p in spec.params)


def _init_from_bias(block, address, tile, pixels, bias):
    """Args builder of the acc_init tile: tk_mk_acc_init(acc, bias + first channel, pixels, rows)."""
    from tvm import tirx

    out = block.writes[0]
    first = tirx.address_of(tirx.BufferLoad(bias, [out.region[3].min]))
    return [address(out), first, pixels, tile]


def _bias_at(block, bias):
    """The address of the bias of the first channel a tile writes (its accumulators' channel axis)."""
    from tvm import tirx

    return tirx.address_of(tirx.BufferLoad(bias, [block.writes[0].region[3].min]))


def _schedule_rows16(sch, spec):
    """Per output row: its input rows widened into the scratch; per oc tile, the accumulators of the
    whole output row (ow x tile int32 on the stack), one tk_mk_conv_s16 call per filter row, then
    the requantization."""
    import tvm

    from .base import alloc_to_param, param_to_alloc, unmark_opaque
    from .microkernel import blockize_dot, call_on_tiles, conv_s16_call, loops_at

    a = spec.attrs
    _, _, ow, _ = a["out_shape"]
    g = geometry16(a, spec.knobs.get("im2col", False))
    tile = tile16(a, spec.knobs["oc_tile"])
    func, index = param_to_alloc(sch.mod["main"], "pad")
    sch = tvm.s_tir.Schedule(func)
    out = sch.get_sblock("output")
    acc = sch.get_sblock("acc")
    _, row_loop, s_loop, o_loop = sch.get_loops(out)
    oc_outer, oc_inner = sch.split(o_loop, [None, tile])
    # requantize channel by channel (each channel's multiplier and shift loaded once per row)
    sch.reorder(oc_outer, oc_inner, s_loop)
    _hoist_channel_params(sch, out, oc_inner)
    if ow <= _REQUANT_UNROLL_MAX:
        # a short row's requantization straight-line (kws: 5 pixels per channel)
        sch.unroll(s_loop)
    elif ow % 2 == 0:
        # pixel pairs per turn of the requantization loop (its test and step shared)
        sch.unroll(sch.split(s_loop, [None, 2])[1])
    _, _, pixels, rows_loop, kh_loop, k_loop = loops_at(sch, acc, oc_outer)
    sch.reorder(kh_loop, pixels, rows_loop, k_loop)
    init = sch.decompose_reduction(acc, kh_loop)
    name = blockize_dot(sch, pixels)
    if spec.knobs.get("unroll") and g.taps > 1:
        sch.unroll(kh_loop)
    tiles = {name: conv_s16_call(g.xs, g.k, g.k, ow, tile)}
    if _bias_init(spec):
        # the accumulators of the (ow x tile) tile set from the tile's biases by one call
        bias = next(p for p in sch.mod["main"].params if p.name == "bias")
        init_name = blockize_dot(sch, sch.get_loops(init)[-2])
        tiles[init_name] = ("tk_mk_acc_init",
                            lambda block, address: _init_from_bias(block, address, tile, ow, bias))
        if g.taps == 1 and g.k <= _BIAS_START_MAX_K:
            # one conv call per tile (1x1 filters, im2col): it starts the accumulators from the
            # biases itself, in registers (no pass storing them, no loads back)
            tiles[init_name] = ("tk_mk_acc_none", lambda block, address: [address(block.writes[0])])
            conv_name, conv_args = tiles[name]
            tiles[name] = ("tk_mk_conv_s16_bias",
                           lambda block, address: [*conv_args(block, address), _bias_at(block, bias)])
    pad = sch.get_sblock("pad")
    sch.compute_at(pad, row_loop)
    if g.im2col:
        sch.transform_layout(pad, ("write", 0), lambda b, r, kh, s, j: (b, kh, s, j), assume_injective_transform=True)
    elif g.recopy:
        sch.transform_layout(pad, ("write", 0), lambda b, r, kh, q: (b, kh, q), assume_injective_transform=True)
    else:
        sch.rolling_buffer(pad, 0)
    func = alloc_to_param(sch.mod["main"], "pad", index)
    if not g.recopy:
        func = unmark_opaque(func, keep="pad")
    func = call_on_tiles(func, tiles)
    return _widen_rows(func, a, g)


_REQUANT_UNROLL_MAX = 8  # output pixels per row requantized without a loop
# Runs up to this many taps start from the biases inside the conv call (one call per tile). Measured
# on mps2-an500: runs of 16-64 taps gain (kws pointwise 535,920 -> 511,560), cifar10's first layer
# (76 taps) loses 91k: GCC spills the input pointer in its unrolled 3 x 2 body when the bias pointer
# is live next to the accumulators' pointer.
_BIAS_START_MAX_K = 64


def _hoist_channel_params(sch, out, oc_loop):
    """The channel's multiplier and shift copied into locals at the channel loop: read from the
    params inside the pixel loop, GCC reloads them (and recomputes the shift's rounding term) for
    every output, as the int8 output stores may alias any memory; a local whose address is never
    taken stays in a register."""
    for name in ("multiplier", "shift"):
        reads = [r.source.name for r in sch.get(out).reads]
        if name in reads:
            cached = sch.cache_read(out, reads.index(name), "global")
            sch.compute_at(cached, oc_loop)


def _widen_rows(func, attrs, g):
    """Each scratch row filled by one tk_mk_widen_row call (im2col: each pixel's window by one
    tk_mk_im2col_s16 call) instead of TVM's loop over its values (a bounds test per value): the
    loop over a row's values, whose body is the pad block, becomes the call (under the block's
    predicate), its addresses the block's at the row's first value.
    (blockize, as for the other tiles, refuses the rolling buffer's opaque row binding.)"""
    import tvm_ffi
    from tvm import tirx
    from tvm.s_tir.stmt import SBlockRealize

    _, h, w, c = attrs["in_shape"]
    zero = tirx.const(0, "int32")
    found = []

    def swap(loop):
        realize = loop.body
        if not isinstance(realize, SBlockRealize) or realize.block.name_hint != "pad":
            return loop
        block = realize.block
        binding = {iv.var: value for iv, value in zip(block.iter_vars, realize.iter_values)}
        first_value = {loop.loop_var: zero}

        def at(expr):
            # block vars -> their loop expressions, then the row's first value
            for mapping in (binding, first_value):
                expr = tvm_ffi.structural_map(expr, (tirx.Var, lambda v, m=mapping: m.get(v, v)), order="post")
            return expr

        out, src = block.writes[0], block.reads[0]
        dst = tirx.address_of(tirx.BufferLoad(out.source, [at(r.min) for r in out.region]))
        first = tirx.address_of(tirx.BufferLoad(src.source, [zero] * len(src.region)))
        if g.im2col:
            # one pixel's window (block vars b, r, _, s, j: the output row and pixel)
            (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
            r, s = at(realize.iter_values[1]), at(realize.iter_values[3])
            call = tirx.call_extern(
                "int32", "tk_mk_im2col_s16", dst, first, r * sh - attrs["pad"][0], s * sw - attrs["pad"][2], h, w,
                c, *attrs["kernel"], dh, dw, g.k, attrs["input_zp"])
        else:
            call = tirx.call_extern(
                "int32", "tk_mk_widen_row", dst, first, at(src.region[1].min), h, attrs["pad"][2], w, c,
                channels16(attrs), g.length, attrs["input_zp"])
        call = tirx.Evaluate(call)
        found.append(loop)
        return tirx.IfThenElse(at(realize.predicate), call, None)

    result = tvm_ffi.structural_map(func, (tirx.For, swap), order="post")
    if len(found) != 1:
        raise AssertionError(f"conv2d input16: expected one pad row loop, found {len(found)}")
    return result


def _schedule_rows(sch, spec):
    """Per output pixel and oc tile: accumulators on the stack, then for each filter row one call
    of the micro-kernel over the tile's weight rows (ops/microkernel.py)."""
    import tvm

    from .base import alloc_to_param, param_to_alloc, unmark_opaque, widen_rolling
    from .microkernel import blockize_dot, call_on_tiles, dot_s8_call, dot_s8w16_call, loops_at

    a = spec.attrs
    tile = spec.knobs["oc_tile"]
    k = a["kernel"][1] * a["in_shape"][3]
    padded = any(p.role == "scratch" for p in spec.params)
    if padded:
        # the scratch param is an output of the compute; schedule it as a temporary (see base.py)
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
        return _schedule_rows16(sch, spec)
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
        if "HOWI" in layouts and input16_fits(a):
            # HOWI only: int16 input rows, pixel pairs x channel pairs (tk_mk_conv_s16); weights16 unused
            space["input16"] = [True, False]
            # input16 only: each pixel's whole window in one run (see Geometry16), first where
            # the filter rows are short runs
            space["im2col"] = [True, False] if _short_runs(a) else [False, True]
    return space


def input16_fits(attrs) -> bool:
    """The input16 schedule keeps one output row's accumulators (ow x tile int32) on the C stack:
    TVM puts temporaries there only under 1 KiB (else it would need its runtime)."""
    return attrs["out_shape"][2] * 4 < _STACK_LIMIT


_STACK_LIMIT = 1024


def _short_runs(attrs) -> bool:
    """Few input channels over several filter rows: gathering each window (tk_mk_im2col_s16, a few
    instructions per tap) beats one short run per filter row (a call and a block's accumulators
    each) and the padding channel of odd counts (kws' first layer: 10 rows of 4 taps; resnet8's and
    cifar10's first: 3 channels)."""
    if attrs["in_shape"][3] > 4 or attrs["kernel"][0] == 1:
        return False
    # one output row's windows in the scratch: not by default where that is big (wide images)
    return geometry16(attrs, im2col=True).length * 2 <= _IM2COL_SCRATCH_MAX


_IM2COL_SCRATCH_MAX = 8192  # bytes (cifar10's first layer: 32 pixels x 76 taps x 2 = 4,864)


def tile16(attrs, oc_tile: int) -> int:
    """The input16 schedule's oc tile: the largest divisor of oc up to the oc_tile knob whose
    accumulators (ow x tile int32) stay under TVM's stack limit."""
    oc, ow = attrs["out_shape"][3], attrs["out_shape"][2]
    return max(t for t in divisors_up_to(oc, oc_tile) if ow * t * 4 < _STACK_LIMIT)


def _tiles(oc):
    """Divisors of oc up to 8, the default first: the largest up to 4 (four accumulators and one
    input word fit the registers next to the micro-kernel's pointers)."""
    tiles = divisors_up_to(oc, 8)
    best = max(t for t in tiles if t <= 4)
    return [best, *[t for t in tiles if t != best]]


FAMILIES = {
    "conv2d_int8": KernelFamily(compute, schedule, knob_space),
    "conv2d_float32": KernelFamily(compute, schedule, knob_space),
}
