"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR (NHWC, int8 / float32; nearest also int32, bool), both corner
modes (align_corners, half_pixel_centers; not both at once, which LiteRT refuses).

LiteRT's arithmetic (tensorflow/lite/kernels/internal/reference/resize_*.h), stated as facts:
  nearest   in = min(floor((o + off) * scale), size - 1), or round-half-away instead of floor when
            align_corners; max(in, 0) when half_pixel_centers. float32 arithmetic; scale =
            in / out, or (in - 1) / (out - 1) when align_corners and out > 1; off = 0.5 when
            half_pixel_centers. Codes are copied: int8 keeps the input's codes whatever the output
            quantization says (LiteRT checks none, and neither do we).
  bilinear  float32: per output row, y = o * scale (half pixel: (o + 0.5) * scale - 0.5),
            y0 = max(floor(y), 0), y1 = min(ceil(y), size - 1), dy = y - y0; the value is
            x00 (1-dy)(1-dx) + x10 dy (1-dx) + x01 (1-dy) dx + x11 dy dx in that order.
            int8: the same in 10-bit fixed point without floats: scale_10 = (1024 in + out/2) / out
            (align corners: (1024 (in-1) + (out-1)/2) / (out-1)), y = o scale_10 (half pixel:
            + scale_10/2 - 512), y0 = max(y / 1024, 0), y1 = min((y + 1023) / 1024, size - 1)
            (C division), weights 1024 - (y - 1024 y0) and y - 1024 y0; the 20-bit sum is
            rounded half away from zero and cast to int8. Codes in, codes out, as for nearest.
            LiteRT leaves y0 unbounded above: where the rounded scale overshoots (large odd
            upscales) it reads past the input's edge; the kernel reads the edge pixel and the
            build warns (int_taps_overrun).
            uint8 (a uint8 graph mapped onto int8 at import, Tensor.from_uint8): LiteRT ran its uint8
            kernel, the float32 blend of the codes plus 0.5, truncated: so does the kernel, on the
            int8 codes + 128 (the integer blend differs from it by one in about 1.5 % of values).
The per-row and per-column source indices and weights depend only on the shapes and modes: they are
computed here at build time (numpy, in LiteRT's float32 / integer steps) and passed to the kernel as
small const tables, so the kernel itself is a gather (nearest) or a 4-tap blend (bilinear) over
contiguous channel runs. The int8 blend accumulates in int32 when the weights prove it cannot
overflow (always, for int8 codes and sane sizes), else in int64 as LiteRT does.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, unsupported
from .rules import resize_shape

_ONE = 1 << 10  # the integer bilinear's fixed-point 1.0


# --------------------------------------------------------------------------- the importer's check

def check_resize(v) -> dict:
    attrs = {"align_corners": bool(v.options.get("align_corners", False)),
             "half_pixel_centers": bool(v.options.get("half_pixel_centers", False))}
    if not v.need((2, 2)):
        return attrs
    x, size = v.inputs
    if attrs["align_corners"] and attrs["half_pixel_centers"]:
        v.fail("align_corners and half_pixel_centers are both set (LiteRT refuses it)")
    if not v.rank(x, 4, "input"):
        return attrs
    if size.shape != (2,) or size.dtype != "int32":
        v.fail(f"size '{size.name}' must be an int32 tensor of shape [2], is {size.dtype} {list(size.shape)}")
        return attrs
    if not size.is_constant:
        v.fail(f"size '{size.name}' is computed at run time (a dynamic shape)")
        return attrs
    if (size.data < 1).any():
        v.fail(f"size {size.data.tolist()} must be positive")
        return attrs
    v.shape_is(v.y, resize_shape(x.shape, size.data.tolist()))
    return attrs


# --------------------------------------------------------------------------- build-time tables

def _scale(size: int, out: int, align_corners: bool) -> np.float32:
    if align_corners and out > 1:
        return np.float32(size - 1) / np.float32(out - 1)
    return np.float32(size) / np.float32(out)


def nearest_indices(size: int, out: int, align_corners: bool, half_pixel_centers: bool) -> np.ndarray:
    """Source index of each output index along one axis (LiteRT's GetNearestNeighbor)."""
    scale = _scale(size, out, align_corners)
    offset = np.float32(0.5 if half_pixel_centers else 0.0)
    pos = (np.arange(out, dtype=np.float32) + offset) * scale  # float32 steps, as LiteRT
    if align_corners:
        # std::round (half away from zero) of the float32 value: + 0.5 in float64 is exact, in
        # float32 it would round 0.49999997 up
        index = np.sign(pos) * np.floor(np.abs(pos).astype(np.float64) + 0.5)
    else:
        index = np.floor(pos)
    index = np.minimum(index.astype(np.int64), size - 1)
    if half_pixel_centers:
        index = np.maximum(index, 0)
    return index.astype(np.int32)


def bilinear_float_taps(size: int, out: int, align_corners: bool, half_pixel_centers: bool):
    """(indices [2, out] int32: lower and upper source index, weights [2, out] float32: 1 - d, d)
    along one axis, in LiteRT's float32 steps (ComputeInterpolationValues)."""
    scale = _scale(size, out, align_corners)
    o = np.arange(out, dtype=np.float32)
    pos = (o + np.float32(0.5)) * scale - np.float32(0.5) if half_pixel_centers else o * scale
    lower = np.maximum(np.floor(pos).astype(np.int64), 0)
    upper = np.minimum(np.ceil(pos).astype(np.int64), size - 1)
    d = (pos - lower.astype(np.float32)).astype(np.float32)
    weights = np.stack([(np.float32(1) - d).astype(np.float32), d])
    return np.stack([lower, upper]).astype(np.int32), weights


def bilinear_int_taps(size: int, out: int, align_corners: bool, half_pixel_centers: bool):
    """(indices [2, out] int32, weights [2, out] int32: 1024 - d, d) along one axis, in LiteRT's
    integer steps (ComputeInterpolationValuesInteger; C division truncates toward zero)."""
    if align_corners and out > 1:
        scale = (_ONE * (size - 1) + (out - 1) // 2) // (out - 1)
    else:
        scale = (_ONE * size + out // 2) // out
    o = np.arange(out, dtype=np.int64)
    pos = o * scale + (scale // 2 - (1 << 9) if half_pixel_centers else 0)
    lower = np.maximum(_cdiv(pos, _ONE), 0)
    upper = np.minimum(_cdiv(pos + _ONE - 1, _ONE), size - 1)
    d = pos - _ONE * lower
    # LiteRT does not bound the lower index: where the rounded scale overshoots (large upscales by
    # odd factors) it reads one pixel past the edge, outside the row or the tensor. The kernel must
    # not: it reads the edge pixel there (int_taps_overrun tells the lowering, which warns).
    lower = np.minimum(lower, size - 1)
    return np.stack([lower, upper]).astype(np.int32), np.stack([_ONE - d, d]).astype(np.int32)


def int_taps_overrun(size: int, out: int, align_corners: bool, half_pixel_centers: bool) -> bool:
    """Whether LiteRT's integer bilinear reads past the input's edge along this axis."""
    scale = ((_ONE * (size - 1) + (out - 1) // 2) // (out - 1) if align_corners and out > 1
             else (_ONE * size + out // 2) // out)
    last = (out - 1) * scale + (scale // 2 - (1 << 9) if half_pixel_centers else 0)
    return last // _ONE > size - 1


def _cdiv(a, b):
    """C's integer division (truncation toward zero)."""
    q = np.abs(a) // b
    return np.where(a < 0, -q, q)


def _int_accumulator(rows_w: np.ndarray, cols_w: np.ndarray) -> str:
    """int32 suffices when 128 * the largest sum of |weight products| stays below 2^31."""
    bound = 128 * int(np.abs(rows_w).sum(axis=0).max()) * int(np.abs(cols_w).sum(axis=0).max())
    return "int32" if bound < 2 ** 31 else "int64"


# --------------------------------------------------------------------------- numpy models

def reference_resize(kind: str, x: np.ndarray, size, align_corners: bool, half_pixel_centers: bool,
                     from_uint8: bool = False) -> np.ndarray:
    """LiteRT's output of RESIZE_NEAREST_NEIGHBOR / RESIZE_BILINEAR on an NHWC array (from_uint8:
    int8 codes of a uint8 tensor, resized as LiteRT's uint8 kernel does)."""
    _, h, w, _ = x.shape
    oh, ow = (int(s) for s in size)
    modes = (align_corners, half_pixel_centers)
    if kind == "RESIZE_NEAREST_NEIGHBOR":
        return x[:, nearest_indices(h, oh, *modes)][:, :, nearest_indices(w, ow, *modes)]
    if x.dtype == np.int8 and from_uint8:
        blend = reference_resize(kind, x.astype(np.float32) + np.float32(128), size, *modes)
        return ((blend + np.float32(0.5)).astype(np.int32) - 128).astype(np.int8)
    if x.dtype == np.int8:
        (ri, rw), (ci, cw) = bilinear_int_taps(h, oh, *modes), bilinear_int_taps(w, ow, *modes)
        acc = np.zeros((x.shape[0], oh, ow, x.shape[3]), np.int64)
        for i in range(2):
            for j in range(2):
                tap = x[:, ri[i]][:, :, ci[j]].astype(np.int64)
                acc += tap * rw[i][None, :, None, None] * cw[j][None, None, :, None]
        rounded = np.where(acc > 0, acc + (1 << 19), acc - (1 << 19))
        return _cdiv(rounded, 1 << 20).astype(np.int8)
    (ri, rw), (ci, cw) = bilinear_float_taps(h, oh, *modes), bilinear_float_taps(w, ow, *modes)
    acc = None
    for j in range(2):  # LiteRT's order: (y0,x0), (y1,x0), (y0,x1), (y1,x1)
        for i in range(2):
            tap = x[:, ri[i]][:, :, ci[j]] * rw[i][None, :, None, None] * cw[j][None, None, :, None]
            acc = tap if acc is None else acc + tap
    return acc.astype(np.float32)


# --------------------------------------------------------------------------- lowering

def lower_resize(ctx, op):
    x_index, size_index, y_index = op.inputs[0], op.inputs[1], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    if x.dtype != y.dtype:
        raise unsupported(op, f"input {x.dtype} and output {y.dtype} differ")
    size = [int(s) for s in constant(ctx, size_index, op, "size").reshape(-1)]
    if list(y.shape) != resize_shape(x.shape, size):
        raise unsupported(op, f"output shape {list(y.shape)} is not the input {list(x.shape)} resized to {size}")
    modes = (bool(op.attrs.get("align_corners")), bool(op.attrs.get("half_pixel_centers")))
    _, h, w, _ = x.shape
    _, oh, ow, _ = y.shape
    io = [param("input", x.dtype, x.shape, "input")], [param("output", y.dtype, y.shape, "output")]
    attrs = {"in_shape": list(x.shape), "out_shape": list(y.shape)}
    if op.kind == "RESIZE_NEAREST_NEIGHBOR":
        rows, cols = nearest_indices(h, oh, *modes), nearest_indices(w, ow, *modes)
        tables = [param("rows", "int32", rows.shape, "const"), param("cols", "int32", cols.shape, "const")]
        spec = ctx.spec("resize_nearest", io[0] + tables + io[1], attrs)
        return [KernelCall(spec, op.index, [x_index, rows, cols, y_index])]
    # (Tensor.from_uint8 comes with the uint8 import; a graph without it has no uint8 tensors)
    uint8 = x.dtype == "int8" and getattr(x, "from_uint8", False)
    if x.dtype == "int8" and not uint8:
        (ri, rw), (ci, cw) = bilinear_int_taps(h, oh, *modes), bilinear_int_taps(w, ow, *modes)
        attrs["acc"] = _int_accumulator(rw, cw)
        if int_taps_overrun(h, oh, *modes) or int_taps_overrun(w, ow, *modes):
            ctx.warnings.append(
                f"op {op.index} (RESIZE_BILINEAR {h}x{w} -> {oh}x{ow}, int8): LiteRT's kernel reads past the "
                "input's edge for this size, so its last rows or columns are undefined; the kernel reads "
                "the edge pixel there instead (validation against LiteRT may differ at those values)")
    elif x.dtype in ("int8", "float32"):
        (ri, rw), (ci, cw) = bilinear_float_taps(h, oh, *modes), bilinear_float_taps(w, ow, *modes)
    else:
        raise unsupported(op, f"type {x.dtype} (int8 or float32)")
    wtype = "int32" if "acc" in attrs else "float32"
    tables = [param("row_index", "int32", ri.shape, "const"), param("row_weight", wtype, rw.shape, "const"),
              param("col_index", "int32", ci.shape, "const"), param("col_weight", wtype, cw.shape, "const")]
    family = "resize_bilinear_uint8" if uint8 else f"resize_bilinear_{x.dtype}"
    spec = ctx.spec(family, io[0] + tables + io[1], attrs)
    return [KernelCall(spec, op.index, [x_index, ri, rw, ci, cw, y_index])]


# --------------------------------------------------------------------------- TE computes

def _nearest_compute(spec):
    from tvm import te

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    rows = te.placeholder(spec.params[1].shape, "int32", name="rows")
    cols = te.placeholder(spec.params[2].shape, "int32", name="cols")
    y = te.compute(tuple(a["out_shape"]), lambda b, r, s, c: x[b, rows[r], cols[s], c], name="output")
    return [x, rows, cols, y]


def _bilinear_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    dtype = spec.params[0].dtype
    wtype = spec.params[2].dtype
    x = te.placeholder(tuple(a["in_shape"]), dtype, name="input")
    ri = te.placeholder(spec.params[1].shape, "int32", name="row_index")
    rw = te.placeholder(spec.params[2].shape, wtype, name="row_weight")
    ci = te.placeholder(spec.params[3].shape, "int32", name="col_index")
    cw = te.placeholder(spec.params[4].shape, wtype, name="col_weight")
    acc = a.get("acc", "float32")
    uint8 = spec.family == "resize_bilinear_uint8"

    def code(b, r, s, c):
        v = x[b, r, s, c].astype(acc)
        return v + tirx.const(128, acc) if uint8 else v

    def value(b, r, s, c):
        total = None
        for j in range(2):  # LiteRT's order of the four taps (it matters for float32)
            for i in range(2):
                tap = code(b, ri[i, r], ci[j, s], c) * rw[i, r].astype(acc) * cw[j, s].astype(acc)
                total = tap if total is None else total + tap
        if dtype == "float32":
            return total
        if uint8:  # LiteRT's uint8 kernel: + 0.5, truncated
            return ((total + tirx.const(0.5, acc)).astype("int32") - 128).astype(dtype)
        # (total +- 2^19) / 2^20 in C (half away from zero) without a branch: the floor of
        # (total + 2^19 - 1 + [total > 0]) / 2^20, an arithmetic shift
        v = tirx.Var("sum", acc)
        up = (v > tirx.const(0, acc)).astype(acc)
        return tirx.Let(v, total, ((v + tirx.const((1 << 19) - 1, acc) + up) >> 20).astype(dtype))

    y = te.compute(tuple(a["out_shape"]), value, name="output")
    return [x, ri, rw, ci, cw, y]


def _schedule(sch, spec):
    """The channel loop innermost and whole (a contiguous run per output pixel); batch and rows fused
    into one outer loop."""
    block = sch.get_sblock("output")
    b, r, _, _ = sch.get_loops(block)
    if spec.attrs["out_shape"][0] > 1:
        sch.fuse(b, r)


FAMILIES = {
    "resize_nearest": KernelFamily(_nearest_compute, _schedule),
    "resize_bilinear_int8": KernelFamily(_bilinear_compute, _schedule),
    "resize_bilinear_float32": KernelFamily(_bilinear_compute, _schedule),
    "resize_bilinear_uint8": KernelFamily(_bilinear_compute, _schedule),
}
