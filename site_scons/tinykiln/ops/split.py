"""Split and join along one axis: SPLIT, SPLIT_V, UNPACK (one input, several outputs), PACK (several
inputs, one output) and SLICE (int8, float32, int32 alike; bool for UNPACK and SLICE, as LiteRT).

These copy codes without arithmetic, so they are exact by construction; LiteRT's rules (facts
checked against LiteRT in tests/kernels/test_ops_split.py):
  SPLIT      inputs (axis, value): the axis a constant scalar, num_splits equal parts.
  SPLIT_V    inputs (value, size_splits, axis): size_splits constant, at most one -1 (the rest).
  UNPACK     num outputs, one per index of the axis, the axis removed.
  PACK       values_count inputs of one shape, stacked on a new axis (-rank-1 <= axis <= rank).
  SLICE      begin and size constant (int32 or int64), size -1 meaning "to the end"; rank <= 5.
int8 quantization: PACK and UNPACK require every input and output to share one scale and zero point
(LiteRT refuses the model otherwise, and so does the importer); SPLIT, SPLIT_V and SLICE check
nothing and copy codes, so an output quantized differently gets the input's codes, as in LiteRT.

A kernel with several outputs is one C function with one pointer per output (one TE compute each,
in the order of the op's outputs): the memory plan gives each output its own arena slot, AOT passes
them in order. The schedules make every copy a run as long as the layout allows: the loops over the
dimensions that stay contiguous in both tensors are fused into one, so an output is a few memcpy-like
loops; PACK's select over its inputs is partitioned away into one copy loop per input.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, quant_params, unsupported
from .copy_loops import contiguous_run, fuse_groups
from .rules import pack_shape, slice_ranges, split_sizes

DTYPES = ("int8", "float32", "int32", "bool", "int64", "int16")  # bool: UNPACK and SLICE (the registry says which)


# --------------------------------------------------------------------------- the importer's checks

def _axis(v, axis: int, rank: int) -> int | None:
    if not -rank <= axis < rank:
        v.fail(f"axis {axis} out of range for rank {rank}")
        return None
    return axis % rank


def _scalar_axis(v, t) -> int | None:
    if not v.constant(t, "axis", ("int32",)):
        return None
    if t.data.size != 1:
        v.fail(f"axis '{t.name}' must hold one value, has shape {list(t.shape)}")
        return None
    return int(t.data.reshape(-1)[0])


def _outputs_are(v, shapes) -> None:
    for y, shape in zip(v.outputs, shapes):
        v.shape_is(y, shape)


def _same_quant(v, tensors) -> None:
    """PACK / UNPACK: LiteRT refuses int8 tensors quantized unlike the output (or the input)."""
    ref = v.y if v.kind == "PACK" else v.x
    for t in tensors:
        if t.dtype in ("int8", "int16") and t.quant != ref.quant:
            v.fail(f"{t.dtype} '{t.name}' is quantized differently from '{ref.name}' (LiteRT requires one "
                   "scale and zero point throughout)")
            return


def check_split(v) -> dict:
    count = int(v.options.get("num_splits", 0))
    attrs = {"num_splits": count}
    if count < 1 or not v.need((2, 2), count):
        if count < 1:
            v.fail(f"num_splits {count} must be >= 1")
        return attrs
    axis_t, x = v.inputs
    axis = _scalar_axis(v, axis_t)
    if axis is None or (axis := _axis(v, axis, len(x.shape))) is None:
        return attrs
    if x.shape[axis] % count:
        v.fail(f"dimension {axis} of {list(x.shape)} does not split into {count} equal parts")
        return attrs
    attrs["axis"] = axis
    _outputs_are(v, [_replace(x.shape, axis, x.shape[axis] // count)] * count)
    return attrs


def check_split_v(v) -> dict:
    count = int(v.options.get("num_splits", 0))
    attrs = {"num_splits": count}
    if count < 1 or not v.need((3, 3), count):
        if count < 1:
            v.fail(f"num_splits {count} must be >= 1")
        return attrs
    x, sizes_t, axis_t = v.inputs
    axis = _scalar_axis(v, axis_t)
    if axis is None or (axis := _axis(v, axis, len(x.shape))) is None:
        return attrs
    if not v.constant(sizes_t, "size_splits", ("int32", "int64")):
        return attrs
    sizes = split_sizes(x.shape[axis], sizes_t.data.reshape(-1).tolist())
    if sizes is None or len(sizes) != count:
        v.fail(f"size_splits {sizes_t.data.reshape(-1).tolist()} do not split dimension {axis} of "
               f"{list(x.shape)} into {count} parts")
        return attrs
    attrs.update(axis=axis, sizes=sizes)
    _outputs_are(v, [_replace(x.shape, axis, s) for s in sizes])
    return attrs


def check_unpack(v) -> dict:
    count = int(v.options.get("num", 0))
    attrs = {"num": count}
    if count < 1 or not v.need((1, 1), count):
        if count < 1:
            v.fail(f"num {count} must be >= 1")
        return attrs
    x = v.x
    axis = _axis(v, int(v.options.get("axis", 0)), len(x.shape))
    if axis is None:
        return attrs
    if x.shape[axis] != count:
        v.fail(f"num {count} is not dimension {axis} of {list(x.shape)}")
        return attrs
    attrs["axis"] = axis
    _outputs_are(v, [x.shape[:axis] + x.shape[axis + 1:]] * count)
    _same_quant(v, v.outputs)
    return attrs


def check_pack(v) -> dict:
    count = int(v.options.get("values_count", 0))
    attrs = {"values_count": count}
    if count < 1 or not v.need((count, count)):
        if count < 1:
            v.fail(f"values_count {count} must be >= 1")
        return attrs
    x = v.x
    for t in v.inputs:
        if t.shape != x.shape:
            v.fail(f"input '{t.name}' {list(t.shape)} differs from '{x.name}' {list(x.shape)}")
            return attrs
    rank = len(x.shape) + 1
    axis = _axis(v, int(v.options.get("axis", 0)), rank)
    if axis is None:
        return attrs
    attrs["axis"] = axis
    v.shape_is(v.y, pack_shape(x.shape, axis, count))
    _same_quant(v, v.inputs)
    return attrs


def check_slice(v) -> dict:
    if not v.need((3, 3)):
        return {}
    x, begin_t, size_t = v.inputs
    rank = len(x.shape)
    if rank > 5:
        v.fail(f"input rank {rank} > 5 (LiteRT's SLICE handles up to 5)")
    for t, role in ((begin_t, "begin"), (size_t, "size")):
        if not v.constant(t, role, ("int32", "int64")):
            return {}
        if t.shape != (rank,):
            v.fail(f"{role} '{t.name}' has shape {list(t.shape)}, expected [{rank}]")
            return {}
    ranges = slice_ranges(x.shape, begin_t.data.tolist(), size_t.data.tolist())
    if ranges is None:
        v.fail(f"begin {begin_t.data.tolist()} and size {size_t.data.tolist()} do not fit {list(x.shape)}")
        return {}
    v.shape_is(v.y, [n for _, n in ranges])
    return {}


def _replace(shape, axis, value):
    return tuple(shape[:axis]) + (int(value),) + tuple(shape[axis + 1:])


# --------------------------------------------------------------------------- numpy models

def reference(kind: str, inputs, attrs) -> list[np.ndarray]:
    """LiteRT's outputs of the op (inputs in the op's order, constant operands as arrays)."""
    if kind == "SPLIT":
        return np.split(inputs[1], attrs["num_splits"], axis=attrs["axis"])
    if kind == "SPLIT_V":
        return np.split(inputs[0], np.cumsum(attrs["sizes"])[:-1], axis=attrs["axis"])
    if kind == "UNPACK":
        return [np.take(inputs[0], k, axis=attrs["axis"]) for k in range(attrs["num"])]
    if kind == "PACK":
        return [np.stack(inputs, axis=attrs["axis"])]
    if kind == "SLICE":
        x, begin, size = inputs
        ranges = slice_ranges(x.shape, np.asarray(begin).tolist(), np.asarray(size).tolist())
        return [x[tuple(slice(b, b + n) for b, n in ranges)]]
    raise ValueError(kind)


# --------------------------------------------------------------------------- lowering

def _dtype(op, tensors) -> str:
    dtypes = {t.dtype for t in tensors}
    if len(dtypes) != 1 or not dtypes <= set(DTYPES):
        raise unsupported(op, f"types {sorted(dtypes)} ({', '.join(DTYPES)}, all the same)")
    return dtypes.pop()


def _pieces_call(ctx, op, x_index, out_indices, axis, sizes, keep_axis=True):
    """One kernel copying consecutive pieces of `sizes` along `axis` of the input to the outputs."""
    x = ctx.tensor(x_index)
    ys = [ctx.tensor(i) for i in out_indices]
    dtype = _dtype(op, [x, *ys])
    if sum(sizes) != x.shape[axis]:
        raise unsupported(op, f"pieces {sizes} do not add up to dimension {axis} of {list(x.shape)}")
    for y, n in zip(ys, sizes):
        want = _replace(x.shape, axis, n) if keep_axis else tuple(x.shape[:axis]) + tuple(x.shape[axis + 1:])
        if tuple(y.shape) != want:
            raise unsupported(op, f"output '{y.name}' {list(y.shape)} is not the piece {list(want)}")
    attrs = {"in_shape": list(x.shape), "axis": axis, "sizes": list(sizes), "keep_axis": keep_axis}
    params = [param("input", dtype, x.shape, "input")]
    params += [param(f"output{k}", dtype, y.shape, "output") for k, y in enumerate(ys)]
    spec = ctx.spec("split", params, attrs)
    return [KernelCall(spec, op.index, [x_index, *out_indices])]


def lower_split(ctx, op):
    a = op.attrs
    x_index = op.inputs[1] if op.kind == "SPLIT" else op.inputs[0]
    dim = ctx.tensor(x_index).shape[a["axis"]]
    sizes = a["sizes"] if op.kind == "SPLIT_V" else [dim // a["num_splits"]] * a["num_splits"]
    return _pieces_call(ctx, op, x_index, op.outputs, a["axis"], sizes)


def lower_unpack(ctx, op):
    x = ctx.tensor(op.inputs[0])
    _check_same_quant(op, [x] + [ctx.tensor(i) for i in op.outputs])
    return _pieces_call(ctx, op, op.inputs[0], op.outputs, op.attrs["axis"], [1] * x.shape[op.attrs["axis"]],
                        keep_axis=False)


def lower_pack(ctx, op):
    xs = [ctx.tensor(i) for i in op.inputs]
    y = ctx.tensor(op.outputs[0])
    dtype = _dtype(op, [*xs, y])
    _check_same_quant(op, [y, *xs])
    axis = op.attrs["axis"]
    if any(t.shape != xs[0].shape for t in xs) or list(y.shape) != pack_shape(xs[0].shape, axis, len(xs)):
        raise unsupported(op, f"output {list(y.shape)} is not {len(xs)} inputs {list(xs[0].shape)} stacked")
    params = [param(f"input{k}", dtype, t.shape, "input") for k, t in enumerate(xs)]
    spec = ctx.spec("pack", params + [param("output", dtype, y.shape, "output")],
                    {"in_shape": list(xs[0].shape), "axis": axis, "count": len(xs)})
    return [KernelCall(spec, op.index, [*op.inputs, op.outputs[0]])]


def lower_slice(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    dtype = _dtype(op, [x, y])
    begin, size = (np.asarray(constant(ctx, i, op, what)).reshape(-1).tolist()
                   for i, what in zip(op.inputs[1:], ("begin", "size")))
    ranges = slice_ranges(x.shape, begin, size)
    if ranges is None or [n for _, n in ranges] != list(y.shape):
        raise unsupported(op, f"begin {begin} size {size} of {list(x.shape)} do not give {list(y.shape)}")
    spec = ctx.spec("slice", [param("input", dtype, x.shape, "input"), param("output", dtype, y.shape, "output")],
                    {"in_shape": list(x.shape), "begin": [b for b, _ in ranges]})
    return [KernelCall(spec, op.index, [x_index, y_index])]


def _check_same_quant(op, tensors):
    if tensors[0].dtype not in ("int8", "int16"):
        return
    ref = quant_params(tensors[0], "tensor", op)
    for t in tensors[1:]:
        if quant_params(t, "tensor", op) != ref:
            raise unsupported(op, f"int8 '{t.name}' quantized differently (LiteRT requires one quantization)")


# --------------------------------------------------------------------------- TE computes, schedules

def _split_compute(spec):
    from tvm import te

    a = spec.attrs
    axis = a["axis"]
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    def piece(start):
        def value(*o):
            if a["keep_axis"]:
                return x[tuple(o[d] + start if d == axis else o[d] for d in range(len(o)))]
            return x[tuple(o[:axis]) + (start,) + tuple(o[axis:])]
        return value

    starts = np.cumsum([0] + a["sizes"]).tolist()
    outs = [te.compute(p.shape, piece(start), name=f"output{k}")
            for k, (p, start) in enumerate(zip(spec.params[1:], starts))]
    return [x, *outs]


def _split_schedule(sch, spec):
    a = spec.attrs
    axis = a["axis"]
    for k in range(len(a["sizes"])):
        block = sch.get_sblock(f"output{k}")
        loops = sch.get_loops(block)
        # everything from the axis on is one contiguous run in the input and the output: one loop
        fuse_groups(sch, [loops[:axis], loops[axis:]])


def _pack_compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    axis, count = a["axis"], a["count"]
    xs = [te.placeholder(tuple(a["in_shape"]), p.dtype, name=p.name) for p in spec.params[:-1]]

    def value(*o):
        idx = tuple(o[:axis]) + tuple(o[axis + 1:])
        result = xs[-1][idx]
        for k in range(count - 2, -1, -1):
            result = tirx.if_then_else(o[axis] == k, xs[k][idx], result)
        return result

    return [*xs, te.compute(tuple(pack_shape(a["in_shape"], axis, count)), value, name="output")]


def _pack_schedule(sch, spec):
    """The input index outermost, partitioned into one loop nest per input (the select folds away),
    each a copy of the dimensions before the axis (fused) times the run after it (fused)."""
    a = spec.attrs
    axis, count = a["axis"], a["count"]
    block = sch.get_sblock("output")
    loops = sch.get_loops(block)
    outer, k, inner = loops[:axis], loops[axis], loops[axis + 1:]
    fused = fuse_groups(sch, [outer, inner])
    sch.reorder(k, *fused)
    if count > 1:
        sch.loop_partition(k, [1] * (count - 1) + [None])


def _slice_compute(spec):
    from tvm import te

    a = spec.attrs
    x = te.placeholder(tuple(a["in_shape"]), spec.params[0].dtype, name="input")
    y = te.compute(spec.params[1].shape, lambda *o: x[tuple(i + b for i, b in zip(o, a["begin"]))], name="output")
    return [x, y]


def _slice_schedule(sch, spec):
    loops = sch.get_loops(sch.get_sblock("output"))
    run = contiguous_run(spec.attrs["in_shape"], spec.params[1].shape)
    fuse_groups(sch, [loops[:run], loops[run:]])


FAMILIES = {
    "split": KernelFamily(_split_compute, _split_schedule),
    "pack": KernelFamily(_pack_compute, _pack_schedule),
    "slice": KernelFamily(_slice_compute, _slice_schedule),
}
