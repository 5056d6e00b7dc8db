"""What the elementwise families of several operands share (ops/compare.py, ops/binary_math.py):
TFLite's numpy broadcasting of the operands, their params (a constant operand becomes a const param,
its data baked into the weights), the operand loads of a TE compute and the flat schedule.

    check_broadcast(view, n_inputs)     importer: operand count, the broadcast output shape
    operand_params(ctx, op, dtypes)     lowering: (params, args, attrs) of the operands
    loads(spec, dtypes)                 TE: the placeholders and a function idx -> operand values
    flat_schedule(sch, spec)            one loop where nothing broadcasts, unrolled by up to four

Shapes are kept as they are (rank 0 is read as [1]); size-1 dimensions broadcast by reading index 0.
"""
from __future__ import annotations

import numpy as np

from .base import param, unsupported


def operand_name(k: int) -> str:
    """The param name of operand k (0-based): input1, input2, ..."""
    return f"input{k + 1}"


def broadcast_shape(shapes):
    """numpy's (and TFLite's) broadcast of the operand shapes, or None."""
    try:
        return tuple(int(d) for d in np.broadcast_shapes(*[tuple(s) for s in shapes]))
    except ValueError:
        return None


def check_broadcast(v, n_inputs: int) -> bool:
    """The importer's checks of an op whose n_inputs operands broadcast to its output."""
    if not v.need((n_inputs, n_inputs)):
        return False
    shape = broadcast_shape([t.shape for t in v.inputs])
    if shape is None:
        v.fail(f"input shapes {' and '.join(str(list(t.shape)) for t in v.inputs)} do not broadcast")
        return False
    v.shape_is(v.y, shape)
    return True


def operand_params(ctx, op, dtypes=None):
    """Params and call args of the op's operands (input1, input2, ...), constants as const params,
    and the shape attrs of the compute. dtypes: the param dtype of each operand (default: its own)."""
    tensors = [ctx.tensor(i) for i in op.inputs]
    y = ctx.tensor(op.outputs[0])
    shape = broadcast_shape([t.shape for t in tensors])
    if shape is None or shape != tuple(y.shape):
        raise unsupported(op, f"output shape {list(y.shape)} is not the broadcast of the input shapes")
    params, args = [], []
    for k, (index, t) in enumerate(zip(op.inputs, tensors)):
        dtype = dtypes[k] if dtypes else t.dtype
        if t.is_constant:
            params.append(param(operand_name(k), dtype, t.shape, "const"))
            args.append(np.ascontiguousarray(t.data).astype(dtype))
        else:
            params.append(param(operand_name(k), dtype, t.shape, "input"))
            args.append(index)
    attrs = {"shapes": [list(t.shape) for t in tensors], "out_shape": list(y.shape)}
    return params, args, attrs


def _index(in_shape, out_rank):
    offset = out_rank - len(in_shape)

    def index(idx):
        return tuple(0 if d == 1 else idx[offset + i] for i, d in enumerate(in_shape))

    return index


def te_dtype(dtype: str) -> str:
    """bool tensors are bytes holding 0 or 1 (int8_t in C, as the AOT code declares them)."""
    return "int8" if dtype == "bool" else dtype


def loads(spec, count: int):
    """The first `count` params as placeholders, and idx -> their broadcast values at output idx."""
    from tvm import te

    shapes = spec.attrs["shapes"]
    rank = len(spec.attrs["out_shape"])
    holders = [te.placeholder(shapes[k] or [1], te_dtype(spec.params[k].dtype), name=spec.params[k].name)
               for k in range(count)]
    indexers = [_index(shapes[k] or [1], max(rank, 1)) for k in range(count)]

    def values(idx):
        return [h[ix(idx)] for h, ix in zip(holders, indexers)]

    return holders, values


def out_shape(spec):
    return spec.attrs["out_shape"] or [1]


def flat_schedule(sch, spec):
    """One flat loop where no operand broadcasts (all share the output's index), the inner loop
    unrolled by four or two where it divides (fewer loop tests per element)."""
    at = spec.attrs
    loops = sch.get_loops(sch.get_sblock("output"))
    if len(loops) > 1 and all(list(s) == list(at["out_shape"]) for s in at["shapes"]):
        loops = [sch.fuse(*loops)]
    extent = int(sch.get(loops[-1]).extent)
    unroll = next((u for u in (4, 2) if extent % u == 0 and extent > u), None)
    if unroll:
        _, inner = sch.split(loops[-1], [None, unroll])
        sch.unroll(inner)
