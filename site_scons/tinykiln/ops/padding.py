"""PADV2 (a constant pad value) and MIRROR_PAD (REFLECT, SYMMETRIC), int8, float32, int32.

LiteRT's rules (facts checked against LiteRT in tests/kernels/test_ops_padding.py):
  PADV2       paddings [rank, 2] int32/int64, constant, >= 0, rank <= 5; constant_values a one-value
              tensor of the input's type (omitted: the output zero point, or 0). int8: the pad value's
              scale and zero point must be the output's (LiteRT refuses the model otherwise, and so
              does the importer); the input's codes are copied even if its quantization differs.
              The value reaches the kernel as a one-element const param: TVM prints float constants
              with 7 digits, which would not be the model's value.
  MIRROR_PAD  paddings as PADV2's, each at most the dimension (SYMMETRIC) or the dimension - 1
              (REFLECT); REFLECT mirrors around the edge element, SYMMETRIC repeats it. int8: the
              output's quantization must be the input's (LiteRT requires it).
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported

DTYPES = ("int8", "float32", "int32", "int64", "int16")
MODES = ("REFLECT", "SYMMETRIC")


# --------------------------------------------------------------------------- the importer's checks

def _paddings(v, t) -> list | None:
    rank = len(v.x.shape)
    if not v.constant(t, "paddings", ("int32", "int64")):
        return None
    if t.shape != (rank, 2):
        v.fail(f"paddings '{t.name}' has shape {list(t.shape)}, expected [{rank}, 2]")
        return None
    if (t.data < 0).any():
        v.fail(f"paddings '{t.name}' has negative values")
        return None
    if rank > 5:
        v.fail(f"input rank {rank} > 5 (LiteRT pads up to 5 dimensions)")
    pads = t.data.tolist()
    v.shape_is(v.y, [int(s + lo + hi) for s, (lo, hi) in zip(v.x.shape, pads)])
    return pads


def check_padv2(v) -> dict:
    if not v.need((2, 3)):
        return {}
    _paddings(v, v.inputs[1])
    value = v.input(2)
    if value is None:
        return {}
    if not v.constant(value, "constant_values", (v.x.dtype,)):
        return {}
    if value.data.size != 1:
        v.fail(f"constant_values '{value.name}' must hold one value, has shape {list(value.shape)}")
    if v.y.dtype in ("int8", "int16") and (value.quant is None or value.quant.scale[0] != v.y.quant.scale[0]
                                or value.quant.zero_point[0] != v.y.quant.zero_point[0]):
        v.fail(f"constant_values '{value.name}' is quantized differently from the output (LiteRT requires "
               "the same scale and zero point)")
    return {}


def check_mirror_pad(v) -> dict:
    code = int(v.options.get("mode", 0))
    if not 0 <= code < len(MODES):
        v.fail(f"unknown mirror pad mode {code}")
        return {}
    attrs = {"mode": MODES[code]}
    if not v.need((2, 2)):
        return attrs
    pads = _paddings(v, v.inputs[1])
    offset = 1 if attrs["mode"] == "REFLECT" else 0
    if pads is not None and any(p > d - offset for d, pair in zip(v.x.shape, pads) for p in pair):
        v.fail(f"paddings {pads} exceed {list(v.x.shape)} less {offset} ({attrs['mode']}: LiteRT refuses it)")
    if v.x.dtype in ("int8", "int16") and v.x.quant != v.y.quant:
        v.fail(f"{v.x.dtype} output '{v.y.name}' is quantized differently from the input (LiteRT requires the same)")
    return attrs


# --------------------------------------------------------------------------- numpy models

def reference_padv2(x: np.ndarray, pads, value) -> np.ndarray:
    return np.pad(x, [tuple(p) for p in pads], constant_values=value)


def reference_mirror_pad(x: np.ndarray, pads, mode: str) -> np.ndarray:
    return np.pad(x, [tuple(p) for p in pads], mode="reflect" if mode == "REFLECT" else "symmetric")


# --------------------------------------------------------------------------- lowering

def _io(ctx, op):
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if x.dtype != y.dtype or x.dtype not in DTYPES:
        raise unsupported(op, f"{x.dtype} -> {y.dtype} ({', '.join(DTYPES)}, the same)")
    pads = np.asarray(constant(ctx, op.inputs[1], op, "paddings"), dtype=np.int64).reshape(-1, 2)
    out = [int(n + lo + hi) for n, (lo, hi) in zip(x.shape, pads)]
    if pads.shape[0] != len(x.shape) or (pads < 0).any() or out != list(y.shape):
        raise unsupported(op, f"paddings {pads.tolist()} do not pad {list(x.shape)} to {list(y.shape)}")
    return x, y, pads


def lower_padv2(ctx, op):
    x, y, pads = _io(ctx, op)
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        fill = constant(ctx, op.inputs[2], op, "constant_values").reshape(-1)[0].item()
    else:
        fill = quant_params(y, "output", op)[1] if y.dtype == "int8" else 0
    attrs = {"in_shape": list(x.shape), "before": pads[:, 0].tolist()}
    spec = ctx.spec("padv2", [param("input", x.dtype, x.shape, "input"), param("value", x.dtype, (1,), "const"),
                              param("output", y.dtype, y.shape, "output")], attrs)
    return [KernelCall(spec, op.index, [op.inputs[0], np.asarray([fill], x.dtype), op.outputs[0]])]


def lower_mirror_pad(ctx, op):
    x, y, pads = _io(ctx, op)
    if x.dtype in ("int8", "int16") and quant_params(x, "input", op) != quant_params(y, "output", op):
        raise unsupported(op, f"{x.dtype} input and output quantized differently (LiteRT requires the same)")
    attrs = {"in_shape": list(x.shape), "pads": pads.tolist(), "mode": op.attrs["mode"]}
    spec = ctx.spec("mirror_pad", [param("input", x.dtype, x.shape, "input"),
                                   param("output", y.dtype, y.shape, "output")], attrs)
    return [KernelCall(spec, op.index, [op.inputs[0], op.outputs[0]])]


# --------------------------------------------------------------------------- TE computes

def _padv2_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    value = te.placeholder((1,), spec.params[0].dtype, name="value")

    def pick(*o):
        inside = tirx.all(*[tirx.all(o[d] >= b, o[d] < b + n)
                            for d, (b, n) in enumerate(zip(a["before"], a["in_shape"]))])
        return tirx.if_then_else(inside, x[tuple(o[d] - b for d, b in enumerate(a["before"]))], value[0])

    return [x, value, te.compute(spec.params[2].shape, pick, name="output")]


def _mirror_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    offset = 1 if a["mode"] == "REFLECT" else 0

    def source(p, size, before, after):
        # left of the input: mirrored around index 0; right of it: around index size - 1
        # (REFLECT skips the edge element itself, SYMMETRIC repeats it)
        if before == after == 0:
            return p
        right = tirx.Select(p >= before + size, 2 * size - 1 - offset - (p - before), p - before)
        return tirx.Select(p < before, before - p - 1 + offset, right)

    def value(*o):
        return x[tuple(source(o[d], n, lo, hi) for d, (n, (lo, hi)) in enumerate(zip(a["in_shape"], a["pads"])))]

    return [x, te.compute(spec.params[1].shape, value, name="output")]


FAMILIES = {"padv2": KernelFamily(_padv2_compute), "mirror_pad": KernelFamily(_mirror_compute)}
