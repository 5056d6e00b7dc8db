"""RESHAPE, SQUEEZE and EXPAND_DIMS: no kernel. The output tensor reuses the input's bytes (LoweredModel.aliases);
the memory planner gives both one arena slot. int8 reshapes keep the quantization (TFLite requires it)."""
from __future__ import annotations

import numpy as np

from .base import unsupported


def lower_alias(ctx, op):
    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if x.dtype != y.dtype or int(np.prod(x.shape)) != int(np.prod(y.shape)):
        raise unsupported(op, f"{x.shape} {x.dtype} -> {y.shape} {y.dtype} is not a pure reshape")
    if x.quant != y.quant and x.dtype != "float32":
        raise unsupported(op, "input and output quantization differ")
    if x.is_constant:
        raise unsupported(op, "reshape of a constant tensor")
    ctx.alias(op.outputs[0], op.inputs[0])
    return []


def check_expand_dims(v) -> dict:
    """EXPAND_DIMS (Conv1D's `EXPAND_DIMS + CONV_2D`): a constant scalar or [1] int32/int64 axis in
    [-rank - 1, rank]; a negative axis counts from the end of the output, as in LiteRT."""
    if not v.need((2, 2)):
        return {}
    axis_t = v.inputs[1]
    if not v.constant(axis_t, "axis", ("int32", "int64")):
        return {}
    if axis_t.data.size != 1:
        v.fail(f"axis '{axis_t.name}' has {axis_t.data.size} values, expected one")
        return {}
    rank = len(v.x.shape)
    axis = int(axis_t.data.reshape(-1)[0])
    if not -rank - 1 <= axis <= rank:
        v.fail(f"axis {axis} out of range for rank {rank}")
        return {}
    axis %= rank + 1
    v.shape_is(v.y, tuple(v.x.shape[:axis]) + (1,) + tuple(v.x.shape[axis:]))
    return {}


FAMILIES = {}
