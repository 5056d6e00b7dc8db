"""AVERAGE_POOL_2D and MAX_POOL_2D: int8, int16 (16x8 quantization: the int8 arithmetic over the int16
range, as reference_integer_ops' int16 pools) and float32, SAME/VALID, fused activation.

As TFLite's reference kernels, a window covers only the taps inside the image: padding is never
read, and the average divides by the number of taps inside. int8 average: the int32 sum divided
by that count, rounded half away from zero ((sum +- count/2) / count, C division); uint8 graphs
(tflite/uint8.py) round half up as LiteRT's uint8 average does (attr rounding="half_up", where a
window has an even count: only ties differ); float average: sum / count. The output keeps the
input's quantization (TFLite requires it), so no rescaling; the activation clamp uses the output
quantization.
Knobs: int8: microkernel (default on: the whole layer is one call of tk_mk_maxpool_s8 /
tk_mk_avgpool_s8, runtime/kernels/tk_mk_pool.h: four channels per word with the DSP instructions);
off: the TVM loop nest, tuned by oc_tile (channels reduced together) and unroll. float32 and int16:
oc_tile, unroll.
"""
from __future__ import annotations

from tinykiln.fixedpoint.prepare import activation_range_int16
from tinykiln.kernel import KernelCall

from .accumulate import divisors_up_to, schedule_accumulate
from .base import KernelFamily, param, quant_params, unsupported
from .epilogue import clamp_float, float_act_attr, int8_act_attr
from .rules import window_padding

KINDS = {"AVERAGE_POOL_2D": "avg", "MAX_POOL_2D": "max"}


def lower_pool(ctx, op):
    x_index = op.inputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(op.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    fh, fw = op.attrs["filter"]
    stride = tuple(op.attrs.get("stride", (1, 1)))
    padding = op.attrs.get("padding", "VALID")
    attrs = {
        "in_shape": [n, h, w, c], "out_shape": [n, oh, ow, c], "kernel": [fh, fw], "stride": list(stride),
        "pad": [*window_padding(padding, h, fh, stride[0], 1, oh), *window_padding(padding, w, fw, stride[1], 1, ow)],
    }
    activation = op.attrs.get("activation", "NONE")
    kind = KINDS[op.kind]
    if x.dtype == "int8":
        in_q, out_q = quant_params(x, "input", op), quant_params(y, "output", op)
        if in_q != out_q:
            raise unsupported(op, "int8 pooling with different input and output quantization")
        attrs["act"] = int8_act_attr(activation, out_q[0], out_q[1], op)
        if kind == "avg" and x.from_uint8 and _some_count_even(attrs):
            # LiteRT's uint8 average rounds its (never negative) sum half up: on int8 codes, a
            # floor division of sum + count / 2; the int8 rounding differs on ties only
            attrs["rounding"] = "half_up"
    elif x.dtype == "int16":
        # 16x8: as int8 over the int16 range (reference_integer_ops' int16 pools)
        in_q, out_q = quant_params(x, "input", op), quant_params(y, "output", op)
        if in_q != out_q:
            raise unsupported(op, "int16 pooling with different input and output quantization")
        try:
            attrs["act"] = list(activation_range_int16(activation, *out_q))
        except ValueError:
            raise unsupported(op, f"fused activation {activation}") from None
    elif x.dtype == "float32":
        attrs["act"] = float_act_attr(activation, op)
    else:
        raise unsupported(op, f"input type {x.dtype}")
    params = [param("input", x.dtype, x.shape, "input"), param("output", y.dtype, y.shape, "output")]
    spec = ctx.spec(f"{kind}_pool2d_{x.dtype}", params, attrs)
    return [KernelCall(spec, op.index, [x_index, op.outputs[0]])]


def _some_count_even(attrs) -> bool:
    """Whether a window has an even number of taps inside the image (ties can then round)."""
    _, h, w, _ = attrs["in_shape"]
    _, oh, ow, _ = attrs["out_shape"]
    (fh, fw), (sh, sw) = attrs["kernel"], attrs["stride"]
    pt, _, pl, _ = attrs["pad"]
    rows = {min(r * sh - pt + fh, h) - max(r * sh - pt, 0) for r in range(oh)}
    cols = {min(s * sw - pl + fw, w) - max(s * sw - pl, 0) for s in range(ow)}
    return any(r * c % 2 == 0 for r in rows for c in cols)


def compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, _ = a["out_shape"]
    fh, fw = a["kernel"]
    sh, sw = a["stride"]
    pt, _, pl, _ = a["pad"]
    dtype = spec.params[0].dtype
    is_max = spec.family.startswith("max")
    int8 = dtype in ("int8", "int16")  # the integer path (int16: 16x8 quantization)
    x = te.placeholder((n, h, w, c), dtype, name="input")
    kh = te.reduce_axis((0, fh), name="kh")
    kw = te.reduce_axis((0, fw), name="kw")

    def tap(b, r, s, ch, fill):
        row, col = r * sh + kh - pt, s * sw + kw - pl
        inside = tirx.all(row >= 0, row < h, col >= 0, col < w)
        return tirx.if_then_else(inside, x[b, row, col, ch], fill)

    if fh == fw == 1:
        # A 1x1 window is a strided copy. (Besides, TVM 0.27's C printer caches a bare load used in
        # max() across a store to the same element when no loop separates them: a one-tap max
        # reduction followed by the clamp printed a stale value.)
        acc_type = dtype if is_max else ("int32" if int8 else "float32")
        acc = te.compute((n, oh, ow, c), lambda b, r, s, ch: x[b, r * sh - pt, s * sw - pl, ch].astype(acc_type),
                         name="acc")
    elif is_max:
        acc_type = dtype
        lowest = tirx.const(-128 if dtype == "int8" else -32768, dtype) if int8 else tirx.min_value("float32")
        acc = te.compute((n, oh, ow, c), lambda b, r, s, ch: te.max(tap(b, r, s, ch, lowest), axis=[kh, kw]),
                         name="acc")
    else:
        acc_type = "int32" if int8 else "float32"
        zero = tirx.const(0, acc_type)
        acc = te.compute((n, oh, ow, c),
                         lambda b, r, s, ch: te.sum(tap(b, r, s, ch, zero.astype(dtype)).astype(acc_type),
                                                    axis=[kh, kw]),
                         name="acc")

    def count(r, s):
        """Taps of the window at output (r, s) that fall inside the image."""
        r0, s0 = r * sh - pt, s * sw - pl
        rows = tirx.min(r0 + fh, h) - tirx.max(r0, 0)
        cols = tirx.min(s0 + fw, w) - tirx.max(s0, 0)
        return rows * cols

    def out(b, r, s, ch):
        value = acc[b, r, s, ch]
        if not is_max:
            cnt = count(r, s)
            if int8 and a.get("rounding") == "half_up":
                value = tirx.floordiv(value + tirx.truncdiv(cnt, 2), cnt)
            elif int8:
                half = tirx.truncdiv(cnt, 2)
                value = tirx.Select(value > 0, tirx.truncdiv(value + half, cnt), tirx.truncdiv(value - half, cnt))
            else:
                value = value / cnt.astype("float32")
        if int8:
            lo, hi = a["act"]
            return tirx.max(tirx.min(value.astype("int32"), hi), lo).astype(dtype)
        return clamp_float(value, a)

    output = te.compute((n, oh, ow, c), out, name="output")
    return [x, output]


def schedule(sch, spec):
    if spec.knobs.get("microkernel"):
        return _call_microkernel(sch.mod["main"], spec)
    schedule_accumulate(sch, spec, n_reduce=2)
    return None


def _call_microkernel(func, spec):
    """`func` with its body replaced by one call of the layer's micro-kernel (all of the layer's
    loops are in the C function: the pooling arithmetic needs no TVM codegen)."""
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize

    a = spec.attrs
    n, h, w, c = a["in_shape"]
    _, oh, ow, _ = a["out_shape"]
    fh, fw = a["kernel"]
    sh, sw = a["stride"]
    pt, _, pl, _ = a["pad"]
    lo, hi = a["act"]
    x, y = func.params

    def address(buf):
        return tirx.address_of(tirx.BufferLoad(buf, [0] * len(buf.shape)))

    name = "tk_mk_maxpool_s8" if spec.family.startswith("max") else "tk_mk_avgpool_s8"
    call = tirx.call_extern("int32", name, address(x), address(y), n, h, w, c, oh, ow, fh, fw, sh, sw,
                            pt, pl, lo, hi)
    realize = func.body
    root = realize.block
    block = SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, tirx.Evaluate(call), None,
                   [], root.match_buffers, root.annotations)
    body = SBlockRealize(realize.iter_values, realize.predicate, block)
    return tirx.PrimFunc(func.params, body, ret_type=func.ret_type, attrs=func.attrs)


def knob_space(spec):
    # default: the widest channel tile, unrolled (the tuner picked it for every pooling layer of
    # cifar10 on mps2-an500: 2.5-2.8x fewer instructions than one channel at a time)
    tiles = divisors_up_to(spec.attrs["out_shape"][3], 8)
    space = {"oc_tile": [tiles[-1], *tiles[:-1]], "unroll": [True, False]}
    if spec.params[0].dtype == "int8":
        # oc_tile and unroll only matter with microkernel off; the micro-kernel rounds as int8 does
        space = {"microkernel": [False] if spec.attrs.get("rounding") else [True, False], **space}
    return space


FAMILIES = {f"{kind}_pool2d_{dtype}": KernelFamily(compute, schedule, knob_space)
            for kind in ("avg", "max") for dtype in ("int8", "float32", "int16")}
