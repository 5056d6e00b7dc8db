"""The 16x8 quantization area's registry glue: int16 rows beside the int8 ones of existing op kinds.

    DTYPES                                the ("int16", "int16") activation dtypes of those rows
    by_dtype(lower_int16, lower_other)    the row's lowering: int16 inputs to the int16 family module
    checker(check)                        the row's checker: the op's own checks plus the 16x8 rules
    int16_rules(view)                     what LiteRT's Prepare requires of int16 activations

The kernels are in the family modules ops/conv_int16.py (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED)
and ops/elementwise_int16.py (ADD, SUB, MUL), ops/activations_int16.py (RELU, RELU6, LEAKY_RELU) and
ops/softmax_int16.py (SOFTMAX); the pools and MEAN take int16 in their own modules, and ops that copy
codes keep their lowering.
"""
from __future__ import annotations

DTYPES = (("int16", "int16"),)
# the 16x8 ops whose LiteRT kernel takes no int32 bias (it refuses DEPTHWISE_CONV_2D's and misreads
# FULLY_CONNECTED's and TRANSPOSE_CONV's as int64)
INT64_BIAS_ONLY = ("DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV")
# the inputs that are the activation and the bias where they are not 0 and 2
ACTIVATION_INPUT = {"TRANSPOSE_CONV": 2}
BIAS_INPUT = {"TRANSPOSE_CONV": 3}
# the ops whose options choose LiteRT's power-of-two int16 path (see ops/elementwise_int16.py)
POT_OPTION = ("ADD", "SUB")


def by_dtype(lower_int16, lower_other):
    """A lowering that sends ops with an int16 first input to lower_int16, the rest to lower_other."""
    def lower(ctx, op):
        if ctx.tensor(op.inputs[ACTIVATION_INPUT.get(op.kind, 0)]).dtype == "int16":
            return lower_int16(ctx, op)
        return lower_other(ctx, op)
    lower.__doc__ = lower_other.__doc__
    return lower


def checker(check):
    """The op's checker, plus the rules LiteRT's Prepare sets for int16 activations: per-tensor,
    symmetric (zero point 0), positive scales."""
    def check_with_int16(v):
        attrs = check(v)
        x, b = v.input(ACTIVATION_INPUT.get(v.kind, 0)), v.input(BIAS_INPUT.get(v.kind, 2))
        if x is None or x.dtype != "int16":
            return attrs  # not a 16x8 op (e.g. SOFTMAX int8 -> int16 has rules of its own)
        int16_rules(v)
        if v.kind in INT64_BIAS_ONLY and b is not None and b.dtype == "int32":
            v.fail(f"int16 {v.kind} needs an int64 bias, '{b.name}' is int32 (LiteRT's kernel reads int64 only)")
        if v.kind == "SOFTMAX":
            from .softmax_int16 import check_output

            check_output(v)
        if v.kind in POT_OPTION and v.x.dtype == "int16":
            from .elementwise_int16 import check_pot

            attrs["pot_scale_int16"] = bool(v.options.get("pot_scale_int16", True))
            check_pot(v)
        return attrs
    return check_with_int16


def int16_rules(v) -> None:
    """Activations of the op (inputs that are not constants, and outputs) that are int16 must be
    quantized per tensor with zero point 0 (LiteRT's 16x8 kernels refuse others)."""
    for t in [t for t in v.inputs if t is not None and not t.is_constant] + list(v.outputs):
        if t.dtype != "int16":
            continue
        q = t.quant
        if q is None:
            v.fail(f"int16 tensor '{t.name}' has no quantization parameters")
        elif len(q.scale) != 1 or q.axis is not None:
            v.fail(f"int16 activation '{t.name}' is quantized per channel (expected per tensor)")
        elif q.zero_point[0] != 0:
            v.fail(f"int16 activation '{t.name}' has zero point {q.zero_point[0]} (16x8 quantization "
                   "needs 0: LiteRT refuses others)")
        elif not q.scale[0] > 0:
            v.fail(f"int16 activation '{t.name}' has scale {q.scale[0]} (must be > 0)")
