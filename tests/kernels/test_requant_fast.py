"""The fused requantization forms of tinykiln.fixedpoint.fused (what every int8 CONV_2D, DEPTHWISE_CONV_2D,
FULLY_CONNECTED, ADD, SUB and MUL output goes through) against TFLite's MultiplyByQuantizedMultiplier:
the identities on random and exhaustive inputs (numpy models), the generated C on the host (the
portable twin of runtime/kernels/tk_rq.h), and models with edge-case quantization (per-channel shifts
with rs = 0 and with a left shift, which take the generic form; fused activations; accumulators
near the bounds) bit-exact with LiteRT on the host and on the emulated Cortex-M7 (SMMLAR/SSAT)."""
from __future__ import annotations

import ctypes
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import modelgen as mg
from tinykiln.fixedpoint import fused
from tinykiln.fixedpoint import reference as ref

M_MIN, M_END = 1 << 30, 1 << 31


# ---------------------------------------------------------------- double rounding (convolutions)

def _want_double(x, m, shift, zp):
    return ref.multiply_by_quantized_multiplier(x, m, shift) + zp


@settings(max_examples=400, deadline=None)
@given(x=st.integers(-(1 << 30), (1 << 30) - 1), m=st.one_of(st.just(0), st.integers(M_MIN, M_END - 1)),
       shift=st.integers(-22, -1), zp=st.integers(-128, 127))
def test_fused_double_matches_tflite(x, m, shift, zp):
    shift1 = fused.fused_double_shift(m, shift)
    assert shift1 is not None
    assert int(fused.requantize_fused_double(x, m, shift1, zp)) == int(_want_double(x, m, shift, zp))


@pytest.mark.parametrize("m", [0, M_MIN, M_MIN + 1, 3 << 29, M_END - 1, 1518500250])
def test_fused_double_around_every_tie(m):
    """Every x in a window (the ties of both roundings: x * m + 2^30 a multiple of 2^31 for m =
    2^30, then RoundingDivideByPOT's halves) and at the ends of the accepted range, every shift."""
    x = np.concatenate([np.arange(-70000, 70000), np.arange(-(1 << 30), -(1 << 30) + 4096),
                        np.arange((1 << 30) - 4096, 1 << 30)])
    for shift in range(-22, 0):
        shift1 = fused.fused_double_shift(m, shift)
        for zp in (-128, -1, 0, 37, 127):
            got = fused.requantize_fused_double(x, m, shift1, zp)
            assert np.array_equal(got, _want_double(x, m, shift, zp)), (shift, zp)


def test_fused_double_shift_refuses_what_it_cannot_do():
    assert fused.fused_double_shift(M_MIN, 0) is None    # rs = 0: RoundingDivideByPOT is x itself
    assert fused.fused_double_shift(M_MIN, 2) is None    # a left shift (multiplier > 1)
    assert fused.fused_double_shift(M_MIN, -23) is None  # the rounding constant would pass 2^30
    assert fused.fused_double_shift(M_MIN - 1, -3) is None
    assert fused.fused_double_shift(M_MIN, -1) == 0 and fused.fused_double_shift(0, 0) == 0


# ---------------------------------------------------------------- single rounding (fully connected)

@settings(max_examples=400, deadline=None)
@given(acc=st.integers(-(1 << 24), 1 << 24), bias=st.integers(-(1 << 26), 1 << 26),
       m=st.one_of(st.just(0), st.integers(M_MIN, M_END - 1)), shift=st.integers(-24, 0),
       zp=st.integers(-128, 127))
def test_fused_single_matches_tflite(acc, bias, m, shift, zp):
    assert fused.fused_single_fits(1 << 24, bias, m, shift, zp)
    offset = fused.fused_single_offset(bias, m, shift, zp)
    want = ref.multiply_by_quantized_multiplier_single(acc + bias, m, shift) + zp
    assert int(fused.requantize_fused_single(acc, m, offset, shift)[0]) == int(want)


def test_fused_single_fits_refuses_overflow():
    assert not fused.fused_single_fits(1 << 31, 0, M_MIN, -1, 0)         # acc + bias could wrap
    assert not fused.fused_single_fits(1 << 30, (1 << 30) + 5, M_MIN, -1, 0)
    assert not fused.fused_single_fits(1 << 20, 0, M_END - 1, -32, 127)  # total shift 63
    assert fused.fused_single_fits(1 << 20, 1000, M_END - 1, -20, -128)


# ---------------------------------------------------------------- the generated C on the host

@pytest.fixture(scope="module")
def fused_library(tmp_path_factory):
    """The TE expressions with per-element loads (per-channel style) and with constants (per-tensor
    style), through base.requantize, compiled by host gcc -Werror."""
    import tvm
    from tvm import te

    from kernelrun import ROOT
    from tinykiln.codegen import HEADER, c_function
    from tinykiln.kernel import Param
    from tinykiln.ops.epilogue import requantize

    n = 4096
    sources = []
    x, m, s = (te.placeholder((n,), "int32", name=k) for k in ("x", "m", "s"))
    off = te.placeholder((n,), "int64", name="off")
    p = {k: Param(k, "int32", (n,), "input") for k in ("x", "m", "s")}
    p["off"] = Param("off", "int64", (n,), "input")
    p["out"] = Param("out", "int8", (n,), "output")

    def emit(name, tensors, params, fn):
        out = te.compute((n,), fn, name="out")
        func = tvm.s_tir.Schedule(te.create_prim_func([*tensors, out])).mod["main"]
        sources.append(c_function(func, name, params))

    attrs = {"output_zp": -7, "act": [-128, 127]}
    emit("double_loads", [x, m, s], [p["x"], p["m"], p["s"], p["out"]],
         lambda i: requantize(x[i], attrs, m[i], s[i]))
    emit("double_const", [x], [p["x"], p["out"]],
         lambda i: requantize(x[i], dict(attrs, multiplier=1518500250, shift=-9, act=[-3, 90])))
    single = dict(attrs, rounding="single")
    emit("single_loads", [x, m, s, off], [p["x"], p["m"], p["s"], p["off"], p["out"]],
         lambda i: requantize(x[i], single, m[i], s[i], offset=off[i]))
    emit("single_const", [x, off], [p["x"], p["off"], p["out"]],
         lambda i: requantize(x[i], dict(single, multiplier=1234567890, shift=-3), offset=off[i]))
    work = tmp_path_factory.mktemp("fused")
    src = work / "fused.c"
    src.write_text(f'#include "{HEADER}"\n' + "\n".join(sources))
    lib = work / "fused.so"
    subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
                    f"-I{ROOT / 'runtime' / 'include'}", f"-I{ROOT / 'runtime' / 'kernels'}",
                    "-o", str(lib), str(src)], check=True)
    return ctypes.CDLL(str(lib)), n


def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


def _clamp(v, lo=-128, hi=127):
    return np.clip(v, lo, hi).astype(np.int8)


def test_double_rounding_c_matches_tflite(fused_library):
    lib, n = fused_library
    rng = np.random.default_rng(0)
    xs = rng.integers(-(1 << 30), 1 << 30, n)
    xs[:8] = [0, -1, 1, -(1 << 30), (1 << 30) - 1, 12345, -12345, 3]
    ms = rng.integers(M_MIN, M_END, n)
    shifts = rng.integers(-22, 0, n)
    ms[:4] = 0
    x, m = xs.astype(np.int32), ms.astype(np.int32)
    s = np.array([fused.fused_double_shift(int(a), int(b)) for a, b in zip(ms, shifts)], np.int32)
    out = np.zeros(n, np.int8)
    lib.double_loads(_ptr(x), _ptr(m), _ptr(s), _ptr(out))
    assert np.array_equal(out, _clamp(_want_double(xs, ms, shifts, -7)))
    # constants, with a narrower activation range; small x so that not everything saturates
    xs = np.concatenate([np.arange(-2048, 2048) * 97, [-(1 << 30), (1 << 30) - 1]])[:n]
    x = xs.astype(np.int32)
    lib.double_const(_ptr(x), _ptr(out))
    assert np.array_equal(out, _clamp(_want_double(xs, 1518500250, -9, -7), -3, 90))


def test_single_rounding_c_matches_tflite(fused_library):
    lib, n = fused_library
    rng = np.random.default_rng(1)
    acc = rng.integers(-(1 << 24), 1 << 24, n)
    bias = rng.integers(-(1 << 20), 1 << 20, n)
    ms = rng.integers(M_MIN, M_END, n)
    shifts = rng.integers(-24, 0, n)  # per-channel: shift <= -1
    offs = np.array([fused.fused_single_offset(int(b), int(a), int(s), -7) for b, a, s in zip(bias, ms, shifts)])
    x, m, off = acc.astype(np.int32), ms.astype(np.int32), offs.astype(np.int64)
    post = (-1 - shifts).astype(np.int32)
    out = np.zeros(n, np.int8)
    lib.single_loads(_ptr(x), _ptr(m), _ptr(post), _ptr(off), _ptr(out))
    want = ref.multiply_by_quantized_multiplier_single(acc + bias, ms, shifts) + -7
    assert np.array_equal(out, _clamp(want))
    small = (acc >> 12).astype(np.int32)
    offs = np.array([fused.fused_single_offset(int(b), 1234567890, -3, -7) for b in bias], np.int64)
    lib.single_const(_ptr(small), _ptr(offs), _ptr(out))
    want = ref.multiply_by_quantized_multiplier_single(small.astype(np.int64) + bias, 1234567890, -3) - 7
    assert np.array_equal(out, _clamp(want))


# ---------------------------------------------------------------- edge-case models vs LiteRT

def _layer(mb, kind, x, out_channels, kernel, w_scales, out_scale, out_zp, activation, bias, seed):
    """CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED with chosen weight scales (one per output
    channel, or one), output quantization and biases (random below a limit, or given): the
    multipliers are in_scale * w_scale / out_scale, so the shifts are chosen too."""
    rng = np.random.default_rng(seed)
    in_scale = float(mb.quants[x][0])
    shape = mb.shapes[x]
    per_channel = len(w_scales) > 1
    if kind == "CONV_2D":
        w_shape, axis = (out_channels, kernel[0], kernel[1], shape[3]), 0
        out_shape = (shape[0], shape[1], shape[2], out_channels)
    elif kind == "DEPTHWISE_CONV_2D":
        w_shape, axis = (1, kernel[0], kernel[1], out_channels), 3
        out_shape = (shape[0], shape[1], shape[2], out_channels)
    else:
        w_shape, axis = (out_channels, shape[-1]), 0
        out_shape = (shape[0], out_channels)
    w_quant = (w_scales, [0] * len(w_scales), axis) if per_channel else (w_scales[0], 0)
    w = mb.tensor(w_shape, "int8", quant=w_quant, data=rng.integers(-127, 128, w_shape), name=f"w{seed}")
    b_scales = [in_scale * float(np.float32(s)) for s in w_scales]
    b_quant = (b_scales, [0] * len(b_scales), 0) if per_channel else (b_scales[0], 0)
    b = mb.tensor((out_channels,), "int32", quant=b_quant,
                  data=rng.integers(-bias, bias + 1, out_channels) if np.isscalar(bias) else bias,
                  name=f"b{seed}")
    y = mb.tensor(out_shape, "int8", quant=(out_scale, out_zp), name=f"y{seed}")
    options = {"activation": activation}
    if kind != "FULLY_CONNECTED":
        options.update(padding="SAME", stride=(1, 1))
    if kind == "DEPTHWISE_CONV_2D":
        options["depth_multiplier"] = 1
    mb.op(kind, [x, w, b], [y], **options)
    return y


def _edge_model():
    """Each layer's multipliers (in_scale * w_scale / out_scale, in_scale the previous out_scale)
    say which path it takes; the comments name it."""
    mb = mg.ModelBuilder(11)
    x = mb.input((1, 5, 6, 3), "int8", quant=(0.05, 3), name="input")
    # per-channel, multipliers 2^-13 .. 0.9: rs 13 .. 0 (rs = 0 -> generic form), RELU
    y = _layer(mb, "CONV_2D", x, 5, (3, 3), [0.0001, 0.002, 0.01, 0.05, 0.09], 0.005, -20, "RELU", 2000, 1)
    # per-channel, a multiplier of 1.2 (a left shift -> generic form), RELU6
    y = _layer(mb, "CONV_2D", y, 7, (3, 1), [0.01, 15.0, 0.03, 0.004, 0.05, 0.06, 0.007], 0.0625, -128,
               "RELU6", 3000, 2)
    # per-channel, fused: multipliers 2^-5 .. 2^-1, large biases (accumulators near 2^26)
    y = _layer(mb, "DEPTHWISE_CONV_2D", y, 7, (3, 3), [0.01, 0.02, 0.015, 0.03, 0.04, 0.011, 0.05], 3.0,
               5, "NONE", 1 << 26, 3)
    # per-tensor, RELU_N1_TO_1, a bias beyond the fused bound (|acc + bias| < 2^30): generic form
    big = [(1 << 30) - 9, -(1 << 30) + 9, 5, -40000, 100, (1 << 29), 0]
    y = _layer(mb, "DEPTHWISE_CONV_2D", y, 7, (2, 2), [0.02], 0.5, 0, "RELU_N1_TO_1", big, 4)
    # per-tensor, multiplier in [0.5, 1) (rs = 0 -> generic form)
    y = _layer(mb, "CONV_2D", y, 4, (1, 1), [0.7], 0.5, 1, "NONE", 100, 5)
    # per-tensor, fused, small multiplier, RELU
    y = _layer(mb, "CONV_2D", y, 6, (2, 3), [0.003], 0.02, -3, "RELU", 5000, 6)
    flat = mb.tensor((1, 5 * 6 * 6), "int8", quant=mb.quants[y], name="flat")
    mb.op("RESHAPE", [y, mb.const([1, 5 * 6 * 6])], [flat], new_shape=[1, 5 * 6 * 6])
    # FULLY_CONNECTED per-tensor (fused single rounding), then per-channel with a shift of 0 on one
    # unit (multiplier 0.6: generic form), then per-channel fused
    y = _layer(mb, "FULLY_CONNECTED", flat, 9, None, [0.004], 0.3, 10, "NONE", 20000, 7)
    y = _layer(mb, "FULLY_CONNECTED", y, 6, None, [0.01, 0.02, 0.003, 0.6, 0.04, 0.001], 0.3, -1, "RELU", 500, 8)
    y = _layer(mb, "FULLY_CONNECTED", y, 5, None, [0.01, 0.02, 0.003, 0.005, 0.0001], 0.2, 4, "RELU6", 500, 9)
    # ADD with a constant (fused output requantization), SUB with an output scale so large that
    # its multiplier's shift passes 22 (generic), MUL
    c = mb.tensor((1, 5), "int8", quant=(0.05, -3), data=[-128, -40, 0, 77, 127], name="c")
    added = mb.tensor((1, 5), "int8", quant=(0.1, 2), name="added")
    mb.op("ADD", [y, c], [added], activation="RELU")
    diff = mb.tensor((1, 5), "int8", quant=(0.02 * 2 ** 20, 0), name="diff")
    mb.op("SUB", [added, y], [diff])
    product = mb.tensor((1, 5), "int8", quant=(0.07, -9), name="product")
    mb.op("MUL", [added, y], [product])
    return mb, x, [y, added, diff, product]


EDGE_PATHS = ["tflite", "tflite", "fused", "tflite", "tflite", "fused", "fused", "tflite", "fused"]


def test_edge_model_takes_both_paths_and_matches_litert(tmp_path):
    from kernelrun import check_against_litert

    mb, x, ys = _edge_model()
    lowered = check_against_litert(mb, [x], ys, tmp_path, seeds=(0, 1, 2))
    paths = [c.spec.attrs.get("requant", "fused") for c in lowered.calls]
    assert paths[:len(EDGE_PATHS)] == EDGE_PATHS
    assert [c.spec.family for c in lowered.calls[len(EDGE_PATHS):]] == ["add_int8", "sub_int8", "mul_int8"]


@pytest.mark.parametrize("board", ["mps2-an500", "host", pytest.param("mps2-an386", marks=pytest.mark.slow),
                                   pytest.param("pynq-z1", marks=pytest.mark.slow)])
def test_edge_model_on_boards(scons, tmp_path, board):
    """The DSP twin (SMMLAR, SSAT) on the emulated Cortex-M7 (and M4); the portable one on the host
    (and the Cortex-A9)."""
    mb, x, ys = _edge_model()
    model = tmp_path / "edge.tflite"
    model.write_bytes(mb.build([x], ys))
    result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0")
    assert result.returncode == 0, result.output[-3000:]
    assert "validation PASS" in result.output, result.output[-3000:]
