"""RESHAPE and SQUEEZE: no kernel. The output tensor reuses the input's bytes (LoweredModel.aliases);
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


FAMILIES = {}
