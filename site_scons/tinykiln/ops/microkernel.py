"""Schedules that call a hand-written micro-kernel (runtime/kernels/tk_mk.h) on an inner tile.

TVM generates the loop nest, the padding and the requantization; only the innermost tile (a dot
product of one input run against a few weight rows) becomes a call of `tk_mk_dot_s8`, which uses
the Cortex-M DSP instructions (SXTB16 + SMLAD) where the core has them and plain C elsewhere.
This is what TVM's tensorize does (blockize the tile, then replace its body with the intrinsic's
implementation); `tvm.s_tir.Schedule.tensorize` crashes in TVM 0.27.0.post1 (a segfault in
ToJSONGraph, even for the simplest intrinsic), so we blockize with the schedule and swap the
block's body ourselves (`call_on_tiles`), reading the pointers from the block's read/write regions
(exactly the regions tensorize would have matched).

    dot_s8(sch, acc_block, rows_loop, k, w_stride, rows) -> name of the blockized tile
    call_on_tiles(func, tiles) -> PrimFunc            tiles: {block name: (extern, args builder)}
"""
from __future__ import annotations

MICROKERNEL = "tk_mk_dot_s8"


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
