"""Blocks of space moved into depth or batch and back: SPACE_TO_DEPTH, DEPTH_TO_SPACE (NHWC, DCR
order as TFLite), SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND (3-D or 4-D input, M = rank - 2 spatial
dimensions); int8, float32, int32.

LiteRT's rules (facts checked against LiteRT in tests/kernels/test_ops_space_depth.py):
  SPACE_TO_DEPTH     out[n, h, w, (i b + j) C + c] = in[n, h b + i, w b + j, c]; H, W divisible by b.
  DEPTH_TO_SPACE     the inverse; C divisible by b * b.
  SPACE_TO_BATCH_ND  block_shape [M] and paddings [M, 2] constant; the padded spatial dimensions
                     divisible by the block; output batch index (block offset, row-major) * N + n;
                     padding reads as the output zero point (int8) or 0.
  BATCH_TO_SPACE_ND  block_shape [M] and crops [M, 2] constant; the batch divisible by the block's
                     product; the inverse mapping, with the crops removed.
int8 quantization: the two *_ND ops require the input's scale and zero point on the output (LiteRT
refuses the model otherwise, and so does the importer); SPACE_TO_DEPTH and DEPTH_TO_SPACE check
nothing and copy codes.
Schedules: the channel run stays innermost and whole (one contiguous copy per pixel); the loops that
the index arithmetic would divide are split so that every block offset is a loop variable.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported
from .rules import batch_to_space_shape, space_to_batch_shape, space_to_depth_shape

DTYPES = ("int8", "float32", "int32", "int64", "int16")


# --------------------------------------------------------------------------- the importer's checks

def _block_size(v) -> int | None:
    b = int(v.options.get("block_size", 0))
    if b < 1:
        v.fail(f"block_size {b} must be >= 1")
        return None
    return b


def check_space_to_depth(v) -> dict:
    if not v.need((1, 1)):
        return {}
    b = _block_size(v)
    if b is None or not v.rank(v.x, 4, "input"):
        return {}
    shape = space_to_depth_shape(v.x.shape, b, v.kind == "DEPTH_TO_SPACE")
    if shape is None:
        v.fail(f"input {list(v.x.shape)} does not divide into blocks of {b}")
        return {"block_size": b}
    v.shape_is(v.y, shape)
    return {"block_size": b}


def _same_quant(v) -> None:
    if v.x.dtype in ("int8", "int16") and v.x.quant != v.y.quant:
        v.fail(f"{v.x.dtype} output '{v.y.name}' is quantized differently from the input (LiteRT requires the same)")


def check_space_batch(v) -> dict:
    if not v.need((3, 3)):
        return {}
    x, block_t, pads_t = v.inputs
    if not v.rank(x, (3, 4), "input"):
        return {}
    m = len(x.shape) - 2
    role = "paddings" if v.kind == "SPACE_TO_BATCH_ND" else "crops"
    if not v.constant(block_t, "block_shape", ("int32",)) or not v.constant(pads_t, role, ("int32", "int64")):
        return {}
    if block_t.shape != (m,) or pads_t.shape != (m, 2):
        v.fail(f"block_shape {list(block_t.shape)} and {role} {list(pads_t.shape)} must be [{m}] and [{m}, 2]")
        return {}
    block, pads = block_t.data.tolist(), pads_t.data.tolist()
    rule = space_to_batch_shape if v.kind == "SPACE_TO_BATCH_ND" else batch_to_space_shape
    shape = rule(x.shape, block, pads)
    if shape is None:
        v.fail(f"block_shape {block} and {role} {pads} do not fit input {list(x.shape)}")
        return {}
    v.shape_is(v.y, shape)
    _same_quant(v)
    return {}


# --------------------------------------------------------------------------- numpy models

def reference_space_to_depth(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // b, w // b, b * b * c)


def reference_depth_to_space(x: np.ndarray, b: int) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, c // (b * b))


def reference_space_to_batch(x: np.ndarray, block, pads, fill) -> np.ndarray:
    m = len(block)
    padded = np.pad(x, [(0, 0), *[tuple(p) for p in pads], *[(0, 0)] * (x.ndim - 1 - m)], constant_values=fill)
    n, rest = x.shape[0], x.shape[1 + m:]
    split = [n] + [d for s, b in zip(padded.shape[1:1 + m], block) for d in (s // b, b)] + list(rest)
    order = [2 + 2 * i for i in range(m)] + [0] + [1 + 2 * i for i in range(m)] + list(range(1 + 2 * m, len(split)))
    out = padded.reshape(split).transpose(order)
    return out.reshape([n * int(np.prod(block))] + [s // b for s, b in zip(padded.shape[1:1 + m], block)] + list(rest))


def reference_batch_to_space(x: np.ndarray, block, crops) -> np.ndarray:
    m = len(block)
    n = x.shape[0] // int(np.prod(block))
    spatial, rest = x.shape[1:1 + m], x.shape[1 + m:]
    out = x.reshape(list(block) + [n] + list(spatial) + list(rest))
    order = [m] + [d for i in range(m) for d in (m + 1 + i, i)] + list(range(2 * m + 1, out.ndim))
    out = out.transpose(order).reshape([n] + [s * b for s, b in zip(spatial, block)] + list(rest))
    return out[(slice(None),) + tuple(slice(lo, out.shape[1 + i] - hi) for i, (lo, hi) in enumerate(crops))]


# --------------------------------------------------------------------------- lowering

def _io(ctx, op):
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if x.dtype != y.dtype or x.dtype not in DTYPES:
        raise unsupported(op, f"{x.dtype} -> {y.dtype} ({', '.join(DTYPES)}, the same)")
    return x, y, [param("input", x.dtype, x.shape, "input"), param("output", y.dtype, y.shape, "output")]


def lower_space_to_depth(ctx, op):
    x, y, params = _io(ctx, op)
    b = int(op.attrs["block_size"])
    inverse = op.kind == "DEPTH_TO_SPACE"
    if space_to_depth_shape(x.shape, b, inverse) != list(y.shape):
        raise unsupported(op, f"output {list(y.shape)} for input {list(x.shape)} and block {b}")
    family = "depth_to_space" if inverse else "space_to_depth"
    spec = ctx.spec(family, params, {"in_shape": list(x.shape), "block": b})
    return [KernelCall(spec, op.index, [op.inputs[0], op.outputs[0]])]


def lower_space_batch(ctx, op):
    x, y, params = _io(ctx, op)
    block = [int(b) for b in constant(ctx, op.inputs[1], op, "block_shape").reshape(-1)]
    pads = np.asarray(constant(ctx, op.inputs[2], op, "paddings")).reshape(-1, 2).astype(int).tolist()
    to_batch = op.kind == "SPACE_TO_BATCH_ND"
    rule = space_to_batch_shape if to_batch else batch_to_space_shape
    if rule(x.shape, block, pads) != list(y.shape):
        raise unsupported(op, f"output {list(y.shape)} for input {list(x.shape)}, block {block}, {pads}")
    if x.dtype in ("int8", "int16") and quant_params(x, "input", op) != quant_params(y, "output", op):
        raise unsupported(op, f"{x.dtype} input and output quantized differently (LiteRT requires the same)")
    attrs = {"in_shape": list(x.shape), "out_shape": list(y.shape), "block": block, "pads": pads}
    if to_batch:
        attrs["fill"] = quant_params(y, "output", op)[1] if y.dtype == "int8" else 0
    spec = ctx.spec("space_to_batch" if to_batch else "batch_to_space", params, attrs)
    return [KernelCall(spec, op.index, [op.inputs[0], op.outputs[0]])]


# --------------------------------------------------------------------------- TE computes, schedules

def _space_to_depth_compute(spec):
    from tvm import te

    n, h, w, c = spec.params[0].shape
    b = spec.attrs["block"]
    x = te.placeholder((n, h, w, c), spec.params[0].dtype, name="input")

    def value(i, r, s, d):
        block, ch = d // c, d % c
        return x[i, r * b + block // b, s * b + block % b, ch]

    return [x, te.compute(spec.params[1].shape, value, name="output")]


def _depth_to_space_compute(spec):
    from tvm import te

    b = spec.attrs["block"]
    x = te.placeholder(spec.params[0].shape, spec.params[0].dtype, name="input")
    c = spec.params[1].shape[3]

    def value(i, r, s, ch):
        return x[i, r // b, s // b, ((r % b) * b + s % b) * c + ch]

    return [x, te.compute(spec.params[1].shape, value, name="output")]


def _space_to_depth_schedule(sch, spec):
    """The depth loop split into (block row, block columns x channels): the inner loop is one run,
    contiguous in both tensors."""
    b = spec.attrs["block"]
    c = spec.params[0].shape[3]
    loops = sch.get_loops(sch.get_sblock("output"))
    sch.split(loops[3], [b, b * c])


def _depth_to_space_schedule(sch, spec):
    """Rows and columns split by the block, so the source pixel and its depth offset are loop
    variables; the channel run innermost."""
    b = spec.attrs["block"]
    loops = sch.get_loops(sch.get_sblock("output"))
    sch.split(loops[1], [None, b])
    sch.split(loops[2], [None, b])


def _block_offsets(index, block):
    """Row-major block offsets of a flat offset index."""
    shifts = []
    for size in reversed(block):
        shifts.append(index % size)
        index = index // size
    return shifts[::-1]


def _space_to_batch_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    n, m = a["in_shape"][0], len(a["block"])
    fill = tirx.const(a["fill"], spec.params[0].dtype)

    def value(b_out, *o):
        shifts = _block_offsets(b_out // n, a["block"])
        pos = [o[i] * a["block"][i] + shifts[i] - a["pads"][i][0] for i in range(m)]
        inside = tirx.all(*[tirx.all(p >= 0, p < a["in_shape"][1 + i]) for i, p in enumerate(pos)])
        return tirx.if_then_else(inside, x[(b_out % n, *pos, *o[m:])], fill)

    return [x, te.compute(tuple(a["out_shape"]), value, name="output")]


def _batch_to_space_compute(spec):
    from tvm import te

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    m = len(a["block"])

    def value(i, *o):
        pos = [o[d] + a["pads"][d][0] for d in range(m)]
        flat = 0
        for d in range(m):
            flat = flat * a["block"][d] + pos[d] % a["block"][d]
        return x[(flat * a["out_shape"][0] + i, *[p // b for p, b in zip(pos, a["block"])], *o[m:])]

    return [x, te.compute(tuple(a["out_shape"]), value, name="output")]


def _space_to_batch_schedule(sch, spec):
    """The batch loop split into (block offsets..., input batch): each offset a loop variable."""
    a = spec.attrs
    loops = sch.get_loops(sch.get_sblock("output"))
    factors = list(a["block"]) + [a["in_shape"][0]]
    if len(factors) > 1 and any(f > 1 for f in factors):
        sch.split(loops[0], factors)


FAMILIES = {
    "space_to_depth": KernelFamily(_space_to_depth_compute, _space_to_depth_schedule),
    "depth_to_space": KernelFamily(_depth_to_space_compute, _depth_to_space_schedule),
    "space_to_batch": KernelFamily(_space_to_batch_compute, _space_to_batch_schedule),
    "batch_to_space": KernelFamily(_batch_to_space_compute),
}
