"""Data movement: PAD, CONCATENATION, STRIDED_SLICE, TRANSPOSE (int8 and float32 alike).

These copy values without arithmetic, so they are exact by construction; what matters is matching
LiteRT's rules, checked in tests/kernels/test_tflite_math.py and tests/kernels/test_ops_movement.py:
  PAD            fills with the output zero point (int8) or 0.0, and copies codes unchanged even if
                 the output quantization differs.
  CONCATENATION  int8 inputs must share the output's quantization and the fused activation must be
                 NONE (LiteRT refuses other models; so do we).
  STRIDED_SLICE  begin/end/strides constant; begin_mask, end_mask, shrink_axis_mask as in
                 ops/rules.strided_slice_ranges. ellipsis/new-axis masks and offset=True are not
                 supported, nor a shrunk axis with a negative stride (LiteRT leaves that output
                 uninitialised).
  TRANSPOSE      permutation constant.
No knobs: one loop nest over the output.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported
from .rules import strided_slice_ranges

_DTYPES = ("int8", "float32", "int16")  # int16: 16x8 quantization, codes copied as int8 ones


def _check_dtypes(op, *tensors):
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1 or not dtypes <= set(_DTYPES):
        raise unsupported(op, f"types {sorted(dtypes)} (int8, int16 or float32, all the same)")
    return dtypes.pop()


def lower_pad(ctx, op):
    x_index, pads_index, y_index = op.inputs[0], op.inputs[1], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    dtype = _check_dtypes(op, x, y)
    pads = np.asarray(constant(ctx, pads_index, op, "paddings"), dtype=np.int64).reshape(-1, 2)
    if pads.shape[0] != len(x.shape) or (pads < 0).any():
        raise unsupported(op, f"paddings {pads.tolist()} for an input of rank {len(x.shape)}")
    out_shape = [int(n + b + a) for n, (b, a) in zip(x.shape, pads)]
    if list(y.shape) != out_shape:
        raise unsupported(op, f"output shape {list(y.shape)}, paddings give {out_shape}")
    fill = quant_params(y, "output", op)[1] if dtype in ("int8", "int16") else 0
    attrs = {"in_shape": list(x.shape), "out_shape": out_shape, "before": pads[:, 0].tolist(), "fill": fill}
    spec = ctx.spec("pad", [param("input", dtype, x.shape, "input"),
                            param("output", dtype, out_shape, "output")], attrs)
    return [KernelCall(spec, op.index, [x_index, y_index])]


def lower_concatenation(ctx, op):
    ins = [i for i in op.inputs]
    y_index = op.outputs[0]
    tensors = [ctx.tensor(i) for i in ins]
    y = ctx.tensor(y_index)
    dtype = _check_dtypes(op, *tensors, y)
    if op.attrs.get("activation", "NONE") != "NONE":
        raise unsupported(op, "a fused activation on CONCATENATION (LiteRT rejects it too)")
    rank = len(y.shape)
    axis = int(op.attrs.get("axis", 0)) % rank
    if dtype in ("int8", "int16"):
        out_q = quant_params(y, "output", op)
        for t in tensors:
            if quant_params(t, "input", op) != out_q:
                raise unsupported(op, f"{dtype} input '{t.name}' quantized differently from the output "
                                      "(LiteRT requires one shared scale and zero point)")
    sizes = [int(t.shape[axis]) for t in tensors]
    for t in tensors:
        if len(t.shape) != rank or any(t.shape[d] != y.shape[d] for d in range(rank) if d != axis):
            raise unsupported(op, f"input shape {t.shape} does not fit output {y.shape} on axis {axis}")
    if sum(sizes) != y.shape[axis]:
        raise unsupported(op, f"inputs add up to {sum(sizes)} on axis {axis}, output has {y.shape[axis]}")
    attrs = {"out_shape": list(y.shape), "axis": axis, "sizes": sizes}
    params = [param(f"input{k}", dtype, t.shape, "input") for k, t in enumerate(tensors)]
    spec = ctx.spec("concat", params + [param("output", dtype, y.shape, "output")], attrs)
    return [KernelCall(spec, op.index, [*ins, y_index])]


def lower_strided_slice(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    dtype = _check_dtypes(op, x, y)
    begin, end, strides = (np.atleast_1d(constant(ctx, i, op, what)).astype(np.int64).tolist()
                           for i, what in zip(op.inputs[1:4], ("begin", "end", "strides")))
    a = op.attrs
    if a.get("ellipsis_mask") or a.get("new_axis_mask"):
        raise unsupported(op, "ellipsis_mask / new_axis_mask")
    if a.get("offset"):
        raise unsupported(op, "offset=True (end relative to begin)")
    shrink = int(a.get("shrink_axis_mask", 0))
    if any(shrink >> d & 1 and s < 0 for d, s in enumerate(strides)):
        raise unsupported(op, "a shrunk axis with a negative stride (LiteRT's output is undefined)")
    if 0 in strides:
        raise unsupported(op, "a zero stride")
    ranges, out_shape = strided_slice_ranges(
        x.shape, begin, end, strides, begin_mask=int(a.get("begin_mask", 0)),
        end_mask=int(a.get("end_mask", 0)), shrink_axis_mask=shrink)
    if any(shrink >> d & 1 and not 0 <= r[0] < x.shape[d] for d, r in enumerate(ranges)):
        raise unsupported(op, "a shrunk axis whose begin is outside the input (LiteRT reads out of bounds)")
    if tuple(y.shape) != tuple(out_shape) or 0 in out_shape or not out_shape:
        raise unsupported(op, f"output shape {list(y.shape)}, the slice gives {list(out_shape)}")
    attrs = {"in_shape": list(x.shape), "out_shape": list(out_shape),
             "start": [r[0] for r in ranges], "stride": [r[2] for r in ranges],
             "kept": [d for d in range(len(x.shape)) if not shrink >> d & 1]}
    spec = ctx.spec("strided_slice", [param("input", dtype, x.shape, "input"),
                                      param("output", dtype, y.shape, "output")], attrs)
    return [KernelCall(spec, op.index, [x_index, y_index])]


def lower_transpose(ctx, op):
    x_index, perm_index, y_index = op.inputs[0], op.inputs[1], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    dtype = _check_dtypes(op, x, y)
    perm = np.atleast_1d(constant(ctx, perm_index, op, "permutation")).astype(np.int64)
    perm = [int(p) % len(x.shape) for p in perm]
    if sorted(perm) != list(range(len(x.shape))):
        raise unsupported(op, f"permutation {perm}")
    if [x.shape[p] for p in perm] != list(y.shape):
        raise unsupported(op, f"output shape {y.shape} is not the input {x.shape} permuted by {perm}")
    spec = ctx.spec("transpose", [param("input", dtype, x.shape, "input"),
                                  param("output", dtype, y.shape, "output")],
                    {"in_shape": list(x.shape), "perm": perm})
    return [KernelCall(spec, op.index, [x_index, y_index])]


# --------------------------------------------------------------------------- TE computes

def _pad_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    dtype = spec.params[0].dtype
    x = te.placeholder(tuple(a["in_shape"]), dtype, name="input")
    fill = tirx.const(a["fill"], dtype)

    def value(*o):
        inside = tirx.all(*[tirx.all(o[d] >= b, o[d] < b + n)
                            for d, (b, n) in enumerate(zip(a["before"], a["in_shape"]))])
        return tirx.if_then_else(inside, x[tuple(o[d] - b for d, b in enumerate(a["before"]))], fill)

    return [x, te.compute(tuple(a["out_shape"]), value, name="output")]


def _concat_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    axis, sizes = a["axis"], a["sizes"]
    inputs = [te.placeholder(p.shape, p.dtype, name=p.name) for p in spec.params[:-1]]

    def value(*o):
        # the last input is the fallback; earlier ones are chosen by the axis coordinate
        offsets = np.cumsum([0] + sizes).tolist()
        k = len(inputs) - 1
        result = inputs[k][tuple(o[d] - offsets[k] if d == axis else o[d] for d in range(len(o)))]
        for k in range(len(inputs) - 2, -1, -1):
            idx = tuple(o[d] - offsets[k] if d == axis else o[d] for d in range(len(o)))
            result = tirx.if_then_else(o[axis] < offsets[k + 1], inputs[k][idx], result)
        return result

    return [*inputs, te.compute(tuple(a["out_shape"]), value, name="output")]


def _strided_slice_compute(spec):
    from tvm import te

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    kept = a["kept"]

    def value(*o):
        # o indexes the output (shrunk axes removed); a shrunk axis reads its start
        position = [0] * len(a["in_shape"])
        for k, d in enumerate(kept):
            position[d] = o[k]
        return x[tuple(a["start"][d] + position[d] * a["stride"][d] for d in range(len(position)))]

    return [x, te.compute(tuple(a["out_shape"]), value, name="output")]


def _transpose_compute(spec):
    from tvm import te

    a = spec.attrs
    perm = a["perm"]
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    out_shape = tuple(a["in_shape"][p] for p in perm)

    def value(*o):
        idx = [None] * len(perm)
        for k, p in enumerate(perm):
            idx[p] = o[k]
        return x[tuple(idx)]

    return [x, te.compute(out_shape, value, name="output")]


FAMILIES = {
    "pad": KernelFamily(_pad_compute),
    "concat": KernelFamily(_concat_compute),
    "strided_slice": KernelFamily(_strided_slice_compute),
    "transpose": KernelFamily(_transpose_compute),
}
