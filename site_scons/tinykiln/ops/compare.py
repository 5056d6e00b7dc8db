"""Ops that select or compare operand values, with TFLite's numpy broadcasting: MINIMUM, MAXIMUM.

MINIMUM / MAXIMUM (maximum_minimum.cc, reference_ops::MaximumMinimumBroadcastSlow): float32, int8,
int32. LiteRT compares the stored values as they are, el1 > el2 ? el1 : el2 (MAXIMUM) and
el1 < el2 ? el1 : el2 (MINIMUM), with no requantization whatever the operands' quantization: an
int8 kernel does the same, so it is bit-exact by construction (converters write these ops, e.g.
clip_by_value, with one quantization throughout). A NaN operand yields the other operand, as in C.

Every kernel is one TE expression per output element over the broadcast operands (ops/broadcast.py);
constant operands (a clip bound) are const params. No knobs.
"""
from __future__ import annotations

from tinykiln.kernel import KernelCall

from . import broadcast
from .base import KernelFamily, param, unsupported

MINMAX_DTYPES = (("int8", "int8"), ("float32", "float32"), ("int32", "int32"))


def check_minmax(v) -> dict:
    """MINIMUM / MAXIMUM: two operands of one dtype, broadcast to the output."""
    if broadcast.check_broadcast(v, 2):
        a, b = v.inputs
        if not a.dtype == b.dtype == v.y.dtype:
            v.fail(f"operands {a.dtype} and {b.dtype} -> {v.y.dtype}: LiteRT needs one dtype throughout")
    return {}


def lower_minmax(ctx, op):
    y = ctx.tensor(op.outputs[0])
    if y.dtype not in {d for d, _ in MINMAX_DTYPES}:
        raise unsupported(op, f"{y.dtype} (supported: {', '.join(d for d, _ in MINMAX_DTYPES)})")
    params, args, attrs = broadcast.operand_params(ctx, op)
    attrs["fn"] = op.kind
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec("minmax", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def minmax_reference(kind: str, a, b):
    """numpy model of LiteRT's MAXIMUM / MINIMUM: the stored values compared, el2 on ties."""
    import numpy as np

    a, b = np.asarray(a), np.asarray(b)
    pick = a > b if kind == "MAXIMUM" else a < b
    return np.where(pick, a, b).astype(a.dtype)


def _minmax_compute(spec):
    from tvm import te, tirx

    (a, b), values = broadcast.loads(spec, 2)
    fn = spec.attrs["fn"]

    def value(*idx):
        va, vb = values(idx)
        return tirx.Select(va > vb if fn == "MAXIMUM" else va < vb, va, vb)

    return [a, b, te.compute(broadcast.out_shape(spec), value, name="output")]


FAMILIES = {
    "minmax": KernelFamily(_minmax_compute, broadcast.flat_schedule),
}
