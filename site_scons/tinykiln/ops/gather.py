"""GATHER and GATHER_ND (values int8, float32, int32, bool; indices int32 or int64, constant or computed).

LiteRT's rules (facts checked against LiteRT in tests/kernels/test_ops_gather.py):
  GATHER     output = params.shape[:axis] + indices.shape[batch_dims:] + params.shape[axis+1:];
             axis and batch_dims may be negative (counted from the end of params / indices), the
             first batch_dims dimensions of params and indices must match, batch_dims <= axis.
  GATHER_ND  indices [..., K] (K <= rank of params): output = indices.shape[:-1] + params.shape[K:].
  Codes are copied: LiteRT checks no int8 quantization, neither do we.
  An index out of range makes LiteRT fail the run. A constant index out of range is refused at
  import; an index computed at run time is clamped into range by the kernel (it cannot report an
  error, and must never read outside the tensor), so there the output is defined where LiteRT's
  is an error.
Constant indices are a const param (weights.c), computed ones an input: the same kernel. The schedule
fuses the dimensions after the gathered one into one contiguous run per index.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, unsupported
from .rules import gather_nd_shape, gather_shape
from .copy_loops import fuse_groups

DTYPES = ("int8", "float32", "int32", "bool", "int64", "int16")
INDEX_TYPES = ("int32", "int64")


# --------------------------------------------------------------------------- the importer's checks

def _indices(v, t) -> bool:
    if t.dtype not in INDEX_TYPES:
        v.fail(f"indices '{t.name}' are {t.dtype}, expected {' or '.join(INDEX_TYPES)}")
        return False
    return True


def check_gather(v) -> dict:
    attrs = {"axis": int(v.options.get("axis", 0)), "batch_dims": int(v.options.get("batch_dims", 0))}
    if not v.need((2, 2)):
        return attrs
    x, idx = v.inputs
    if not _indices(v, idx):
        return attrs
    rank, irank = len(x.shape), len(idx.shape)
    axis, batch = attrs["axis"], attrs["batch_dims"]
    axis += rank if axis < 0 else 0
    batch += irank if batch < 0 else 0
    if not 0 <= axis < rank:
        v.fail(f"axis {attrs['axis']} out of range for rank {rank}")
        return attrs
    if not 0 <= batch <= min(axis, irank) or x.shape[:batch] != idx.shape[:batch]:
        v.fail(f"batch_dims {attrs['batch_dims']} does not fit params {list(x.shape)}, indices {list(idx.shape)} "
               f"and axis {axis}")
        return attrs
    attrs.update(axis=axis, batch_dims=batch)
    if idx.is_constant and ((idx.data < 0) | (idx.data >= x.shape[axis])).any():
        v.fail(f"indices '{idx.name}' hold values outside [0, {x.shape[axis]}) (LiteRT fails the run)")
    v.shape_is(v.y, gather_shape(x.shape, idx.shape, axis, batch))
    return attrs


def check_gather_nd(v) -> dict:
    if not v.need((2, 2)):
        return {}
    x, idx = v.inputs
    if not _indices(v, idx):
        return {}
    if len(idx.shape) < 1 or not 1 <= idx.shape[-1] <= len(x.shape):
        v.fail(f"indices '{idx.name}' {list(idx.shape)} do not index params {list(x.shape)}")
        return {}
    if idx.is_constant and ((idx.data < 0) | (idx.data >= np.asarray(x.shape[:idx.shape[-1]]))).any():
        v.fail(f"indices '{idx.name}' hold values outside params {list(x.shape)} (LiteRT fails the run)")
    v.shape_is(v.y, gather_nd_shape(x.shape, idx.shape))
    return {}


# --------------------------------------------------------------------------- numpy models

def reference_gather(x: np.ndarray, indices: np.ndarray, axis: int, batch_dims: int = 0) -> np.ndarray:
    """LiteRT's GATHER (axis and batch_dims already non-negative, indices in range)."""
    if batch_dims == 0:
        return np.take(x, indices, axis=axis)
    return np.stack([reference_gather(x[b], indices[b], axis - 1, batch_dims - 1) for b in range(x.shape[0])])


def reference_gather_nd(x: np.ndarray, indices: np.ndarray) -> np.ndarray:
    k = indices.shape[-1]
    flat = indices.reshape(-1, k)
    picked = np.stack([x[tuple(i)] for i in flat]) if len(flat) else np.zeros((0,) + x.shape[k:], x.dtype)
    return picked.reshape(indices.shape[:-1] + x.shape[k:])


# --------------------------------------------------------------------------- lowering

def _operands(ctx, op, indexed_dims):
    x_index, idx_index, y_index = op.inputs[0], op.inputs[1], op.outputs[0]
    x, idx, y = ctx.tensor(x_index), ctx.tensor(idx_index), ctx.tensor(y_index)
    if x.dtype != y.dtype or x.dtype not in DTYPES:
        raise unsupported(op, f"params {x.dtype} -> output {y.dtype} ({', '.join(DTYPES)}, the same)")
    if idx.dtype not in INDEX_TYPES:
        raise unsupported(op, f"indices of type {idx.dtype}")
    role = "const" if idx.is_constant else "input"
    params = [param("params", x.dtype, x.shape, "input"), param("indices", idx.dtype, idx.shape, role),
              param("output", y.dtype, y.shape, "output")]
    args = [x_index, idx.data if idx.is_constant else idx_index, y_index]
    # computed indices are clamped into range; constant ones were checked at import
    attrs = {"clamp": not idx.is_constant, "indices_shape": list(idx.shape)}
    if all(x.shape[d] == 1 for d in indexed_dims):
        # every index in range is 0: the kernel reads no indices (an unused C parameter is an error)
        del params[1], args[1]
        attrs["clamp"] = None
    return x, idx, y, params, args, attrs


def lower_gather(ctx, op):
    axis, batch = op.attrs["axis"], op.attrs["batch_dims"]
    x, idx, y, params, args, attrs = _operands(ctx, op, [axis])
    if list(y.shape) != gather_shape(x.shape, idx.shape, axis, batch):
        raise unsupported(op, f"output {list(y.shape)} does not fit params {list(x.shape)}, indices {list(idx.shape)}")
    attrs.update(axis=axis, batch_dims=batch)
    return [KernelCall(ctx.spec("gather", params, attrs), op.index, args)]


def lower_gather_nd(ctx, op):
    k = ctx.tensor(op.inputs[1]).shape[-1]
    x, idx, y, params, args, attrs = _operands(ctx, op, range(k))
    if list(y.shape) != gather_nd_shape(x.shape, idx.shape):
        raise unsupported(op, f"output {list(y.shape)} does not fit params {list(x.shape)}, indices {list(idx.shape)}")
    return [KernelCall(ctx.spec("gather_nd", params, attrs), op.index, args)]


# --------------------------------------------------------------------------- TE computes, schedules

def _placeholders(spec):
    """(params, indices, the tensors in param order); indices None if the kernel reads none."""
    from tvm import te

    x = te.placeholder(spec.params[0].shape, spec.params[0].dtype, name="params")
    if spec.attrs["clamp"] is None:
        return x, None, [x]
    p = spec.params[1]
    idx = te.placeholder(p.shape, p.dtype, name="indices")
    return x, idx, [x, idx]


def _index(idx, where, size: int, clamp: bool | None):
    from tvm import tirx

    if clamp is None:
        return tirx.const(0, "int32")
    i = idx[where]
    if clamp:  # in the indices' own type, so a huge int64 clamps rather than wraps
        i = tirx.max(tirx.min(i, tirx.const(size - 1, i.dtype)), tirx.const(0, i.dtype))
    return i.astype("int32")


def _gather_compute(spec):
    from tvm import te

    a = spec.attrs
    axis, batch, clamp = a["axis"], a["batch_dims"], a["clamp"]
    x, idx, tensors = _placeholders(spec)
    n_idx = len(a["indices_shape"]) - batch
    size = int(x.shape[axis])

    def value(*o):
        where = tuple(o[:batch]) + tuple(o[axis:axis + n_idx])
        picked = _index(idx, where, size, clamp)
        return x[tuple(o[:axis]) + (picked,) + tuple(o[axis + n_idx:])]

    return tensors + [te.compute(spec.params[-1].shape, value, name="output")]


def _gather_schedule(sch, spec):
    a = spec.attrs
    axis, batch = a["axis"], a["batch_dims"]
    n_idx = len(a["indices_shape"]) - batch
    loops = sch.get_loops(sch.get_sblock("output"))
    # the loops before the axis, over the indices, and the contiguous run after the gathered slice
    fuse_groups(sch, [loops[:axis] if batch == 0 else [], loops[axis:axis + n_idx], loops[axis + n_idx:]])


def _gather_nd_compute(spec):
    from tvm import te

    x, idx, tensors = _placeholders(spec)
    k = spec.attrs["indices_shape"][-1]
    lead = len(spec.attrs["indices_shape"]) - 1
    clamp = spec.attrs["clamp"]

    def value(*o):
        picked = tuple(_index(idx, tuple(o[:lead]) + (d,), int(x.shape[d]), clamp) for d in range(k))
        return x[picked + tuple(o[lead:])]

    return tensors + [te.compute(spec.params[-1].shape, value, name="output")]


def _gather_nd_schedule(sch, spec):
    lead = len(spec.attrs["indices_shape"]) - 1
    loops = sch.get_loops(sch.get_sblock("output"))
    fuse_groups(sch, [loops[:lead], loops[lead:]])


FAMILIES = {
    "gather": KernelFamily(_gather_compute, _gather_schedule),
    "gather_nd": KernelFamily(_gather_nd_compute, _gather_nd_schedule),
}
