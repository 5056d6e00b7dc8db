"""BATCH_MATMUL: int8 and float32, adj_x / adj_y, broadcast batch dimensions (rank 2 to 5), the
right-hand side an activation or a constant.

    out[b..., m, n] = sum_k lhs[b..., m, k] * rhs[b..., k, n]
    (adj_x: lhs stored [..., K, M]; adj_y: rhs stored [..., N, K]; a batch dimension of 1
    broadcasts against the other side's)

int8 is LiteRT's reference_ops::BatchMatMul<int8_t, int32_t> (what BUILTIN_REF runs): the int32
sum of (lhs - lhs_zp) * (rhs - rhs_zp), MultiplyByQuantizedMultiplier (double rounding) by
QuantizeMultiplier(double(float(lhs_scale * rhs_scale)) / double(output_scale))
(GetQuantizedConvolutionMultipler: the scales' product in float first), + output_zp, clamped to
int8 (the op has no fused activation). float32 sums in k order (reference_ops::BatchMatMul<float>).

Kernel: conv-like (ops/accumulate.py): acc = the k reduction, output = the requantization, the
output's last axis (n) split by the oc_tile knob with the tile's accumulators in a small array.
"""
from __future__ import annotations

import numpy as np

from tinykiln.fixedpoint.prepare import quantize_multiplier
from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier
from tinykiln.kernel import KernelCall

from .accumulate import divisors_up_to, schedule_accumulate
from .base import KernelFamily, param, quant_params, unsupported
from .checks import OpView

MAX_RANK = 5  # LiteRT's limit


# -- shapes ---------------------------------------------------------------------------------------

def matmul_shapes(lhs_shape, rhs_shape, adj_x: bool, adj_y: bool):
    """(batch shape, M, K, N) of the product, or a string saying why the shapes do not fit."""
    if not (2 <= len(lhs_shape) <= MAX_RANK and 2 <= len(rhs_shape) <= MAX_RANK):
        return f"ranks {len(lhs_shape)} and {len(rhs_shape)} (2 to {MAX_RANK} are supported)"
    m, k = (lhs_shape[-1], lhs_shape[-2]) if adj_x else (lhs_shape[-2], lhs_shape[-1])
    k2, n = (rhs_shape[-1], rhs_shape[-2]) if adj_y else (rhs_shape[-2], rhs_shape[-1])
    if k != k2:
        return f"contraction sizes differ: {list(lhs_shape)} and {list(rhs_shape)}"
    try:
        batch = tuple(np.broadcast_shapes(tuple(lhs_shape[:-2]), tuple(rhs_shape[:-2])))
    except ValueError:
        return f"batch dimensions {list(lhs_shape[:-2])} and {list(rhs_shape[:-2])} do not broadcast"
    return batch, int(m), int(k), int(n)


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    attrs = {"adj_x": bool(v.options.get("adj_x", False)), "adj_y": bool(v.options.get("adj_y", False))}
    if not v.need((2, 2)):
        return attrs
    lhs, rhs = v.inputs
    if lhs.is_constant:
        v.fail(f"left-hand side '{lhs.name}' is a constant (only the right-hand side may be)")
    if rhs.dtype != lhs.dtype:
        v.fail(f"right-hand side '{rhs.name}' is {rhs.dtype}, the left-hand side {lhs.dtype} "
               "(hybrid quantization is not supported)")
        return attrs
    shapes = matmul_shapes(lhs.shape, rhs.shape, attrs["adj_x"], attrs["adj_y"])
    if isinstance(shapes, str):
        v.fail(shapes)
        return attrs
    batch, m, _, n = shapes
    v.shape_is(v.y, batch + (m, n))
    return attrs


# -- numpy models (the tests' oracles) --------------------------------------------------------------

def matmul_multiplier(lhs_scale, rhs_scale, out_scale) -> tuple[int, int]:
    f32 = np.float32
    return quantize_multiplier(float(f32(lhs_scale) * f32(rhs_scale)) / float(f32(out_scale)))


def _oriented(lhs, rhs, adj_x, adj_y):
    lhs = np.swapaxes(lhs, -1, -2) if adj_x else lhs
    rhs = np.swapaxes(rhs, -1, -2) if adj_y else rhs
    return lhs, rhs


def batch_matmul_int8_reference(lhs, rhs, adj_x, adj_y, lhs_q, rhs_q, out_q) -> np.ndarray:
    lhs, rhs = _oriented(np.asarray(lhs, np.int64) - lhs_q[1], np.asarray(rhs, np.int64) - rhs_q[1], adj_x, adj_y)
    m, s = matmul_multiplier(lhs_q[0], rhs_q[0], out_q[0])
    y = multiply_by_quantized_multiplier(np.matmul(lhs, rhs), m, s) + out_q[1]
    return np.clip(y, -128, 127).astype(np.int8)


def batch_matmul_float_reference(lhs, rhs, adj_x, adj_y) -> np.ndarray:
    lhs, rhs = _oriented(np.asarray(lhs, np.float32), np.asarray(rhs, np.float32), adj_x, adj_y)
    batch = np.broadcast_shapes(lhs.shape[:-2], rhs.shape[:-2])
    lhs = np.broadcast_to(lhs, batch + lhs.shape[-2:])
    rhs = np.broadcast_to(rhs, batch + rhs.shape[-2:])
    acc = np.zeros(batch + (lhs.shape[-2], rhs.shape[-1]), np.float32)
    for k in range(lhs.shape[-1]):  # in k order, in float32, as LiteRT
        acc = (acc + lhs[..., :, k:k + 1] * rhs[..., k:k + 1, :]).astype(np.float32)
    return acc


# -- lowering ---------------------------------------------------------------------------------------

def lower_batch_matmul(ctx, op):
    (l_index, r_index), y_index = op.inputs, op.outputs[0]
    lhs, rhs, y = ctx.tensor(l_index), ctx.tensor(r_index), ctx.tensor(y_index)
    adj_x, adj_y = bool(op.attrs.get("adj_x", False)), bool(op.attrs.get("adj_y", False))
    shapes = matmul_shapes(lhs.shape, rhs.shape, adj_x, adj_y)
    if isinstance(shapes, str):
        raise unsupported(op, shapes)
    batch, m, k, n = shapes
    if tuple(y.shape) != batch + (m, n) or not lhs.dtype == rhs.dtype == y.dtype:
        raise unsupported(op, f"{lhs.dtype} {list(lhs.shape)} x {rhs.dtype} {list(rhs.shape)} -> "
                              f"{y.dtype} {list(y.shape)}")
    if lhs.data is not None:
        raise unsupported(op, "a constant left-hand side")
    attrs = {"lhs_shape": list(lhs.shape), "rhs_shape": list(rhs.shape), "out_shape": list(y.shape),
             "adj_x": adj_x, "adj_y": adj_y, "k": k}
    if lhs.dtype == "int8":
        lq, rq, oq = (quant_params(t, role, op) for t, role in ((lhs, "input"), (rhs, "input"), (y, "output")))
        multiplier, shift = matmul_multiplier(lq[0], rq[0], oq[0])
        attrs.update(lhs_zp=lq[1], rhs_zp=rq[1], output_zp=oq[1], multiplier=multiplier, shift=shift,
                     act=[-128, 127], acc_bound=k * 256 * 256)
    elif lhs.dtype != "float32":
        raise unsupported(op, f"{lhs.dtype} (int8 or float32)")
    constant_rhs = rhs.data is not None
    params = [param("lhs", lhs.dtype, lhs.shape, "input"),
              param("rhs", rhs.dtype, rhs.shape, "const" if constant_rhs else "input"),
              param("output", y.dtype, y.shape, "output")]
    spec = ctx.spec(f"batch_matmul_{lhs.dtype}", params, attrs)
    return [KernelCall(spec, op.index, [l_index, np.asarray(rhs.data) if constant_rhs else r_index, y_index])]


def _compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.fused import te_requantize

    from .epilogue import clamp_int8

    a = spec.attrs
    int8 = spec.family == "batch_matmul_int8"
    lhs = te.placeholder(tuple(a["lhs_shape"]), spec.params[0].dtype, name="lhs")
    rhs = te.placeholder(tuple(a["rhs_shape"]), spec.params[1].dtype, name="rhs")
    out_shape = tuple(a["out_shape"])
    rank = len(out_shape)
    kk = te.reduce_axis((0, a["k"]), name="k")

    def batch_index(shape, idx):
        # the operand's batch dims align with the output's last ones; a dim of 1 broadcasts
        dims = shape[:-2]
        lead = rank - 2 - len(dims)
        return [0 if d == 1 else idx[lead + i] for i, d in enumerate(dims)]

    def value(t, zp_key):
        if not int8:
            return t
        return t.astype("int32") - tirx.const(a[zp_key], "int32")

    def acc_fn(*idx):
        i, j = idx[-2], idx[-1]
        lb, rb = batch_index(a["lhs_shape"], idx), batch_index(a["rhs_shape"], idx)
        left = lhs[tuple(lb + ([kk, i] if a["adj_x"] else [i, kk]))]
        right = rhs[tuple(rb + ([j, kk] if a["adj_y"] else [kk, j]))]
        return te.sum(value(left, "lhs_zp") * value(right, "rhs_zp"), axis=kk)

    acc = te.compute(out_shape, acc_fn, name="acc")
    if int8:
        def out(*idx):
            scaled = te_requantize(acc[idx], a["multiplier"], a["shift"], a["output_zp"], a["acc_bound"])
            return clamp_int8(scaled, a["act"])
    else:
        def out(*idx):
            return acc[idx]
    output = te.compute(out_shape, out, name="output")
    return [lhs, rhs, output]


def _schedule(sch, spec):
    schedule_accumulate(sch, spec, 1)


def _knob_space(spec):
    n = spec.attrs["out_shape"][-1]
    return {"oc_tile": [1] + [d for d in divisors_up_to(n, 8) if d > 1], "unroll": [False, True]}


FAMILIES = {
    "batch_matmul_int8": KernelFamily(_compute, _schedule, _knob_space),
    "batch_matmul_float32": KernelFamily(_compute, _schedule, _knob_space),
}
