"""Schedule helpers of the copy kernels (split, gather, tile, ...): loops fused into the longest runs
that are contiguous in both tensors, so a copy is a few memcpy-like loops, not one loop per dimension.
"""
from __future__ import annotations


def contiguous_run(in_shape, out_shape) -> int:
    """The first dimension of the longest trailing block that is contiguous in both tensors: the
    trailing dimensions the output takes whole, plus the one before them."""
    d = len(out_shape)
    while d > 0 and out_shape[d - 1] == in_shape[d - 1]:
        d -= 1
    return max(d - 1, 0)


def fuse_groups(sch, groups) -> list:
    """Fuse each group of adjacent loops into one (groups of one or none are kept as they are)."""
    result = []
    for group in groups:
        if len(group) > 1:
            result.append(sch.fuse(*group))
        elif group:
            result.append(group[0])
    return result
