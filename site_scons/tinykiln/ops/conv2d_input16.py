"""The input16 schedule of int8 CONV_2D (see ops/conv2d.py for the knobs): the input rows widened once
to int16 into the scratch (or, im2col, each output pixel's window), int16 weights, and per (output
row, oc tile, filter row) one tk_mk_conv_s16 call computing the row's pixels in blocks of 2 pixels x 2
channels (runtime/kernels/tk_mk_conv.h), then TVM's requantization.

    geometry16(attrs, im2col) -> Geometry16   how the scratch and the runs are laid out
    channels16(attrs), tile16(attrs, oc_tile), input16_fits(attrs), short_runs(attrs)
    compute_rows16(spec), schedule_rows16(sch, spec)
"""
from __future__ import annotations

from dataclasses import dataclass

from .accumulate import divisors_up_to, window_rows
from .epilogue import epilogue
from .microkernel import w16_index


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
    # windows that share no rows, or a single output row (nothing to roll: TVM's rolling buffer
    # finds no row pattern in a loop of one, e.g. an SSD head's 3x3 conv on a 1x1 feature map)
    if attrs["stride"][0] >= window_rows(attrs) or attrs["out_shape"][1] == 1:
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


def compute_rows16(spec):
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
    w8 = bool(spec.knobs.get("weights8"))  # int8 weights, whole groups stored (w0, w2, w1, w3)
    wt = te.placeholder((g.taps, oc, g.k), "int8" if w8 else "int16", name="weights")
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
        lambda b, r, s, o: te.sum(row_of(b, r, kh, s, k).astype("int32")
                                  * wt[kh, o, w16_index(k, g.k) if w8 else k].astype("int32"),
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


def schedule_rows16(sch, spec):
    """Per output row: its input rows widened into the scratch; per oc tile, the accumulators of the
    whole output row (ow x tile int32 on the stack), one tk_mk_conv_s16 call per filter row, then
    the requantization."""
    import tvm

    from .tir_rewrites import alloc_to_param, param_to_alloc, unmark_opaque
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
    w8 = bool(spec.knobs.get("weights8"))
    if w8:
        tiles[name] = ("tk_mk_conv_s16w8", tiles[name][1])
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
            tiles[name] = ("tk_mk_conv_s16w8_bias" if w8 else "tk_mk_conv_s16_bias",
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


def input16_fits(attrs) -> bool:
    """The input16 schedule keeps one output row's accumulators (ow x tile int32) on the C stack:
    TVM puts temporaries there only under 1 KiB (else it would need its runtime)."""
    return attrs["out_shape"][2] * 4 < _STACK_LIMIT


_STACK_LIMIT = 1024


def short_runs(attrs) -> bool:
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
