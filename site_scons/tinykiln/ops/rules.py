"""TFLite's shape and quantization rules, the one statement of each that the importer's checks
(ops/checks.py) and the lowering both apply.

    conv_out(size, k, stride, dilation, padding) -> int        ComputeOutSize
    conv_padding(padding, size, k, stride, dilation, out)      ComputePaddingHeightWidth
    window_padding(...)                                        the same, covering partial windows
    FIXED_OUTPUT_QUANT, fixed_output_quant_ok(kind, scale, zp) int8 outputs LiteRT's Prepare imposes
    strided_slice_ranges(shape, begin, end, strides, ...)      STRIDED_SLICE's per-axis ranges, shape
    reduced_shape(shape, axes, keep_dims)                      MEAN's output shape
    resize_shape(shape, size)                                  RESIZE_*'s output shape (NHWC)
    split_sizes(dim, size_splits)                              SPLIT_V's parts (one -1: the rest)
    pack_shape(shape, axis, count)                             PACK's output shape
    slice_ranges(shape, begin, size)                           SLICE's (begin, length) per axis
    gather_shape(shape, indices_shape, axis, batch_dims)       GATHER's output shape
    gather_nd_shape(shape, indices_shape)                      GATHER_ND's output shape
    tile_shape(shape, multiples)                               TILE's output shape
    broadcast_to_shape(shape, target)                          BROADCAST_TO's output shape (or None)
    space_to_depth_shape(shape, block, inverse)                SPACE_TO_DEPTH / DEPTH_TO_SPACE's (or None)
    space_to_batch_shape(shape, block, paddings)               SPACE_TO_BATCH_ND's output shape (or None)
    batch_to_space_shape(shape, block, crops)                  BATCH_TO_SPACE_ND's output shape (or None)
"""
from __future__ import annotations

import numpy as np


def conv_out(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    """Spatial output size of a convolution or pooling window (TFLite's ComputeOutSize)."""
    effective = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - effective + stride) // stride


def conv_padding(padding: str, size: int, kernel: int, stride: int, dilation: int, out: int) -> tuple[int, int]:
    """Rows (or columns) of padding before and after, as TFLite's ComputePaddingHeightWidth: SAME puts
    the odd row after; VALID pads nothing (the output size then excludes the partial windows)."""
    if padding == "VALID":
        return 0, 0
    effective = (kernel - 1) * dilation + 1
    total = max(0, (out - 1) * stride + effective - size)
    return total // 2, total - total // 2


def window_padding(padding: str, size: int, kernel: int, stride: int, dilation: int, out: int) -> tuple[int, int]:
    """Like conv_padding, but `after` also covers windows that run off the end with VALID padding
    (never read: TFLite's output size excludes them), so computes can index a padded input safely."""
    before, _ = conv_padding(padding, size, kernel, stride, dilation, out)
    effective = (kernel - 1) * dilation + 1
    after = max(0, (out - 1) * stride + effective - size - before)
    return before, after


# int8 output quantization (scale, zero point) that LiteRT's kernels require (checked in their Prepare)
FIXED_OUTPUT_QUANT = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}


def fixed_output_quant_ok(kind: str, scale: float, zero_point: int) -> bool:
    """Whether an int8 output of `kind` has the quantization LiteRT requires (any, for kinds that
    impose none); the scale to within 0.1 %, as converters write it."""
    if kind not in FIXED_OUTPUT_QUANT:
        return True
    want_scale, want_zp = FIXED_OUTPUT_QUANT[kind]
    return abs(scale - want_scale) <= want_scale * 1e-3 and zero_point == want_zp


def reduced_shape(shape, axes, keep_dims: bool) -> list[int]:
    """Output shape of a reduction (MEAN) over `axes` (normalised to 0..rank-1)."""
    if keep_dims:
        return [1 if i in axes else s for i, s in enumerate(shape)]
    return [s for i, s in enumerate(shape) if i not in axes]


def strided_slice_ranges(shape, begin, end, strides, begin_mask=0, end_mask=0, ellipsis_mask=0,
                         new_axis_mask=0, shrink_axis_mask=0, offset=False):
    """Resolve TFLite STRIDED_SLICE operands to (start, stop, stride) per input dimension plus the
    output shape. Supports the masks TFLite supports on the reference path (ellipsis and new-axis
    masks are rejected by callers before this point if nonzero)."""
    if ellipsis_mask or new_axis_mask:
        raise ValueError("ellipsis_mask and new_axis_mask are not supported")
    rank = len(shape)
    begin = list(begin) + [0] * (rank - len(begin))
    end = list(end) + [0] * (rank - len(end))
    strides = list(strides) + [1] * (rank - len(strides))
    n_given = len(begin)
    ranges, out_shape = [], []
    for i in range(rank):
        dim = shape[i]
        stride = strides[i]
        if stride == 0:
            raise ValueError("stride 0")
        b, e = begin[i], end[i]
        if offset:
            e = b + e
        shrink = bool(shrink_axis_mask >> i & 1)
        # start
        if begin_mask >> i & 1:
            start = 0 if stride > 0 else dim - 1
        else:
            start = b + dim if b < 0 else b
            start = min(max(start, 0), dim) if stride > 0 else min(max(start, -1), dim - 1)
        if shrink:
            stop = start + 1
            stride = 1
        elif end_mask >> i & 1:
            stop = dim if stride > 0 else -1
        else:
            stop = e + dim if e < 0 else e
            stop = min(max(stop, 0), dim) if stride > 0 else min(max(stop, -1), dim - 1)
        ranges.append((start, stop, stride))
        if stride > 0:
            n = max(0, -(-(stop - start) // stride))
        else:
            n = max(0, -(-(start - stop) // -stride))
        if not shrink:
            out_shape.append(n)
    del n_given
    return ranges, tuple(out_shape)


def resize_shape(shape, size) -> list[int]:
    """Output shape of RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR: NHWC with H, W = size."""
    return [int(shape[0]), int(size[0]), int(size[1]), int(shape[3])]


def split_sizes(dim: int, size_splits) -> list[int] | None:
    """SPLIT_V's part sizes along a dimension of `dim`: at most one -1, which takes the rest; None
    if they do not add up."""
    sizes = [int(s) for s in size_splits]
    if sizes.count(-1) > 1 or any(s < -1 for s in sizes):
        return None
    if -1 in sizes:
        rest = dim - sum(s for s in sizes if s != -1)
        if rest < 0:
            return None
        sizes[sizes.index(-1)] = rest
    return sizes if sum(sizes) == dim else None


def pack_shape(shape, axis: int, count: int) -> list[int]:
    """PACK's output: `count` tensors of `shape` stacked on a new axis (0 <= axis <= rank)."""
    return [int(d) for d in shape[:axis]] + [int(count)] + [int(d) for d in shape[axis:]]


def slice_ranges(shape, begin, size) -> list[tuple[int, int]] | None:
    """SLICE's (begin, length) per dimension; a size of -1 runs to the end. None if out of range."""
    ranges = []
    for dim, b, n in zip(shape, begin, size):
        b, n = int(b), int(n)
        n = dim - b if n == -1 else n
        if b < 0 or n < 0 or b + n > dim:
            return None
        ranges.append((b, n))
    return ranges if len(ranges) == len(shape) else None


def gather_shape(shape, indices_shape, axis: int, batch_dims: int) -> list[int]:
    """GATHER's output: params' dimensions before the axis, the indices' after the batch dimensions,
    params' after the axis (axis, batch_dims non-negative)."""
    return [int(d) for d in (*shape[:axis], *indices_shape[batch_dims:], *shape[axis + 1:])]


def gather_nd_shape(shape, indices_shape) -> list[int]:
    """GATHER_ND's output: the indices' leading dimensions, then params' beyond the indexed ones."""
    return [int(d) for d in (*indices_shape[:-1], *shape[indices_shape[-1]:])]


def tile_shape(shape, multiples) -> list[int]:
    return [int(d) * int(m) for d, m in zip(shape, multiples)]


def broadcast_to_shape(shape, target) -> list[int] | None:
    """BROADCAST_TO's output: `target`, if `shape` (aligned to its end) broadcasts to it, else None."""
    target = [int(d) for d in target]
    if len(shape) > len(target) or any(d < 1 for d in target):
        return None
    for d, t in zip(reversed(shape), reversed(target)):
        if d not in (1, t):
            return None
    return target


def space_to_depth_shape(shape, block: int, inverse: bool = False) -> list[int] | None:
    """NHWC output of SPACE_TO_DEPTH (or DEPTH_TO_SPACE if inverse); None if the blocks do not fit."""
    n, h, w, c = (int(d) for d in shape)
    if inverse:
        return None if c % (block * block) else [n, h * block, w * block, c // (block * block)]
    return None if h % block or w % block else [n, h // block, w // block, c * block * block]


def space_to_batch_shape(shape, block, paddings) -> list[int] | None:
    """SPACE_TO_BATCH_ND's output: batch times the block's product, padded spatial dimensions
    divided by the block (they must divide), the rest kept."""
    m = len(block)
    spatial = []
    for d, b, (lo, hi) in zip(shape[1:1 + m], block, paddings):
        if b < 1 or lo < 0 or hi < 0 or (d + lo + hi) % b:
            return None
        spatial.append((d + lo + hi) // b)
    return [int(shape[0]) * int(np.prod(block))] + spatial + [int(d) for d in shape[1 + m:]]


def batch_to_space_shape(shape, block, crops) -> list[int] | None:
    """BATCH_TO_SPACE_ND's output: batch divided by the block's product (it must divide), spatial
    dimensions times the block less the crops, the rest kept."""
    m = len(block)
    total = int(np.prod(block))
    if any(b < 1 for b in block) or shape[0] % total:
        return None
    spatial = []
    for d, b, (lo, hi) in zip(shape[1:1 + m], block, crops):
        if lo < 0 or hi < 0 or d * b - lo - hi < 1:
            return None
        spatial.append(d * b - lo - hi)
    return [int(shape[0]) // total] + spatial + [int(d) for d in shape[1 + m:]]
