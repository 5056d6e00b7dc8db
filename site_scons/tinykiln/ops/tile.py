"""TILE and BROADCAST_TO (int8, float32, int32): every output element is the input element at its
coordinates modulo the input's shape (TILE) or with broadcast dimensions pinned to 0 (BROADCAST_TO);
bool too.

LiteRT's rules (facts checked against LiteRT in tests/kernels/test_ops_tile.py): TILE's multiples
and BROADCAST_TO's shape are 1-D int32 or int64 operands, constant here (a computed one is a dynamic
shape); BROADCAST_TO follows numpy's rules with the input's dimensions aligned to the end (output
rank <= 8). Codes are copied: neither op checks the int8 quantization, neither do we.
The schedule fuses the trailing dimensions that the output takes whole into one contiguous run.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, unsupported
from .rules import broadcast_to_shape, tile_shape
from .copy_loops import contiguous_run, fuse_groups

DTYPES = ("int8", "float32", "int32", "bool", "int64", "int16")


# --------------------------------------------------------------------------- the importer's checks

def _operand(v, t, role, rank):
    if not v.constant(t, role, ("int32", "int64")):
        return None
    values = t.data.reshape(-1).tolist()
    if len(t.shape) != 1 or (rank is not None and len(values) != rank):
        v.fail(f"{role} '{t.name}' has shape {list(t.shape)}, expected [{rank if rank is not None else 'n'}]")
        return None
    return values


def check_tile(v) -> dict:
    if not v.need((2, 2)):
        return {}
    multiples = _operand(v, v.inputs[1], "multiples", len(v.x.shape))
    if multiples is None:
        return {}
    if any(m < 1 for m in multiples):
        v.fail(f"multiples {multiples} must be >= 1")
        return {}
    v.shape_is(v.y, tile_shape(v.x.shape, multiples))
    return {}


def check_broadcast_to(v) -> dict:
    if not v.need((2, 2)):
        return {}
    shape = _operand(v, v.inputs[1], "shape", None)
    if shape is None:
        return {}
    out = broadcast_to_shape(v.x.shape, shape)
    if out is None:
        v.fail(f"input {list(v.x.shape)} does not broadcast to {shape}")
        return {}
    if len(out) > 8:
        v.fail(f"output rank {len(out)} > 8 (LiteRT's limit)")
    v.shape_is(v.y, out)
    return {}


# --------------------------------------------------------------------------- numpy models

def reference_tile(x: np.ndarray, multiples) -> np.ndarray:
    return np.tile(x, [int(m) for m in multiples])


def reference_broadcast_to(x: np.ndarray, shape) -> np.ndarray:
    return np.broadcast_to(x, [int(d) for d in shape]).copy()


# --------------------------------------------------------------------------- lowering

def _lower(ctx, op, family, out_shape):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    if x.dtype != y.dtype or x.dtype not in DTYPES:
        raise unsupported(op, f"{x.dtype} -> {y.dtype} ({', '.join(DTYPES)}, the same)")
    if out_shape is None or list(y.shape) != list(out_shape):
        raise unsupported(op, f"output {list(y.shape)} is not the op's {out_shape}")
    spec = ctx.spec(family, [param("input", x.dtype, x.shape, "input"), param("output", y.dtype, y.shape, "output")],
                    {"in_shape": list(x.shape), "out_shape": list(y.shape)})
    return [KernelCall(spec, op.index, [x_index, y_index])]


def lower_tile(ctx, op):
    multiples = constant(ctx, op.inputs[1], op, "multiples").reshape(-1).tolist()
    return _lower(ctx, op, "tile", tile_shape(ctx.tensor(op.inputs[0]).shape, multiples))


def lower_broadcast_to(ctx, op):
    shape = constant(ctx, op.inputs[1], op, "shape").reshape(-1).tolist()
    return _lower(ctx, op, "broadcast_to", broadcast_to_shape(ctx.tensor(op.inputs[0]).shape, shape))


# --------------------------------------------------------------------------- TE computes, schedule

def _compute(spec):
    from tvm import te

    a = spec.attrs
    in_shape, out_shape = a["in_shape"], a["out_shape"]
    x = te.placeholder(tuple(in_shape), spec.params[0].dtype, name="input")
    lead = len(out_shape) - len(in_shape)  # BROADCAST_TO aligns the input to the end

    def value(*o):
        idx = []
        for d, n in enumerate(in_shape):
            i = o[lead + d]
            idx.append(0 if n == 1 else (i % n if out_shape[lead + d] != n else i))
        return x[tuple(idx)]

    return [x, te.compute(tuple(out_shape), value, name="output")]


def _schedule(sch, spec):
    a = spec.attrs
    lead = len(a["out_shape"]) - len(a["in_shape"])
    loops = sch.get_loops(sch.get_sblock("output"))
    run = lead + contiguous_run(a["in_shape"], a["out_shape"][lead:])
    fuse_groups(sch, [loops[:run], loops[run:]])


FAMILIES = {
    "tile": KernelFamily(_compute, _schedule),
    "broadcast_to": KernelFamily(_compute, _schedule),
}
