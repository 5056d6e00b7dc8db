"""Ops that compare or select operand values, with TFLite's numpy broadcasting: MINIMUM, MAXIMUM,
EQUAL, NOT_EQUAL, LESS, LESS_EQUAL, GREATER, GREATER_EQUAL, LOGICAL_AND, LOGICAL_OR, LOGICAL_NOT,
SELECT, SELECT_V2.

MINIMUM / MAXIMUM (maximum_minimum.cc, reference_ops::MaximumMinimumBroadcastSlow): float32, int8,
int32. LiteRT compares the stored values as they are, el1 > el2 ? el1 : el2 (MAXIMUM) and
el1 < el2 ? el1 : el2 (MINIMUM), with no requantization whatever the operands' quantization: an
int8 kernel does the same, so it is bit-exact by construction (converters write these ops, e.g.
clip_by_value, with one quantization throughout). A NaN operand yields the other operand, as in C.

Comparisons -> bool (comparisons.cc): float32, int32 (and bool for EQUAL / NOT_EQUAL) compare the
values; int8 compares each operand rescaled to a common fixed point, ((q - zp) << 8) times its scale
as a Q31 multiplier (ComparisonWithScaling), so two codes of different quantizations compare by their
real values, and codes that the rescaling rounds together compare equal. A rescaled operand depends
on its code alone: the lowering computes both as 256-entry int32 tables (as ADD does). int8 scales of
1 or more are rejected (LiteRT's rescaling is not defined for them).

LOGICAL_AND / OR / NOT: bool. SELECT_V2 (select.cc): out = cond ? x : y over the broadcast of the
three; SELECT: the same without broadcasting, or a rank-1 condition choosing along dimension 0. Both
copy stored values (int8 codes unchanged, as LiteRT).

bool tensors are bytes 0 / 1 (int8_t in C: aot.C_TYPES). Every kernel is one TE expression per output
element over the broadcast operands (ops/broadcast.py); constant operands are const params. No knobs.
"""
from __future__ import annotations

from tinykiln.kernel import KernelCall

import numpy as np

from . import broadcast
from .base import KernelFamily, param, quant_params, unsupported

MINMAX_DTYPES = (("int8", "int8"), ("float32", "float32"), ("int32", "int32"))
COMPARISONS = ("EQUAL", "NOT_EQUAL", "LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL")
LOGICAL = ("LOGICAL_AND", "LOGICAL_OR", "LOGICAL_NOT")
SELECTS = ("SELECT", "SELECT_V2")
COMPARE_LEFT_SHIFT = 8
BOOL_DTYPES = (("bool", "bool"),)
SELECT_DTYPES = (("bool", "int8"), ("bool", "float32"), ("bool", "int32"))


def comparison_dtypes(kind: str):
    plain = (("int8", "bool"), ("float32", "bool"), ("int32", "bool"))
    return plain + (("bool", "bool"),) if kind in ("EQUAL", "NOT_EQUAL") else plain


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
    a, b = np.asarray(a), np.asarray(b)
    pick = a > b if kind == "MAXIMUM" else a < b
    return np.where(pick, a, b).astype(a.dtype)


def check_comparison(v) -> dict:
    if broadcast.check_broadcast(v, 2):
        a, b = v.inputs
        if a.dtype != b.dtype:
            v.fail(f"operands {a.dtype} and {b.dtype}: LiteRT compares operands of one dtype")
        if a.dtype == "int8":
            for t in (a, b):
                if t.quant is not None and t.quant.scale[0] >= 1.0:
                    v.fail(f"int8 operand '{t.name}' has scale {t.quant.scale[0]:g} >= 1, which LiteRT's "
                           "comparison rescaling does not define")
    return {}


def check_logical(v) -> dict:
    broadcast.check_broadcast(v, 1 if v.kind == "LOGICAL_NOT" else 2)
    return {}


def check_select(v) -> dict:
    if not v.need((3, 3)):
        return {}
    cond, x, y = v.inputs
    if not x.dtype == y.dtype == v.y.dtype:
        v.fail(f"values {x.dtype} and {y.dtype} -> {v.y.dtype}: LiteRT selects between one dtype")
    if v.kind == "SELECT_V2":
        broadcast.check_broadcast(v, 3)
        return {}
    # SELECT: x and y alike; the condition alike too, or rank 1 along x's first dimension
    if tuple(x.shape) != tuple(y.shape) or not (tuple(cond.shape) == tuple(x.shape) or (
            len(cond.shape) == 1 and len(x.shape) > 1 and cond.shape[0] == x.shape[0])):
        v.fail(f"condition {list(cond.shape)} and values {list(x.shape)}, {list(y.shape)} do not fit SELECT "
               "(values of one shape, a condition of that shape or of their first dimension)")
        return {}
    v.shape_is(v.y, x.shape)
    return {}


def comparison_tables(zero_point: int, scale: float) -> np.ndarray:
    """ComparisonWithScaling's rescaled operand, (q - zp) << 8 times the scale as a multiplier
    (MultiplyByQuantizedMultiplierSmallerThanOneExp), for each int8 code q at index q & 255."""
    from tinykiln.fixedpoint.prepare import quantize_multiplier_smaller_than_one_exp
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier

    m, s = quantize_multiplier_smaller_than_one_exp(float(np.float32(scale)))
    q = np.arange(256, dtype=np.int64).astype(np.uint8).view(np.int8).astype(np.int64)
    return multiply_by_quantized_multiplier((q - zero_point) * (1 << COMPARE_LEFT_SHIFT), m, s).astype(np.int32)


_COMPARE_NP = {"EQUAL": np.equal, "NOT_EQUAL": np.not_equal, "LESS": np.less, "LESS_EQUAL": np.less_equal,
               "GREATER": np.greater, "GREATER_EQUAL": np.greater_equal}


def comparison_reference(kind: str, a, b, a_q=None, b_q=None) -> np.ndarray:
    """numpy model of LiteRT's comparisons (int8: on the rescaled operands)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype == np.int8:
        a = comparison_tables(a_q[1], a_q[0])[a.astype(np.uint8)]
        b = comparison_tables(b_q[1], b_q[0])[b.astype(np.uint8)]
    return _COMPARE_NP[kind](a, b)


def lower_comparison(ctx, op):
    a, b = ctx.tensor(op.inputs[0]), ctx.tensor(op.inputs[1])
    y = ctx.tensor(op.outputs[0])
    params, args, attrs = broadcast.operand_params(ctx, op)
    attrs["fn"] = op.kind
    if a.dtype == "int8":
        for name, t, role in (("table1", a, "input 1"), ("table2", b, "input 2")):
            scale, zp = quant_params(t, role, op)
            if not 0.0 < scale < 1.0:
                raise unsupported(op, f"int8 {role} scale {scale:g}: LiteRT's comparison rescaling needs a scale "
                                      "below 1")
            params.append(param(name, "int32", (256,), "const"))
            args.append(comparison_tables(zp, scale))
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec(f"compare_{a.dtype}", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def lower_logical(ctx, op):
    y = ctx.tensor(op.outputs[0])
    params, args, attrs = broadcast.operand_params(ctx, op)
    attrs["fn"] = op.kind
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec("logical", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def lower_select(ctx, op):
    cond, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if y.dtype not in {o for _, o in SELECT_DTYPES}:
        raise unsupported(op, f"{y.dtype} values (supported: {', '.join(o for _, o in SELECT_DTYPES)})")
    if op.kind == "SELECT" and len(cond.shape) == 1 and len(y.shape) > 1:
        params, args, attrs = _select_rank1(ctx, op)
    else:
        params, args, attrs = broadcast.operand_params(ctx, op)
    params.append(param("output", y.dtype, y.shape, "output"))
    spec = ctx.spec("select", params, attrs)
    return [KernelCall(spec, op.index, [*args, op.outputs[0]])]


def _select_rank1(ctx, op):
    """SELECT's rank-1 condition chooses along dimension 0: read as an [n, 1, ...] operand, it
    broadcasts like SELECT_V2's."""
    x = ctx.tensor(op.inputs[1])
    shapes = [(x.shape[0],) + (1,) * (len(x.shape) - 1), x.shape, ctx.tensor(op.inputs[2]).shape]
    params, args = [], []
    for k, (index, shape) in enumerate(zip(op.inputs, shapes)):
        t = ctx.tensor(index)
        params.append(param(broadcast.operand_name(k), t.dtype, shape, "const" if t.is_constant else "input"))
        args.append(np.ascontiguousarray(t.data).reshape(shape) if t.is_constant else index)
    return params, args, {"shapes": [list(s) for s in shapes], "out_shape": list(x.shape)}


def _minmax_compute(spec):
    from tvm import te, tirx

    (a, b), values = broadcast.loads(spec, 2)
    fn = spec.attrs["fn"]

    def value(*idx):
        va, vb = values(idx)
        return tirx.Select(va > vb if fn == "MAXIMUM" else va < vb, va, vb)

    return [a, b, te.compute(broadcast.out_shape(spec), value, name="output")]


def _compare_compute(spec):
    from tvm import te, tirx

    (a, b), values = broadcast.loads(spec, 2)
    tables = []
    if spec.family == "compare_int8":
        tables = [te.placeholder((256,), "int32", name="table1"), te.placeholder((256,), "int32", name="table2")]
    fn = spec.attrs["fn"]

    def value(*idx):
        va, vb = values(idx)
        if tables:
            va = tables[0][va.astype("uint8").astype("int32")]
            vb = tables[1][vb.astype("uint8").astype("int32")]
        test = {"EQUAL": va == vb, "NOT_EQUAL": va != vb, "LESS": va < vb, "LESS_EQUAL": va <= vb,
                "GREATER": va > vb, "GREATER_EQUAL": va >= vb}[fn]
        return tirx.Select(test, tirx.const(1, "int8"), tirx.const(0, "int8"))

    return [a, b, *tables, te.compute(broadcast.out_shape(spec), value, name="output")]


def _logical_compute(spec):
    from tvm import te, tirx

    fn = spec.attrs["fn"]
    holders, values = broadcast.loads(spec, 1 if fn == "LOGICAL_NOT" else 2)
    zero = tirx.const(0, "int8")

    def value(*idx):
        vs = [v != zero for v in values(idx)]
        test = {"LOGICAL_AND": lambda: tirx.all(*vs), "LOGICAL_OR": lambda: tirx.any(*vs),
                "LOGICAL_NOT": lambda: tirx.Not(vs[0])}[fn]()
        return tirx.Select(test, tirx.const(1, "int8"), zero)

    return [*holders, te.compute(broadcast.out_shape(spec), value, name="output")]


def _select_compute(spec):
    from tvm import te, tirx

    holders, values = broadcast.loads(spec, 3)

    def value(*idx):
        c, x, y = values(idx)
        return tirx.Select(c != tirx.const(0, "int8"), x, y)

    return [*holders, te.compute(broadcast.out_shape(spec), value, name="output")]


FAMILIES = {
    "minmax": KernelFamily(_minmax_compute, broadcast.flat_schedule),
    **{f"compare_{dtype}": KernelFamily(_compare_compute, broadcast.flat_schedule)
       for dtype in ("int8", "float32", "int32", "bool")},
    "logical": KernelFamily(_logical_compute, broadcast.flat_schedule),
    "select": KernelFamily(_select_compute, broadcast.flat_schedule),
}
