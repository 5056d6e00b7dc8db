"""Schedules that call a hand-written micro-kernel (runtime/kernels/tk_mk.h) on an inner tile.

TVM generates the loop nest, the padding and the requantization; only the innermost tile (a dot
product of one input run against a few weight rows) becomes a call of `tk_mk_dot_s8`, which uses
the Cortex-M DSP instructions (SXTB16 + SMLAD) where the core has them and plain C elsewhere.
This is what TVM's tensorize does (blockize the tile, then replace its body with the intrinsic's
implementation); `tvm.s_tir.Schedule.tensorize` crashes in TVM 0.27.0.post1 (a segfault in
ToJSONGraph, even for the simplest intrinsic), so we blockize with the schedule and swap the
block's body ourselves (`call_on_tiles`), reading the pointers from the block's read/write regions
(exactly the regions tensorize would have matched).

    loops_at(sch, block, loop) -> loops             compute_at, one loop per iter var of the block
    blockize_dot(sch, rows_loop) -> name of the blockized tile
    call_on_tiles(func, tiles) -> PrimFunc            tiles: {block name: (extern, args builder)}
"""
from __future__ import annotations

MICROKERNEL = "tk_mk_dot_s8"


def loops_at(sch, block, loop) -> list:
    """compute_at(block, loop) keeping unit loops; returns the loops it created under `loop`, one per
    iter var of the block, in the block's order.

    A schedule that blockizes a tile for a micro-kernel call must know which loop is which. With
    compute_at's default, loops of extent 1 disappear (a tile of one channel, a filter row of one
    tap, a 1-row filter), and telling the rest apart by how many survived picks the wrong loop for
    some shapes: then the tile swallows a loop the call does not iterate (a 3x1 filter on one
    channel computed one filter row of three). Kept unit loops make each loop's role its position;
    lowering removes them from the C."""
    sch.compute_at(block, loop, preserve_unit_loops=True)
    loops = sch.get_loops(block)
    target = sch.get(loop)
    depth = next(i for i, lp in enumerate(loops) if sch.get(lp).same_as(target))
    below = loops[depth + 1:]
    iter_vars = sch.get(block).iter_vars
    if len(below) != len(iter_vars):
        raise AssertionError(f"compute_at made {len(below)} loops for a block of {len(iter_vars)} iter vars")
    return below


def blockize_dot(sch, rows_loop) -> str:
    """Blockize the tile under `rows_loop` (rows x k reduction: acc[r] += x[k] * w[r, k]); returns
    the tile block's name for call_on_tiles."""
    block = sch.blockize(rows_loop)
    return sch.get(block).name_hint


def dot_s8_call(k: int, w_stride: int, rows: int):
    """Args builder of a tk_mk_dot_s8 tile: the block reads (acc, x, w) and writes acc."""

    def build(block, address):
        acc = block.writes[0]
        w = next(r for r in block.reads if r.source.name == "weights")
        x = next(r for r in block.reads if not r.source.same_as(acc.source) and not r.source.same_as(w.source))
        return [address(x), address(w), k, w_stride, rows, address(acc)]

    return MICROKERNEL, build


def dot_s8w16_call(k: int, w_stride: int, rows: int):
    """Args builder of a tk_mk_dot_s8w16 tile (int16 weights packed by pack_w16)."""
    _, build = dot_s8_call(k, w_stride, rows)
    return "tk_mk_dot_s8w16", build


def conv_s16_call(xs: int, k: int, w_stride: int, pixels: int, rows: int):
    """Args builder of a tk_mk_conv_s16 tile (runtime/kernels/tk_mk_conv.h): the block reads the
    int16 input run of its first pixel (the others xs apart), the first of `rows` int16 weight rows
    (w_stride apart) and the (pixels, rows) accumulators, and writes them."""

    def build(block, address):
        acc = block.writes[0]
        w = next(r for r in block.reads if r.source.name == "weights")
        x = next(r for r in block.reads if not r.source.same_as(acc.source) and not r.source.same_as(w.source))
        return [address(x), xs, address(w), k, w_stride, pixels, rows, address(acc)]

    return "tk_mk_conv_s16", build


def pack_w16(rows):
    """int8 weight rows (2-D, one row per dot product) -> int16 in tk_mk_dot_s8w16's order: each
    whole group of four (w0, w1, w2, w3) becomes (w0, w2, w1, w3); the tail keeps its order."""
    import numpy as np

    rows = np.asarray(rows).astype(np.int16)
    out = rows.copy()
    whole = rows.shape[1] // 4 * 4
    groups = rows[:, :whole].reshape(rows.shape[0], -1, 4)
    out[:, :whole] = groups[:, :, [0, 2, 1, 3]].reshape(rows.shape[0], whole)
    return out


def w16_index(k, length: int):
    """TIR index of tap k (0 <= k < length) in a row packed by pack_w16 (slots 1 and 2 of whole groups
    swap)."""
    from tvm import tirx

    whole = length // 4 * 4
    j = tirx.floormod(k, 4)
    swapped = k + tirx.if_then_else(j == 1, 1, tirx.if_then_else(j == 2, -1, 0))
    return tirx.if_then_else(k < whole, swapped, k) if whole < length else swapped


def call_on_tiles(func, tiles: dict):
    """Replace the body of each block named in `tiles` with a call of its micro-kernel."""
    import tvm_ffi
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock

    def address(region):
        return tirx.address_of(tirx.BufferLoad(region.source, [r.min for r in region.region]))

    found = set()

    def swap(block):
        if block.name_hint not in tiles:
            return block
        found.add(block.name_hint)
        name, build = tiles[block.name_hint]
        call = tirx.call_extern("int32", name, *build(block, address))
        return SBlock(block.iter_vars, block.reads, block.writes, block.name_hint, tirx.Evaluate(call),
                      block.init, block.alloc_buffers, block.match_buffers, block.annotations)

    result = tvm_ffi.structural_map(func, (SBlock, swap), order="post")
    missing = set(tiles) - found
    if missing:
        raise AssertionError(f"micro-kernel tiles not found in the schedule: {sorted(missing)}")
    return result
