"""FULLY_CONNECTED: int8 (per-tensor or per-channel weights) and float32, any batch, keep_num_dims.

The input is read as [batches, depth] (depth = the weights' second dimension), the output as
[batches, units]: keep_num_dims only changes the output tensor's shape, not its bytes.
int8: acc = sum(w * (x - input_zp)) + bias, zero point folded into the bias; per-tensor multipliers
as TFLite's GetQuantizedConvolutionMultipler (the scale product in float), per-channel ones as for
convolutions; the rescaling rounds once ((acc * m + 2^(30-s)) >> (31-s)), as LiteRT's reference
FULLY_CONNECTED does, where convolutions round twice.
Knobs: weight_layout (OI: TFLite's rows; IO: units innermost, for tiles), oc_tile, unroll (int8 with
the micro-kernel, default on: the tile's requantization unrolled; otherwise TVM's oc tile), and
for int8:
  microkernel  "dot_s8" (default) calls a dot-product micro-kernel on each tile of OI rows, "none"
               leaves the whole loop nest to TVM;
  weights16    (with the micro-kernel, default on) the weights re-packed at build time as int16,
               interleaved across the rows of a tile in the order tk_mk_fc_s8w16
               (runtime/kernels/tk_mk_fc.h) multiplies them (pack_fc_w16), so a DSP core loads two
               rows' four-input blocks with one LDM and multiplies them with no unpacking (twice
               the weight bytes, about half the instructions per MAC); off: int8 rows, tk_mk_dot_s8;
  weights8     (with the micro-kernel on OI tiles; before weights16) the weights kept int8, in
               the group order of tk_mk_fc_s8w8 (pack_fc_w8): each weight word widened by two
               SXTB16 in registers, no PKH (the input's pairs match); the weight bytes of the
               .tflite (plus at most 3 per tile), about 1.6x the inner loop of weights16. Chosen by
               optimize= (tinykiln/ops/footprint.py), off in the space's default order;
  input16      (with weights16 or weights8; default on where depth <= INPUT16_DEPTH) each input row widened to
               int16 once (tk_mk_fc_widen, into a one-row arena scratch), then tk_mk_fc_s16w16: one
               LDRD per four inputs instead of LDR + 2 SXTB16 per four inputs and four rows.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from tinykiln.kernel import KernelCall

from .accumulate import divisors_up_to, schedule_accumulate
from .base import KernelFamily, constant, param, unsupported
from .epilogue import epilogue, float_act_attr, int8_accumulate_quant, offset_weights


# the largest depth whose input16 knob defaults to on (a 512-byte scratch)
INPUT16_DEPTH = 256


def lower_fully_connected(ctx, op):
    x_index, w_index = op.inputs[0], op.inputs[1]
    b_index = op.inputs[2] if len(op.inputs) > 2 else -1
    x, w, y = ctx.tensor(x_index), ctx.tensor(w_index), ctx.tensor(op.outputs[0])
    units, depth = w.shape
    size = int(np.prod(x.shape))
    if size % depth != 0:
        raise unsupported(op, f"input of {size} values is not a whole number of rows of {depth}")
    batches = size // depth
    if int(np.prod(y.shape)) != batches * units:
        raise unsupported(op, f"output shape {y.shape} does not hold {batches} x {units} values")
    attrs = {"batches": batches, "depth": depth, "units": units}
    weights = constant(ctx, w_index, op, "weights")
    bias = constant(ctx, b_index, op, "bias") if b_index >= 0 else None
    activation = op.attrs.get("activation", "NONE")
    flat_w = param("weights", w.dtype, (weights.size,), "const")
    if x.dtype == "int8":
        weights, wide = offset_weights(op, w, weights)
        if wide:
            # uint8 weights minus their zero point: int16 weights in every layout (see knob_space)
            attrs["wide_weights"] = True
            flat_w = param("weights", "int16", (weights.size,), "const")
        sums = weights.astype(np.int64).sum(axis=1)
        per_tensor = w.quant is not None and not w.quant.per_channel
        extra_params, extra_args, attrs = int8_accumulate_quant(op, x, w, y, sums, bias, attrs, activation,
                                                                float_product=per_tensor)
        # LiteRT's reference FULLY_CONNECTED rescales with one rounding (checked bit for bit against
        # LiteRT 2.3: double rounding differs in ~0.05% of outputs), unlike its convolutions
        attrs["rounding"] = "single"
        params = [param("input", "int8", (batches, depth), "input"), flat_w, *extra_params,
                  param("output", "int8", (batches, units), "output")]
        spec = ctx.spec("fully_connected_int8", params, attrs)
        laid_out = _layout(weights, spec.knobs["weight_layout"])
        if _w8(spec) or _w16(spec):
            # the workload key stays that of the int8 spec (ctx.spec recorded it)
            if _w8(spec):
                laid_out = pack_fc_w8(weights, spec.knobs["oc_tile"])
                params[1] = param("weights", "int8", laid_out.shape, "const")
            else:
                laid_out = pack_fc_w16(weights, spec.knobs["oc_tile"])
                params[1] = param("weights", "int16", laid_out.shape, "const")
            scratch = []
            if _input16(spec):
                # one input row widened (an even count of int16: the next tensor stays aligned)
                scratch = [param("input16", "int16", (depth + depth % 2,), "scratch")]
            spec = replace(spec, params=tuple(params[:-1] + scratch + params[-1:]))
            extra_args += [None] * len(scratch)
        args = [x_index, laid_out, *extra_args, op.outputs[0]]
        return [KernelCall(spec, op.index, args)]
    if x.dtype != "float32":
        raise unsupported(op, f"input type {x.dtype}")
    attrs["act"] = float_act_attr(activation, op)
    attrs["bias"] = bias is not None
    params = [param("input", "float32", (batches, depth), "input"), flat_w]
    extra = []
    if bias is not None:
        params.append(param("bias", "float32", (units,), "const"))
        extra.append(np.asarray(bias, dtype=np.float32))
    params.append(param("output", "float32", (batches, units), "output"))
    spec = ctx.spec("fully_connected_float32", params, attrs)
    args = [x_index, _layout(weights, spec.knobs["weight_layout"]), *extra, op.outputs[0]]
    return [KernelCall(spec, op.index, args)]


def _layout(weights: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(weights if layout == "OI" else weights.T).reshape(-1)


def _tiles_ok(spec) -> bool:
    k = spec.knobs
    return k.get("microkernel") == "dot_s8" and k.get("weight_layout") == "OI"


def _w8(spec) -> bool:
    """int8 weights in tk_mk_fc_s8w8's group layout (the micro-kernel on OI tiles; int8 weights only)."""
    return bool(spec.knobs.get("weights8")) and _tiles_ok(spec) and not spec.attrs.get("wide_weights")


def _w16(spec) -> bool:
    """int16 weights in tk_mk_fc_s8w16's layout (they need the micro-kernel on OI tiles)."""
    return bool(spec.knobs.get("weights16")) and _tiles_ok(spec) and not _w8(spec)


def _input16(spec) -> bool:
    """The input row widened to int16 once (tk_mk_fc_widen), then tk_mk_fc_s16w16 (or s16w8) per tile."""
    return (_w16(spec) or _w8(spec)) and bool(spec.knobs.get("input16"))


def _tile_size(tile: int, depth: int) -> int:
    """int16 values of one packed tile of `tile` rows: its last group pads an odd tail to a word."""
    last = tile - (tile - 1) // 4 * 4
    return tile * depth + last * (depth % 4) % 2


def pack_fc_w16(weights: np.ndarray, tile: int) -> np.ndarray:
    """int8 weights [units, depth] -> int16 [units / tile, _tile_size] in the layout of
    tk_mk_fc_s8w16 (runtime/kernels/tk_mk_fc.h): per tile, groups of four rows; per group each whole
    block of four inputs holds the group's rows one after the other, each (w0, w2, w1, w3); then
    the depth % 4 tail taps row by row; then a zero if that tail is odd. fc_w16_index reads it."""
    units, depth = weights.shape
    whole, tail = depth // 4 * 4, depth % 4
    out = np.zeros((units // tile, _tile_size(tile, depth)), np.int16)
    for t in range(units // tile):
        pos = 0
        for g0 in range(0, tile, 4):
            group = weights[t * tile + g0: t * tile + min(g0 + 4, tile)].astype(np.int16)
            g = len(group)
            blocks = group[:, :whole].reshape(g, -1, 4)[:, :, [0, 2, 1, 3]]  # (row, block, slot)
            out[t, pos: pos + g * whole] = blocks.transpose(1, 0, 2).reshape(-1)
            pos += g * whole
            out[t, pos: pos + g * tail] = group[:, whole:].reshape(-1)
            pos += g * tail + g * tail % 2
    return out


def _tile_bytes8(tile: int, depth: int) -> int:
    """int8 values of one tile in pack_fc_w8's layout: its last group's tail padded to a word."""
    last = tile - (tile - 1) // 4 * 4
    return tile * depth + (-(last * (depth % 4))) % 4


def pack_fc_w8(weights: np.ndarray, tile: int) -> np.ndarray:
    """int8 weights [units, depth] -> int8 [units / tile, _tile_bytes8] in the layout of
    tk_mk_fc_s8w8 (runtime/kernels/tk_mk_fc.h): per tile, groups of four rows; per group each whole
    block of four inputs holds the group's rows' four taps one row after the other, in order; then
    the depth % 4 tail taps row by row; then zeros up to a word. fc_w8_index reads it."""
    units, depth = weights.shape
    whole, tail = depth // 4 * 4, depth % 4
    out = np.zeros((units // tile, _tile_bytes8(tile, depth)), np.int8)
    for t in range(units // tile):
        pos = 0
        for g0 in range(0, tile, 4):
            group = np.asarray(weights[t * tile + g0: t * tile + min(g0 + 4, tile)], np.int8)
            g = len(group)
            blocks = group[:, :whole].reshape(g, -1, 4)  # (row, block, tap)
            out[t, pos: pos + g * whole] = blocks.transpose(1, 0, 2).reshape(-1)
            pos += g * whole
            out[t, pos: pos + g * tail] = group[:, whole:].reshape(-1)
            pos += g * tail + (-(g * tail)) % 4
    return out


def fc_w8_index(r, k, tile: int, depth: int):
    """TIR index, inside its packed tile, of row r's tap k (pack_fc_w8's layout)."""
    from tvm import tirx

    whole, tail = depth // 4 * 4, depth % 4
    last = tile - (tile - 1) // 4 * 4
    group, row = tirx.floordiv(r, 4), tirx.floormod(r, 4)
    g = tirx.if_then_else(group == (tile - 1) // 4, last, 4) if last != 4 else 4
    base = group * 4 * depth
    in_block = base + tirx.floordiv(k, 4) * 4 * g + row * 4 + tirx.floormod(k, 4)
    if not tail:
        return in_block
    in_tail = base + whole * g + row * tail + (k - whole)
    return tirx.if_then_else(k < whole, in_block, in_tail)


def fc_w16_index(r, k, tile: int, depth: int):
    """TIR index, inside its packed tile, of row r's tap k (pack_fc_w16's layout)."""
    from tvm import tirx

    whole, tail = depth // 4 * 4, depth % 4
    last = tile - (tile - 1) // 4 * 4
    group, row = tirx.floordiv(r, 4), tirx.floormod(r, 4)
    g = tirx.if_then_else(group == (tile - 1) // 4, last, 4) if last != 4 else 4
    slot = tirx.floormod(_slot(k, depth), 4)
    base = group * 4 * depth
    in_block = base + tirx.floordiv(k, 4) * 4 * g + row * 4 + slot
    if not tail:
        return in_block
    in_tail = base + whole * g + row * tail + (k - whole)
    return tirx.if_then_else(k < whole, in_block, in_tail)


def compute(spec):
    from tvm import te

    a = spec.attrs
    batches, depth, units = a["batches"], a["depth"], a["units"]
    int8 = spec.family.endswith("int8")
    x = te.placeholder((batches, depth), spec.params[0].dtype, name="input")
    wt = te.placeholder(spec.params[1].shape, spec.params[1].dtype, name="weights")
    k = te.reduce_axis((0, depth), name="k")
    acc_type = "int32" if int8 else "float32"
    if int8 and _w8(spec):
        tile = spec.knobs["oc_tile"]
        wt = te.placeholder(spec.params[1].shape, "int8", name="weights")
        w_at = lambda o, i: wt[o // tile, fc_w8_index(o % tile, i, tile, depth)]  # noqa: E731
    elif int8 and _w16(spec):
        tile = spec.knobs["oc_tile"]
        wt = te.placeholder(spec.params[1].shape, "int16", name="weights")
        w_at = lambda o, i: wt[o // tile, fc_w16_index(o % tile, i, tile, depth)]  # noqa: E731
    elif spec.knobs["weight_layout"] == "OI":
        w_at = lambda o, i: wt[o * depth + i]  # noqa: E731
    else:
        w_at = lambda o, i: wt[i * units + o]  # noqa: E731
    if int8 and _input16(spec):
        # the row widened in tk_mk_fc_widen's order: slot s of a whole block holds tap (0, 2, 1, 3)[s]
        x16 = te.compute((batches, depth), lambda b, s: x[b, _slot(s, depth)].astype("int16"), name="input16")
        acc = te.compute((batches, units),
                         lambda b, o: te.sum(x16[b, _slot(k, depth)].astype(acc_type) * w_at(o, k).astype(acc_type),
                                             axis=k),
                         name="acc")
        tail = epilogue(spec, acc, oc_axis=1)
        return [x, wt, *tail[:-1], x16, tail[-1]]
    acc = te.compute((batches, units),
                     lambda b, o: te.sum(x[b, k].astype(acc_type) * w_at(o, k).astype(acc_type), axis=k),
                     name="acc")
    return [x, wt, *epilogue(spec, acc, oc_axis=1)]


def _slot(k, depth: int):
    """TIR: where tap k sits in a row stored in SXTB16 order (whole blocks (0, 2, 1, 3), tail kept)."""
    from tvm import tirx

    j = tirx.floormod(k, 4)
    swapped = k + tirx.if_then_else(j == 1, 1, tirx.if_then_else(j == 2, -1, 0))
    whole = depth // 4 * 4
    return tirx.if_then_else(k < whole, swapped, k) if whole < depth else swapped


def schedule(sch, spec):
    if spec.knobs.get("microkernel", "none") == "dot_s8" and spec.knobs["weight_layout"] == "OI":
        return _schedule_dot(sch, spec)
    schedule_accumulate(sch, spec, n_reduce=1)
    return None


def _schedule_dot(sch, spec):
    """int8, OI rows: per batch row and unit tile, one call of the dot-product micro-kernel
    (ops/microkernel.py; SMLAD on Cortex-M DSP cores) over the whole depth."""
    from .microkernel import blockize_dot, call_on_tiles, dot_s8_call, loops_at

    depth, tile = spec.attrs["depth"], spec.knobs["oc_tile"]
    if _w8(spec) or _w16(spec):
        call = _fc_w16_call(depth, tile, _input16(spec), int8_weights=_w8(spec))
    else:
        call = dot_s8_call(depth, depth, tile)
    if _input16(spec):
        return _schedule_input16(sch, spec, call)
    out, acc = sch.get_sblock("output"), sch.get_sblock("acc")
    oc_outer, oc_inner = sch.split(sch.get_loops(out)[-1], [None, tile])
    if spec.knobs.get("unroll"):
        sch.unroll(oc_inner)  # the tile's requantization
    _, rows_loop, _ = loops_at(sch, acc, oc_outer)  # (batch, units tile, depth), unit loops kept
    sch.decompose_reduction(acc, rows_loop)
    name = blockize_dot(sch, rows_loop)  # units tile x depth
    return call_on_tiles(sch.mod["main"], {name: call})


def _schedule_input16(sch, spec, call):
    """As _schedule_dot, after widening each input row once into the scratch (one row of int16,
    reused by every batch row) with tk_mk_fc_widen."""
    import tvm
    from tvm import tirx

    from .tir_rewrites import alloc_to_param, param_to_alloc
    from .microkernel import blockize_dot, call_on_tiles, loops_at

    depth, tile = spec.attrs["depth"], spec.knobs["oc_tile"]
    func, index = param_to_alloc(sch.mod["main"], "input16")
    sch = tvm.s_tir.Schedule(func)
    out, acc = sch.get_sblock("output"), sch.get_sblock("acc")
    batch_loop = sch.get_loops(out)[0]
    oc_outer, oc_inner = sch.split(sch.get_loops(out)[-1], [None, tile])
    if spec.knobs.get("unroll"):
        sch.unroll(oc_inner)  # the tile's requantization
    _, rows_loop, _ = loops_at(sch, acc, oc_outer)
    sch.decompose_reduction(acc, rows_loop)
    name = blockize_dot(sch, rows_loop)
    widen = sch.get_sblock("input16")
    _, k_loop = loops_at(sch, widen, batch_loop)
    sch.transform_layout(widen, ("write", 0), lambda b, s: (s,), assume_injective_transform=True)
    widen_name = blockize_dot(sch, k_loop)
    func = alloc_to_param(sch.mod["main"], "input16", index)

    def widen_args(block, address):
        # the row's start (the regions along it are loose bounds of the slot arithmetic)
        x, x16 = block.reads[0], block.writes[0]
        zero = tirx.const(0, "int32")
        return [tirx.address_of(tirx.BufferLoad(x.source, [x.region[0].min, zero])),
                tirx.address_of(tirx.BufferLoad(x16.source, [zero])), tirx.const(depth, "int32")]

    return call_on_tiles(func, {name: call, widen_name: ("tk_mk_fc_widen", widen_args)})


def _fc_w16_call(depth: int, rows: int, input16: bool = False, int8_weights: bool = False):
    """Args builder of a tk_mk_fc_s8w16 (or, input16, tk_mk_fc_s16w16; int8_weights: tk_mk_fc_s8w8,
    tk_mk_fc_s16w8) tile: (x, the tile's packed weights, k, rows, acc). The
    weights' address is the start of the tile's row of the [tiles, packed] array (its region
    along the packed axis is a loose bound of the index arithmetic, not the start)."""
    from tvm import tirx

    def build(block, address):
        acc = block.writes[0]
        w = next(r for r in block.reads if r.source.name == "weights")
        x = next(r for r in block.reads if not r.source.same_as(acc.source) and not r.source.same_as(w.source))
        start = tirx.address_of(tirx.BufferLoad(w.source, [w.region[0].min, tirx.const(0, "int32")]))
        return [address(x), start, depth, rows, address(acc)]

    name = f"tk_mk_fc_s{16 if input16 else 8}w{8 if int8_weights else 16}"
    return name, build


def knob_space(spec):
    tiles = divisors_up_to(spec.attrs["units"], 8)
    space = {"weight_layout": ["OI", "IO"], "oc_tile": tiles, "unroll": [False, True]}
    if spec.family == "fully_connected_int8":
        # with the micro-kernel: the tile's requantization unrolled (a loop of 4 costs 3 a value)
        space["unroll"] = [True, False]
        # the micro-kernel reads OI rows (with IO it is not used); default: up to four rows a call
        best = max(t for t in tiles if t <= 4)
        space["oc_tile"] = [best, *[t for t in tiles if t != best]]
        space["microkernel"] = ["dot_s8", "none"]
        space["weights16"] = [True, False]  # with the micro-kernel on OI tiles: int16 packed, or int8
        # int8 weights for tk_mk_fc_s8w8 (before weights16); optimize= picks it (ops/footprint.py)
        space["weights8"] = [False, True]
        if spec.attrs.get("wide_weights"):
            space["weights16"] = [True]  # weights beyond int8 (uint8 minus its zero point): dot_s8 needs int16
            space["weights8"] = [False]
        # with weights16: widen the input row once (scratch of 2 bytes per input); by default only
        # where that scratch stays small (fc-ae's 640-input layer would triple the arena)
        space["input16"] = [True, False] if spec.attrs["depth"] <= INPUT16_DEPTH else [False, True]
    return space


def int8_weights(spec) -> dict:
    """optimize= (ops/footprint.py): the knobs that keep the weights int8 (tk_mk_fc_s8w8's layout)."""
    return {} if spec.attrs.get("wide_weights") else {"weights8": True}


FAMILIES = {
    "fully_connected_int8": KernelFamily(compute, schedule, knob_space, int8_weights),
    "fully_connected_float32": KernelFamily(compute, schedule, knob_space),
}
