"""RELU, RELU6 and LEAKY_RELU on int16 activations (16x8 quantization), as LiteRT's reference kernels
compute them: the int8 arithmetic of ops/reference.py (relu_x_int8, leaky_relu_int8) over the int16
range, with the multipliers' scale ratios taken in float32 as LiteRT's Prepare does (float tensor
scales and alpha; over 65536 codes a double ratio differs on a few ties). LiteRT 2.3 has no int16
RELU_N1_TO_1. An int16 input has 65536 codes, too many for the int8 kernels'
tables, so the kernel computes each element (fixedpoint.te):
  RELU(6)     out_zp + MultiplyByQuantizedMultiplier(q - in_zp, s_in / s_out), clamped to the
              activation's int16 range (QuantizedReluX)
  LEAKY_RELU  q - in_zp rescaled by s_in / s_out where >= 0 and by s_in * alpha / s_out below (a
              negative alpha: its magnitude, negated), + out_zp, clamped to int16 (QuantizeLeakyRelu)
Tensors are flattened: a kernel's spec depends only on the element count and the scalars. No knobs.
"""
from __future__ import annotations

import math

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, param, quant_params, unsupported

# the float clamp of each RELU kind (QuantizedReluX's act_min, act_max)
RELU_BOUNDS = {"RELU": (0.0, math.inf), "RELU6": (0.0, 6.0)}


def lower_activation_int16(ctx, op):
    from tinykiln.fixedpoint.prepare import quantize_float32, quantize_multiplier

    x, y = ctx.tensor(op.inputs[0]), ctx.tensor(op.outputs[0])
    if y.dtype != "int16":
        raise unsupported(op, f"{x.dtype} -> {y.dtype}")
    n = int(np.prod(x.shape, dtype=np.int64))
    (si, zi), (so, zo) = quant_params(x, "input", op), quant_params(y, "output", op)
    f32 = np.float32
    attrs = {"size": n, "input_zp": zi, "output_zp": zo}
    if op.kind in RELU_BOUNDS:
        lo, hi = RELU_BOUNDS[op.kind]
        attrs["act"] = [max(-32768, quantize_float32(lo, so, zo)),
                        32767 if math.isinf(hi) else min(32767, quantize_float32(hi, so, zo))]
        attrs["multiplier"] = list(quantize_multiplier(float(f32(si) / f32(so))))
    elif op.kind == "LEAKY_RELU":
        alpha = f32(op.attrs.get("alpha", 0.2))
        m_a, s_a = quantize_multiplier(float(f32(f32(si) * alpha) / f32(so)))
        attrs.update(act=[-32768, 32767], multiplier=list(quantize_multiplier(float(f32(si) / f32(so)))),
                     alpha_multiplier=[abs(m_a), s_a], alpha_negative=bool(m_a < 0))
    else:
        raise unsupported(op, f"int16 {op.kind}")
    spec = ctx.spec("activation_int16", [param("input", "int16", (n,), "input"),
                                         param("output", "int16", (n,), "output")], attrs)
    return [KernelCall(spec, op.index, [op.inputs[0], op.outputs[0]])]


def compute(spec):
    from tvm import te, tirx

    from tinykiln.fixedpoint.te import te_multiply_by_quantized_multiplier as mbqm

    a = spec.attrs
    i32 = lambda v: tirx.const(v, "int32")  # noqa: E731
    x = te.placeholder((a["size"],), "int16", name="input")

    def value(i):
        q = x[i].astype("int32") - i32(a["input_zp"])
        scaled = mbqm(q, *a["multiplier"], may_saturate=False)
        if "alpha_multiplier" in a:
            below = mbqm(q, *a["alpha_multiplier"], may_saturate=False)
            if a["alpha_negative"]:
                below = i32(0) - below
            scaled = tirx.Select(q >= i32(0), scaled, below)
        lo, hi = a["act"]
        return tirx.max(tirx.min(scaled + i32(a["output_zp"]), i32(hi)), i32(lo)).astype("int16")

    return [x, te.compute((a["size"],), value, name="output")]


FAMILIES = {"activation_int16": KernelFamily(compute)}
