"""One-input elementwise math: ABS, NEG, SQUARE, SQRT, RSQRT, EXP, LOG, ELU, GELU, RELU_0_TO_1, FLOOR,
and CAST.

int8: a 256-entry table (the `lut_int8` kernel family of ops/activations.py, out = table[in + 128]),
computed at build time by the numpy models below, each proven bit-exact against LiteRT over every
input code (tests/kernels/test_ops_unary_math.py). What LiteRT 2.3 computes (BUILTIN_REF):
    ABS      |q - zp_in|, + zp_out if the scales are equal, else MultiplyByQuantizedMultiplier by
             s_in / s_out (float quotient) first; clamped (elementwise.cc AbsEvalQuantized)
    NEG      -q wrapped to int8: LiteRT ignores the quantization (neg.cc)
    SQRT     (int)(sqrtf(s_in * (q - zp_in)) / s_out) + zp_out, truncated, clamped; LiteRT refuses to
             run on a negative input (the table holds the zero point there)
    RSQRT    fixed point: GetInvSqrtQuantizedMultiplierExp(q - zp_in), then two multiplications,
             the second by 1 / (sqrtf(s_in) * s_out); q == zp_in gives 127; LiteRT refuses q < zp_in
    EXP, LOG, ELU, GELU   LUTPopulate of the float function (expf; logf with x <= 0 giving the lowest
             output; x < 0 ? expf(x) - 1 : x; 0.5 x erfc(-x / sqrt 2) or its tanh approximation)
    RELU_0_TO_1  the ReluX path of RELU6 with bounds 0 and 1
SQUARE and FLOOR: LiteRT has no int8 kernel (float32 only), and ELU is missing from BUILTIN_REF
(its tests compare with LiteRT's BUILTIN kernels, which have it).

float32 (and int32 ABS/NEG): one TE expression per element with the C library functions LiteRT's
reference kernels call (expf, logf, sqrtf, erfcf, floorf). Exact on the host against
LiteRT, except GELU and ELU (LiteRT's float kernels use Eigen's erfc/tanh/exp: within 1e-5 relative,
1e-6 absolute); on a device, within its C library's error of these functions.
CAST (cast.cc) converts stored values between int8, int32, int64, float32 and bool as C's
static_cast does (float to integer truncates; to bool: value != 0), ignoring any quantization, as
LiteRT does.
Tensors are flattened. Knobs: unroll.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math

import numpy as np

from tinykiln.kernel import KernelCall

from . import reference as ref
from .base import KernelFamily, param, quant_params, unsupported

F32, I32 = ("float32", "float32"), ("int32", "int32")
I8 = ("int8", "int8")
DTYPES = {"ABS": (I8, F32, I32), "NEG": (I8, F32, I32), "SQUARE": (F32,), "FLOOR": (F32,)}
DEFAULT_DTYPES = (I8, F32)
KINDS = ("ABS", "NEG", "SQUARE", "SQRT", "RSQRT", "EXP", "LOG", "ELU", "GELU", "RELU_0_TO_1", "FLOOR")


CAST_TYPES = ("int8", "int32", "int64", "float32", "bool")
CAST_DTYPES = tuple((a, b) for a in CAST_TYPES for b in CAST_TYPES)


def dtypes(kind: str):
    return DTYPES.get(kind, DEFAULT_DTYPES)


def check_cast(v) -> dict:
    if v.need((1, 1)):
        v.shape_is(v.y, v.x.shape)
    return {}


def lower_cast(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    if (x.dtype, y.dtype) not in CAST_DTYPES:
        raise unsupported(op, f"{x.dtype} -> {y.dtype} (supported: any of {', '.join(CAST_TYPES)})")
    n = int(np.prod(x.shape, dtype=np.int64))
    spec = ctx.spec("cast", [param("input", x.dtype, (n,), "input"), param("output", y.dtype, (n,), "output")],
                    {"size": n})
    return [KernelCall(spec, op.index, [x_index, y_index])]


def cast_reference(x, dtype: str) -> np.ndarray:
    x = np.asarray(x)
    if dtype == "bool":
        return x != 0
    return x.astype(dtype)


def check_unary(v) -> dict:
    """One input, one output of its shape (and dtype: the registry's dtypes are the same-type pairs)."""
    attrs = {"approximate": bool(v.options.get("approximate", False))} if v.kind == "GELU" else {}
    if v.need((1, 1)):
        v.shape_is(v.y, v.x.shape)
    return attrs


# --------------------------------------------------------------------------- numpy models (int8)

_LIBM = None


def libm(name: str, x) -> np.float32:
    """The C library's float function `name` (expf, logf, erfcf, tanhf, ...): LiteRT fills its tables
    with them, and numpy's float32 functions are other implementations (last-bit differences)."""
    global _LIBM
    if _LIBM is None:
        _LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
    fn = getattr(_LIBM, name)
    fn.restype, fn.argtypes = ctypes.c_float, [ctypes.c_float]
    return np.float32(fn(float(x)))


f32 = np.float32
SQRT2DPI = f32(2.0 / math.sqrt(math.pi) * math.sqrt(0.5))  # M_2_SQRTPI * M_SQRT1_2 in double, then float


def gelu_f32(x: np.float32, approximate: bool) -> np.float32:
    """reference_ops::GeluTransform(Approximate), float32 step by step."""
    if approximate:
        cube = f32(f32(f32(f32(0.044715) * x) * x) * x)
        return f32(f32(f32(0.5) * x) * f32(f32(1.0) + libm("tanhf", f32(SQRT2DPI * f32(x + cube)))))
    return f32(f32(f32(0.5) * x) * libm("erfcf", f32(x * f32(-math.sqrt(0.5)))))


def _elu_f32(x):
    return f32(libm("expf", x) - f32(1.0)) if x < 0 else x


def _clamp8(v):
    return np.clip(v, -128, 127).astype(np.int8)


def abs_int8(q, in_scale, in_zp, out_scale, out_zp):
    from tinykiln.fixedpoint.prepare import quantize_multiplier
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier

    value = np.abs(np.asarray(q, dtype=np.int64) - in_zp)
    if f32(in_scale) == f32(out_scale):
        return _clamp8(value + out_zp)
    m, s = quantize_multiplier(float(f32(in_scale) / f32(out_scale)))
    return _clamp8(multiply_by_quantized_multiplier(value, m, s) + out_zp)


def neg_int8(q):
    return ((-np.asarray(q, dtype=np.int64)) & 0xFF).astype(np.uint8).view(np.int8)


def sqrt_int8(q, in_scale, in_zp, out_scale, out_zp):
    deq = f32(in_scale) * (np.asarray(q, dtype=np.int64) - in_zp).astype(np.float32)
    root = np.sqrt(np.maximum(deq, f32(0.0))).astype(np.float32)  # IEEE sqrt: correctly rounded
    return _clamp8(np.trunc((root / f32(out_scale)).astype(np.float32)).astype(np.int64) + out_zp)


def inv_sqrt_multiplier_exp(value: int) -> tuple[int, int]:
    """TFLite's GetInvSqrtQuantizedMultiplierExp(value, kReverseShift = -1): 1 / sqrt(value) as a
    Q0.31 multiplier and a left shift, by five Newton-Raphson steps in Q3.28 (gemmlowp FixedPoint)."""
    from tinykiln.fixedpoint.reference import rdbpot, saturating_shl32, srdhm, wrap32

    if value <= 1:
        return (1 << 31) - 1, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = ((32 - value.bit_length()) - 1) // 2 - 1  # (clz - 1) / 2 - 1 pairs of left-shift bits
    shift -= pairs
    value <<= 2 * pairs
    half_input = int(rdbpot(value >> 1, 1))
    half_three = (1 << 28) + (1 << 27)
    x = 1 << 28  # 1.0 in Q3.28
    for _ in range(5):
        x3 = int(saturating_shl32(srdhm(srdhm(x, x), x), 6))  # Q9 -> Q3
        x = int(saturating_shl32(wrap32(int(srdhm(half_three, x)) - int(srdhm(half_input, x3))), 3))
    x = int(srdhm(x, 1518500250))  # * sqrt(2) / 2 in Q0.31
    if shift < 0:
        x = int(wrap32(x << -shift))
        shift = 0
    return x, -shift


def rsqrt_int8(q, in_scale, in_zp, out_scale, out_zp):
    from tinykiln.fixedpoint.prepare import quantize_multiplier
    from tinykiln.fixedpoint.reference import multiply_by_quantized_multiplier as mbqm

    m, s = quantize_multiplier(1.0 / float(f32(np.sqrt(f32(in_scale)) * f32(out_scale))))
    out = []
    for v in (np.asarray(q, dtype=np.int64) - in_zp).reshape(-1).tolist():
        if v == 0:
            out.append(127)
            continue
        inv, inv_shift = inv_sqrt_multiplier_exp(v)
        data = int(mbqm(1, inv, inv_shift + 20))
        out.append(int(mbqm(data, m, s - 20)) + out_zp)
    return _clamp8(np.array(out).reshape(np.shape(q)))


def int8_table(kind: str, in_q, out_q, approximate: bool = False) -> np.ndarray:
    """The 256 outputs of an int8 op for the input codes -128..127 (index q + 128)."""
    codes = np.arange(-128, 128, dtype=np.int64)
    (si, zi), (so, zo) = in_q, out_q
    if kind == "ABS":
        return abs_int8(codes, si, zi, so, zo)
    if kind == "NEG":
        return neg_int8(codes)
    if kind == "SQRT":
        return sqrt_int8(codes, si, zi, so, zo)
    if kind == "RSQRT":
        return rsqrt_int8(codes, si, zi, so, zo)
    if kind == "RELU_0_TO_1":
        return ref.relu_x_int8(codes, si, zi, so, zo, 0.0, 1.0)
    if kind == "LOG":
        lowest = f32((-128 - zo) * f32(so))
        return ref.lut_int8(lambda x: libm("logf", x) if x > 0 else lowest, si, zi, so, zo)
    fns = {"EXP": lambda x: libm("expf", x), "ELU": _elu_f32, "GELU": lambda x: gelu_f32(x, approximate)}
    return ref.lut_int8(fns[kind], si, zi, so, zo)


# --------------------------------------------------------------------------- lowering

def lower_unary(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    n = int(np.prod(x.shape, dtype=np.int64))
    if (x.dtype, y.dtype) not in dtypes(op.kind):
        names = " or ".join(d for d, _ in dtypes(op.kind))
        raise unsupported(op, f"{x.dtype} -> {y.dtype} (LiteRT runs {op.kind} on {names})")
    if x.dtype == "int8":
        table = int8_table(op.kind, quant_params(x, "input", op), quant_params(y, "output", op),
                           op.attrs.get("approximate", False))
        spec = ctx.spec("lut_int8", [param("input", "int8", (n,), "input"), param("table", "int8", (256,), "const"),
                                     param("output", "int8", (n,), "output")], {"size": n})
        return [KernelCall(spec, op.index, [x_index, np.asarray(table, dtype=np.int8), y_index])]
    attrs = {"size": n, "fn": op.kind}
    params, args = [param("input", x.dtype, (n,), "input")], [x_index]
    if op.kind == "GELU":
        # float constants that are not round numbers are const params: TVM's C printer writes float
        # immediates with 7 significant digits, which does not round-trip -M_SQRT1_2 as a float32
        attrs["approximate"] = bool(op.attrs.get("approximate", False))
        params.append(param("constants", "float32", (2,), "const"))
        args.append(np.array([-math.sqrt(0.5), SQRT2DPI], dtype=np.float32))
    spec = ctx.spec("math_unary", params + [param("output", y.dtype, (n,), "output")], attrs)
    return [KernelCall(spec, op.index, args + [y_index])]


# --------------------------------------------------------------------------- TE compute

def _float_value(fn: str, v, approximate: bool, constants=None):
    from tvm import te, tirx

    def c(value):
        return tirx.const(value, "float32")

    def extern(name, arg):
        return tirx.call_pure_extern("float32", name, arg)

    if fn == "ABS":
        return extern("fabsf", v)
    if fn == "NEG":
        return -v
    if fn == "SQUARE":
        return v * v
    if fn == "SQRT":
        return extern("sqrtf", v)
    if fn == "RSQRT":
        return c(1.0) / extern("sqrtf", v)
    if fn == "EXP":
        return te.exp(v)
    if fn == "LOG":
        return extern("logf", v)
    if fn == "ELU":
        return tirx.Select(v < c(0.0), te.exp(v) - c(1.0), v)
    if fn == "RELU_0_TO_1":
        # x > 1 ? 1 : x < 0 ? 0 : x, as LiteRT: -0.0 stays -0.0 (a max(x, 0) of C's may not keep it)
        return tirx.Select(v > c(1.0), c(1.0), tirx.Select(v < c(0.0), c(0.0), v))
    if fn == "FLOOR":
        return extern("floorf", v)
    if fn == "GELU" and approximate:
        cube = c(0.044715) * v * v * v  # 0.044715 has 5 digits: the immediate is exact
        return c(0.5) * v * (c(1.0) + extern("tanhf", constants[1] * (v + cube)))
    if fn == "GELU":
        return c(0.5) * v * extern("erfcf", v * constants[0])
    raise ValueError(fn)


def _int32_value(fn: str, v):
    from tvm import tirx

    if fn == "ABS":
        return tirx.Select(v < 0, tirx.const(0, "int32") - v, v)
    return tirx.const(0, "int32") - v  # NEG


def _compute(spec):
    from tvm import te

    a = spec.attrs
    dtype = spec.params[0].dtype
    x = te.placeholder((a["size"],), dtype, name="input")
    constants = te.placeholder((2,), "float32", name="constants") if a["fn"] == "GELU" else None
    if dtype == "int32":
        out = te.compute(x.shape, lambda i: _int32_value(a["fn"], x[i]), name="output")
    else:
        out = te.compute(x.shape, lambda i: _float_value(a["fn"], x[i], a.get("approximate", False), constants),
                         name="output")
    return [x, *([constants] if constants is not None else []), out]


def _cast_compute(spec):
    from tvm import te, tirx

    src, dst = spec.params[0].dtype, spec.params[1].dtype
    x = te.placeholder((spec.attrs["size"],), "int8" if src == "bool" else src, name="input")

    def value(i):
        if dst == "bool":
            return tirx.Select(x[i] != tirx.const(0, x.dtype), tirx.const(1, "int8"), tirx.const(0, "int8"))
        return x[i].astype(dst)

    return [x, te.compute(x.shape, value, name="output")]


def _schedule(sch, spec):
    factor = spec.knobs.get("unroll", 1)
    if factor > 1:
        (loop,) = sch.get_loops(sch.get_sblock("output"))
        _, inner = sch.split(loop, [None, factor])
        sch.unroll(inner)


def _knob_space(spec):
    n = spec.attrs["size"]
    return {"unroll": [1] + [f for f in (4, 8) if n % f == 0]}


FAMILIES = {"math_unary": KernelFamily(_compute, _schedule, _knob_space),
            "cast": KernelFamily(_cast_compute, _schedule, _knob_space)}
