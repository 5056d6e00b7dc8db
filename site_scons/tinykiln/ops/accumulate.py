"""The shared pieces of conv-like kernels (acc = a reduction over taps, output = the epilogue): the
padded input stage, the accumulate-then-epilogue schedule, and the channel tiles of their knob spaces.
"""
from __future__ import annotations


def divisors_up_to(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


def padded_input(x, attrs, fill, channels_fn=None):
    """TE stage: the input with `fill` around it (inlined by the schedule into a select)."""
    from tvm import te, tirx

    n, h, w, c = attrs["in_shape"]
    pt, pb, pl, pr = attrs["pad"]
    if not any(attrs["pad"]):
        return x
    fill = tirx.const(fill, x.dtype)

    def value(b, r, s, ch):
        inside = tirx.all(r >= pt, r < pt + h, s >= pl, s < pl + w)
        return tirx.if_then_else(inside, x[b, r - pt, s - pl, ch], fill)

    return te.compute((n, h + pt + pb, w + pl + pr, c), value, name="pad")


def schedule_accumulate(sch, spec, n_reduce):
    """Shared schedule of conv-like kernels (acc = reduction; output = epilogue, oc innermost):
    output channels split by oc_tile; the accumulators of one tile live in a small array on the C
    stack (TVM keeps temporaries under 1 KiB there), computed at the tile's loop, with the oc tile
    innermost so each input load feeds the tile. n_reduce: reduction axes of acc (documentation;
    the loops are found in the schedule, as compute_at drops unit ones)."""
    try:
        sch.compute_inline(sch.get_sblock("pad"))
    except Exception:  # no padding stage: nothing to inline
        pass
    tile = spec.knobs.get("oc_tile", 1)
    out = sch.get_sblock("output")
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(out)
    oc_outer, oc_inner = sch.split(loops[-1], [None, tile])
    sch.compute_at(acc, oc_outer)
    # compute_at drops unit loops (a tile of 1, a 1x1 window): find what is left under the tile
    acc_loops = sch.get_loops(acc)
    outer = sch.get(oc_outer)
    depth = next(i for i, loop in enumerate(acc_loops) if sch.get(loop).same_as(outer))
    below = acc_loops[depth + 1:]
    spatial_inner = below[0] if tile > 1 else None
    reduce = below[1:] if tile > 1 else below
    if spatial_inner is not None and reduce:
        sch.reorder(*reduce, spatial_inner)
    if reduce:
        sch.decompose_reduction(acc, reduce[0])
    if spec.knobs.get("unroll") and tile > 1:
        sch.unroll(oc_inner)
        sch.unroll(spatial_inner)
        if reduce:
            sch.unroll(sch.get_loops(sch.get_sblock("acc_init"))[-1])


def window_rows(attrs) -> int:
    """Rows of the padded input that one output row reads: the filter's height, dilated."""
    return (attrs["kernel"][0] - 1) * attrs["dilation"][0] + 1
