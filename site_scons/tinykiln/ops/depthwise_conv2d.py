"""DEPTHWISE_CONV_2D: int8 (per-channel or per-tensor weights) and float32, any depth multiplier.

Output channel o reads input channel o // depth_multiplier. int8 as TFLite's DepthwiseConvPerChannel,
with the input zero point folded into the bias as for CONV_2D (padding taps read input_zp).

Knob `layout` (int8):
  ROW16  the default where it applies (stride 1 and no dilation across the width, an activation
         range of more than one value: see row16_usable): per input channel, tk_mk_dw_fill_s16 copies
         the channel's plane of the input, padded with input_zp, into an arena scratch param as int16
         (rows of an even width with a spare column; the border is written on the first channel only,
         later ones overwrite the interior), then per
         output row of each of its output channels one tk_mk_dw_row_s16 call (runtime/kernels/
         tk_mk_dw.h) fills the row's accumulators, starting from the folded bias, and TVM
         requantizes them (a short row unrolled: the accumulators stay in registers; the
         channel's multiplier and shift read once per channel). The weights are re-packed at
         build time as int16 per filter row (pack_row16): on Cortex-M DSP cores a three-tap
         filter row is two words (one LDRD) and each output takes two SMLAD-family MACs per
         filter row, the input words loaded once (LDRD) for up to six outputs.
  CHW16  the default where ROW16 does not apply but this does (no dilation across the width, a
         window of 2+ taps): for each input channel in turn, the kernel copies that channel's plane of the input, padded
         with input_zp, into an arena scratch param as int16 (rows, width), then computes the
         channel's outputs from it: the taps of one filter row are contiguous int16 values, two per
         word, and the scratch is one plane (not the whole input). The weights are re-packed at build time as int16
         (channel, kh, kw). The schedule calls the micro-kernel tk_mk_dw_s16 (runtime/kernels/tk_mk.h:
         SMLAD on Cortex-M DSP cores, one per two taps) for each output value.
  weights8 (ROW16, three taps) the weights kept int8 in flash, (w0, w1, w1, w2) bytes per filter
         row widened by SXTB16 in tk_mk_dw_row_s16w8; chosen by optimize= (ops/footprint.py).
  NHWC   TFLite's layouts as they are (weights 1HW(C*M), output channels innermost), the whole loop
         nest from TVM; knobs oc_tile (output channels accumulated together) and unroll apply.
float32 kernels use NHWC.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tinykiln.kernel import KernelCall

from .accumulate import divisors_up_to, padded_input, schedule_accumulate
from .base import KernelFamily, constant, param, unsupported
from .epilogue import epilogue, float_act_attr, int8_accumulate_quant, offset_weights
from .rules import window_padding


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
    if x.dtype == "int8":
        weights, wide = offset_weights(op, w, weights)
        if wide:
            # uint8 weights minus their zero point: int16 (the int16 layouts re-pack them anyway)
            flat_w = param("weights", "int16", (weights.size,), "const")
            attrs["wide_weights"] = True  # no int8 layout (weights8) for these
    flat_data = np.ascontiguousarray(weights).reshape(-1)
    if x.dtype == "int8":
        sums = weights.astype(np.int64).reshape(-1, oc).sum(axis=0)
        extra_params, extra_args, attrs = int8_accumulate_quant(op, x, w, y, sums, bias, attrs, activation)
        params = [param("input", "int8", x.shape, "input"), flat_w, *extra_params,
                  param("output", "int8", y.shape, "output")]
        spec = ctx.spec("depthwise_conv2d_int8", params, attrs)
        if spec.knobs["layout"] == "ROW16":
            # int16 weights packed per filter row for tk_mk_dw_row_s16 (E then O, see tk_mk_dw.h),
            # the bias first among the consts as the accumulators start from it, and one channel's
            # padded plane as scratch; the workload key stays that of the spec above
            w16 = pack_row16(weights[0])
            if spec.knobs.get("weights8"):
                # three taps, int8 in flash: the same (w0, w1, w1, w2) as bytes (tk_mk_dw_row_s16w8)
                w16 = w16.astype(np.int8)
            rows, stride = row16_plane(attrs)
            scratch = param("padded", "int16", (rows * stride,), "scratch")
            params = [params[0], param("weights", str(w16.dtype), w16.shape, "const"), *extra_params, scratch,
                      params[-1]]
            spec = replace(spec, params=tuple(params))
            return [KernelCall(spec, op.index, [x_index, w16, *extra_args, None, op.outputs[0]])]
        if spec.knobs["layout"] == "CHW16":
            # int16 weights (channel, kh, kw) and the (n, rows, channels, width) int16 scratch; the
            # workload key stays that of the spec above
            pt, pb, pl, pr = attrs["pad"]
            w16 = np.ascontiguousarray(weights[0].transpose(2, 0, 1)).astype(np.int16).reshape(-1)
            scratch = param("padded", "int16", ((h + pt + pb) * (wd + pl + pr),), "scratch")
            params = [params[0], param("weights", "int16", (w16.size,), "const"), *extra_params, scratch,
                      params[-1]]
            spec = replace(spec, params=tuple(params))
            return [KernelCall(spec, op.index, [x_index, w16, *extra_args, None, op.outputs[0]])]
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


def _compute_nhwc(spec):
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


def _compute_chw16(spec):
    """int8 on the int16 (n, rows, channels, width) copy of the padded input: for output (r, s, o)
    and filter row kh the kw taps are padded[b, r * sh + kh * dh, o // M, s * sw + 0 .. kw - 1].
    The schedule keeps one (rows, width) plane of it at a time (the scratch param)."""
    from tvm import te, tirx

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh_n, kw_n = a["kernel"]
    (sh, sw), (dh, _) = a["stride"], a["dilation"]
    pt, pb, pl, pr = a["pad"]
    depth = a["depth_multiplier"]
    x = te.placeholder((n, h, w, c), "int8", name="input")
    wt = te.placeholder((oc, kh_n, kw_n), "int16", name="weights")
    zp = tirx.const(a["input_zp"], "int16")

    def pad_value(b, r, ch, s):
        bounds = [cond for cond, needed in ((r >= pt, pt), (r < pt + h, pb), (s >= pl, pl), (s < pl + w, pr))
                  if needed]
        value = x[b, r - pt, s - pl, ch].astype("int16")
        return tirx.if_then_else(tirx.all(*bounds), value, zp) if bounds else value

    padded = te.compute((n, h + pt + pb, c, w + pl + pr), pad_value, name="pad")
    kh = te.reduce_axis((0, kh_n), name="kh")
    kw = te.reduce_axis((0, kw_n), name="kw")
    acc = te.compute(
        (n, oh, ow, oc),
        lambda b, r, s, o: te.sum(
            padded[b, r * sh + kh * dh, o // depth if depth > 1 else o, s * sw + kw].astype("int32")
            * wt[o, kh, kw].astype("int32"),
            axis=[kh, kw]),
        name="acc")
    tail = epilogue(spec, acc, oc_axis=3)
    return [x, wt, *tail[:-1], padded, tail[-1]]


def _schedule_chw16(sch, spec):
    """Per input channel: its padded plane into the scratch, then per output value of the channel
    the accumulator on the stack and one tk_mk_dw_s16 call over the window."""
    import tvm

    from .tir_rewrites import alloc_to_param, param_to_alloc
    from .microkernel import call_on_tiles

    a = spec.attrs
    kh_n, kw_n = a["kernel"]
    _, h, w, c = a["in_shape"]
    pt, pb, pl, pr = a["pad"]
    row_stride = a["dilation"][0] * (w + pl + pr)
    # The scratch param is written by the kernel, so TVM sees "pad" as an output block and refuses to
    # compute_at it: schedule it as a temporary, then give its (shrunk) buffer back as the param.
    func, index = param_to_alloc(sch.mod["main"], "pad")
    sch = tvm.s_tir.Schedule(func)
    out, acc, pad = sch.get_sblock("output"), sch.get_sblock("acc"), sch.get_sblock("pad")
    # Channel-major: per input channel, copy its padded plane, then compute the outputs reading it
    # (all M = depth_multiplier of them); the scratch holds one plane.
    depth = a["depth_multiplier"]
    b, r, s, o = sch.get_loops(out)
    ch, m = sch.split(o, [None, depth])
    sch.reorder(b, ch, r, s, m)
    sch.compute_at(acc, m)
    sch.compute_at(pad, ch)
    sch.transform_layout(pad, ("write", 0), lambda n_, row, c_, col: (row, col),
                         assume_injective_transform=True)
    window = sch.get_loops(acc)[len(sch.get_loops(out)):]  # kh, kw (unit loops dropped)
    sch.decompose_reduction(acc, window[0])
    name = sch.get(sch.blockize(window[0])).name_hint

    def build(block, address):
        acc_region = block.writes[0]
        x = next(r for r in block.reads if r.source.name == "pad")
        wt = next(r for r in block.reads if r.source.name == "weights")
        return [address(x), row_stride, address(wt), kh_n, kw_n, address(acc_region)]

    return call_on_tiles(alloc_to_param(sch.mod["main"], "pad", index), {name: ("tk_mk_dw_s16", build)})


ROW16_TILE = 128  # most outputs of a row per micro-kernel call (their accumulators: 512 B of stack)


def row16_tile(attrs) -> int | None:
    """Outputs of a row per tk_mk_dw_row_s16 call: the whole row if it is short enough, else the
    largest even divisor of its width up to ROW16_TILE (each call's first input word must be on a
    word: its LDRDs need that), None if there is none."""
    ow = attrs["out_shape"][2]
    if ow <= ROW16_TILE:
        return ow
    return max((t for t in range(2, ROW16_TILE + 1, 2) if ow % t == 0), default=None)


def row16_usable(attrs) -> bool:
    """ROW16 slides along the input row one column per output: stride 1, no dilation across, rows
    that split into tiles (row16_tile). Not for an activation range of one value: TVM then folds
    the output to a constant and drops the accumulators the micro-kernel would write a row of."""
    lo, hi = attrs["act"]
    return (attrs["stride"][1] == 1 and attrs["dilation"][1] == 1 and lo != hi
            and row16_tile(attrs) is not None)


def row16_plane(attrs) -> tuple[int, int]:
    """(rows, row stride) of ROW16's int16 plane: the padded input channel plus one spare column
    (read against a zero weight by the last output of a row), rounded up to an even count so every
    row starts on a word and the micro-kernel's pairs are aligned."""
    _, h, w, _ = attrs["in_shape"]
    pt, pb, pl, pr = attrs["pad"]
    width = w + pl + pr + 1
    return h + pt + pb, width + (width & 1)


def row16_taps(kw: int) -> tuple[int, list[int]]:
    """(int16 values per packed filter row, where tap j is in it) for tk_mk_dw_row_s16: E then O
    (see runtime/kernels/tk_mk_dw.h), or (w0, w1, w1, w2) for three taps."""
    if kw == 3:
        return 4, [0, 1, 3]
    return kw + (kw & 1) + kw + 1 + ((kw + 1) & 1), list(range(kw))


def pack_row16(weights):
    """(kh, kw, C*M) int8 depthwise weights -> int16 (C*M, kh, kp) as tk_mk_dw_row_s16 reads them:
    per filter row E = (w0 .. w(kw-1)) and O = (0, w0 .. w(kw-1)), each zero-padded to an even
    count; three taps as (w0, w1, w1, w2)."""
    kh, kw, oc = weights.shape
    kp, _ = row16_taps(kw)
    rows = np.asarray(weights, dtype=np.int16).transpose(2, 0, 1)  # (oc, kh, kw)
    out = np.zeros((oc, kh, kp), dtype=np.int16)
    if kw == 3:
        out[:, :, [0, 1, 2, 3]] = rows[:, :, [0, 1, 1, 2]]
        return out
    ke = kw + (kw & 1)
    out[:, :, :kw] = rows
    out[:, :, ke + 1:ke + 1 + kw] = rows
    return out


def _compute_row16(spec):
    """int8 on the int16 (n, rows, channels, stride) copy of the padded input (spare columns hold
    input_zp): acc (r, s, o) = sum over filter row kh and tap kw of
    padded[b, r * sh + kh * dh, o // M, s + kw] * w[o, kh, kw] (the E part of the packed row), then
    the shared epilogue (bias, requantization). The schedule moves the bias into the micro-kernel."""
    from tvm import te, tirx

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, oc = a["out_shape"]
    kh_n, kw_n = a["kernel"]
    (sh, _), (dh, _) = a["stride"], a["dilation"]
    pt, _, pl, _ = a["pad"]
    depth = a["depth_multiplier"]
    rows, stride = row16_plane(a)
    kp, _ = row16_taps(kw_n)
    x = te.placeholder((n, h, w, c), "int8", name="input")
    wt = te.placeholder((oc, kh_n, kp), "int8" if spec.knobs.get("weights8") else "int16", name="weights")
    zp = tirx.const(a["input_zp"], "int16")

    def pad_value(b, r, ch, s):
        inside = tirx.all(r >= pt, r < pt + h, s >= pl, s < pl + w)
        return tirx.if_then_else(inside, x[b, r - pt, s - pl, ch].astype("int16"), zp)

    padded = te.compute((n, rows, c, stride), pad_value, name="pad")
    kh = te.reduce_axis((0, kh_n), name="kh")
    kw = te.reduce_axis((0, kw_n), name="kw")
    acc = te.compute(
        (n, oh, ow, oc),
        lambda b, r, s, o: te.sum(
            padded[b, r * sh + kh * dh, o // depth if depth > 1 else o, s + kw].astype("int32")
            * wt[o, kh, kw if kw_n != 3 else tirx.if_then_else(kw == 2, 3, kw)].astype("int32"),
            axis=[kh, kw]),
        name="acc")
    tail = epilogue(spec, acc, oc_axis=3)
    return [x, wt, *tail[:-1], padded, tail[-1]]


def _without_bias_add(func):
    """The output block with its bias loads as 0: the micro-kernel started the accumulators from
    the bias (TE's create_prim_func drops a reduction's init, so the compute cannot say so; TVM may
    have distributed the add, e.g. acc * m + bias * m, so the loads are zeroed, not an add dropped)."""
    import tvm
    import tvm_ffi
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock

    def zero(node):
        return tirx.const(0, "int32") if node.source.name == "bias" else node

    def block(node):
        if node.name_hint != "output":
            return node
        body = tvm_ffi.structural_map(node.body, (tvm.ir.TensorLoad, zero), order="post")
        reads = [r for r in node.reads if r.source.name != "bias"]
        return SBlock(node.iter_vars, reads, node.writes, node.name_hint, body, node.init,
                      node.alloc_buffers, node.match_buffers, node.annotations)

    return tvm_ffi.structural_map(func, (SBlock, block), order="post")


def _schedule_row16(sch, spec):
    """Per input channel: tk_mk_dw_fill_s16 copies its padded plane into the scratch (the border
    on the first channel only), then per output row of each of its M output channels one
    tk_mk_dw_row_s16 call fills the row's accumulators (from the bias), and TVM requantizes them."""
    import tvm
    import tvm_ffi
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock

    from .tir_rewrites import alloc_to_param, param_to_alloc
    from .microkernel import loops_at

    a = spec.attrs
    kh_n, kw_n = a["kernel"]
    _, h, w, c = a["in_shape"]
    pt, _, pl, _ = a["pad"]
    rows, stride = row16_plane(a)
    depth = a["depth_multiplier"]
    func, index = param_to_alloc(sch.mod["main"], "pad")
    sch = tvm.s_tir.Schedule(func)
    out, acc, pad = sch.get_sblock("output"), sch.get_sblock("acc"), sch.get_sblock("pad")
    b, r, s, o = sch.get_loops(out)
    ch, m = sch.split(o, [None, depth])
    tile = row16_tile(a)
    s, s_in = sch.split(s, [None, tile])
    sch.reorder(b, ch, r, m, s, s_in)
    acc_tile = sch.get(sch.blockize(loops_at(sch, acc, s)[0])).name_hint
    # A channel's multiplier and shift in locals read once per channel: the int8 stores of the
    # output could alias the params, so C would reload them (and redo the shift arithmetic
    # derived from them) for every output value.
    if "multiplier" in [p.name for p in spec.params]:
        for name in ("multiplier", "shift"):
            sch.compute_at(sch.cache_read(out, name, "global"), ch)
    if tile <= 8:
        # a short row's accumulators become registers once the loop over them is unrolled. (Not
        # the rows: TVM's common subexpression elimination then merges the reads of the
        # accumulators after one call with those after the next, as it does not see the call
        # write them: wrong outputs.)
        sch.unroll(s_in)
    pad_loops = loops_at(sch, pad, ch)
    sch.transform_layout(pad, ("write", 0), lambda n_, row, c_, col: (row, col),
                         assume_injective_transform=True)
    pad_tile = sch.get(sch.blockize(pad_loops[0])).name_hint

    def address(buffer, indices):
        return tirx.address_of(tirx.BufferLoad(buffer, indices))

    def fill_call(block):
        src = next(rg for rg in block.reads if rg.source.name == "input")
        dst = block.writes[0]
        batch, channel = src.region[0].min, src.region[3].min
        first = tirx.all(batch == 0, channel == 0)
        return tirx.call_extern(
            "int32", "tk_mk_dw_fill_s16", address(dst.source, [rg.min for rg in dst.region]), rows, stride,
            address(src.source, [batch, 0, 0, channel]), w * c, c, h, w, pt, pl, a["input_zp"],
            tirx.Cast("int32", first))

    def row_call(block):
        accs = block.writes[0]
        x = next(rg for rg in block.reads if rg.source.name == "pad")
        wt = next(rg for rg in block.reads if rg.source.name == "weights")
        return tirx.call_extern(
            "int32", "tk_mk_dw_row_s16w8" if spec.knobs.get("weights8") else "tk_mk_dw_row_s16",
            address(x.source, [rg.min for rg in x.region]),
            a["dilation"][0] * stride, address(wt.source, [rg.min for rg in wt.region]), kh_n, kw_n, tile,
            tirx.BufferLoad(bias_buffer, [wt.region[0].min]),
            address(accs.source, [rg.min for rg in accs.region]))

    calls = {pad_tile: fill_call, acc_tile: row_call}

    def swap(block):
        # the call does the whole tile, the accumulators' start from the bias included: no init
        if block.name_hint not in calls:
            return block
        return SBlock(block.iter_vars, block.reads, block.writes, block.name_hint,
                      tirx.Evaluate(calls[block.name_hint](block)), None, block.alloc_buffers,
                      block.match_buffers, block.annotations)

    func = alloc_to_param(sch.mod["main"], "pad", index)
    bias_buffer = next(p for p in func.params if p.name == "bias")
    return _without_bias_add(tvm_ffi.structural_map(func, (SBlock, swap), order="post"))


def compute(spec):
    if spec.knobs.get("layout") == "ROW16":
        return _compute_row16(spec)
    if spec.knobs.get("layout") == "CHW16":
        return _compute_chw16(spec)
    return _compute_nhwc(spec)


def schedule(sch, spec):
    if spec.knobs.get("layout") == "ROW16":
        return _schedule_row16(sch, spec)
    if spec.knobs.get("layout") == "CHW16":
        return _schedule_chw16(sch, spec)
    schedule_accumulate(sch, spec, n_reduce=2)
    return None


def knob_space(spec):
    space = {"oc_tile": divisors_up_to(spec.attrs["out_shape"][3], 8), "unroll": [False, True]}
    a = spec.attrs
    if spec.family == "depthwise_conv2d_int8":
        taps = a["kernel"][0] * a["kernel"][1]
        usable = a["dilation"][1] == 1 and taps > 1
        layouts = (["ROW16"] if row16_usable(a) else []) + (["CHW16"] if usable else []) + ["NHWC"]
        space = {"layout": layouts, **space}
        if "ROW16" in layouts and a["kernel"][1] == 3 and not a.get("wide_weights"):
            # ROW16 with three taps only: int8 weights in flash (tk_mk_dw_row_s16w8); optimize= picks it
            space["weights8"] = [False, True]
    return space


def int8_weights(spec) -> dict:
    """optimize= (ops/footprint.py): the knobs that keep the weights int8: ROW16 with int8 weights
    where it has them (three taps), TFLite's layout (NHWC) elsewhere."""
    if "weights8" in knob_space(spec):
        return {"weights8": True}
    return {"layout": "NHWC"}


FAMILIES = {
    "depthwise_conv2d_int8": KernelFamily(compute, schedule, knob_space, int8_weights),
    "depthwise_conv2d_float32": KernelFamily(compute, schedule, knob_space),
}
