"""QUANTIZE and DEQUANTIZE between uint8, int8, int16 and float32 (ops/quantize.py): single-op models
imported, lowered, compiled with gcc and compared bit for bit with LiteRT (BUILTIN_REF). 8-bit inputs
run every code; int16 inputs run their whole range's corners and a seeded sample."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import quantize

RANGES = quantize.RANGES


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _quant(rng, dtype):
    lo, hi = RANGES[dtype]
    if dtype == "int16":
        # int16 activations are symmetric in TFLite's 16x8 scheme; keep a few asymmetric ones too
        return _log_uniform(rng, 1e-5, 1e-2), int(rng.choice([0, 0, int(rng.integers(-300, 300))]))
    if dtype == "int32":
        return _log_uniform(rng, 1e-6, 1e-3), 0
    return _log_uniform(rng, 0.002, 0.5), int(rng.integers(lo, hi + 1))


def _model(kind, shape, dtype_in, dtype_out, in_q, out_q):
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype_in, quant=in_q, name="x")
    y = mb.tensor(shape, dtype_out, quant=out_q, name="y")
    mb.op(kind, [x], [y])
    return mb.build([x], [y])


def _inputs(dtype, rng, n=600):
    if dtype in ("int8", "uint8"):
        lo, hi = RANGES[dtype]
        codes = np.arange(lo, hi + 1)
        return np.concatenate([codes, rng.integers(lo, hi + 1, n - codes.size)]).astype(dtype).reshape(2, -1)
    corners = np.array([-32768, -32767, -1, 0, 1, 32766, 32767])
    return np.concatenate([corners, rng.integers(-32768, 32768, n - corners.size)]).astype(np.int16).reshape(2, -1)


def _run(model, x, tmp_path):
    graph = kernelrun.load_graph(model)
    (got,) = kernelrun.run_lowered(graph, ops.lower(graph), [x], tmp_path)
    (want,) = reference_run(model, [x])
    return got, want


INTEGER_CASTS = [("uint8", "int8"), ("int8", "uint8"), ("uint8", "uint8"), ("int16", "int8"),
                 ("int16", "int16"), ("int16", "int32")]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype_in,dtype_out", INTEGER_CASTS)
def test_requantize_bit_exact(dtype_in, dtype_out, seed, tmp_path):
    rng = np.random.default_rng(seed)
    in_q, out_q = _quant(rng, dtype_in), _quant(rng, dtype_out)
    if dtype_in == dtype_out == "int16":  # LiteRT's rule
        in_q, out_q = (in_q[0], 0), (out_q[0], 0)
    if seed == 0 and {dtype_in, dtype_out} == {"uint8", "int8"}:
        # ST's exports: the same scale, zero points 128 apart (LiteRT's XOR-0x80 fast path)
        out_q = (in_q[0], in_q[1] - 128 if dtype_in == "uint8" else in_q[1] + 128)
        out_q = (out_q[0], int(np.clip(out_q[1], *RANGES[dtype_out])))
    x = _inputs(dtype_in, rng)
    got, want = _run(_model("QUANTIZE", x.shape, dtype_in, dtype_out, in_q, out_q), x, tmp_path)
    assert got.dtype == want.dtype == np.dtype(dtype_out)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype_out", ["uint8", "int16"])
def test_quantize_float_bit_exact(dtype_out, seed, tmp_path):
    rng = np.random.default_rng(seed)
    scale, zp = _quant(rng, dtype_out)
    lo, hi = RANGES[dtype_out]
    s = np.float32(scale)
    ties = (np.arange(-150, 150, dtype=np.float32) + np.float32(0.5)) * s
    span = (hi - lo) * 1.2 * float(s)
    x = np.concatenate([rng.uniform(-span, span, 700).astype(np.float32), ties,
                        np.float32([0.0, -0.0, (hi - zp) * s, (lo - zp) * s])]).reshape(1, -1)
    got, want = _run(_model("QUANTIZE", x.shape, "float32", dtype_out, None, (scale, zp)), x, tmp_path)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("dtype_in", ["uint8", "int16"])
def test_dequantize_bit_exact(dtype_in, seed, tmp_path):
    rng = np.random.default_rng(seed)
    in_q = _quant(rng, dtype_in)
    if dtype_in == "int16":  # LiteRT's rule
        in_q = (in_q[0], 0)
    x = _inputs(dtype_in, rng)
    got, want = _run(_model("DEQUANTIZE", x.shape, dtype_in, "float32", in_q, None), x, tmp_path)
    np.testing.assert_array_equal(got, want)


def test_numpy_models_match_litert_over_every_8bit_code():
    """The table's numpy model itself, over many scales: cheap, so many seeds."""
    rng = np.random.default_rng(7)
    for _ in range(40):
        for dtype_in, dtype_out in (("uint8", "int8"), ("int8", "uint8")):
            in_q, out_q = _quant(rng, dtype_in), _quant(rng, dtype_out)
            x = _inputs(dtype_in, rng, 256)
            (want,) = reference_run(_model("QUANTIZE", x.shape, dtype_in, dtype_out, in_q, out_q), [x])
            np.testing.assert_array_equal(quantize.requantize(x, *in_q, *out_q, dtype_out), want)


def test_uint8_to_int8_is_one_table_kernel():
    model = _model("QUANTIZE", (1, 8, 8, 3), "uint8", "int8", (0.02, 128), (0.02, 0))
    lowered = ops.lower(kernelrun.load_graph(model))
    (call,) = lowered.calls
    assert call.spec.family == "cast_lut"
    np.testing.assert_array_equal(call.args[1], (np.arange(256) - 128).astype(np.int8))


@pytest.mark.parametrize("kind,dtype_in,dtype_out,message", [
    ("QUANTIZE", "float32", "int32", "QUANTIZE from float32 to int32 is not supported"),
    ("QUANTIZE", "int8", "int32", "QUANTIZE from int8 to int32 is not supported"),  # (int8 -> int16: 16x8)
    ("DEQUANTIZE", "int32", "float32", "DEQUANTIZE from int32"),
])
def test_unsupported_pairs_are_named(kind, dtype_in, dtype_out, message):
    in_q = None if dtype_in == "float32" else (0.1, 0)
    out_q = None if dtype_out == "float32" else (0.1, 0)
    with pytest.raises(KilnError, match=message):
        kernelrun.load_graph(_model(kind, (1, 4), dtype_in, dtype_out, in_q, out_q))


def test_uint8_without_quantization_is_rejected():
    with pytest.raises(KilnError, match="uint8 tensor 'x' has no quantization parameters"):
        kernelrun.load_graph(_model("QUANTIZE", (1, 4), "uint8", "int8", None, (0.1, 0)))


@pytest.mark.parametrize("kind,dtype_out", [("DEQUANTIZE", "float32"), ("QUANTIZE", "int16")])
def test_int16_zero_point_rules_of_litert(kind, dtype_out):
    out_q = None if dtype_out == "float32" else (0.001, 0)
    model = _model(kind, (1, 4), "int16", dtype_out, (0.001, 3), out_q)
    with pytest.raises(RuntimeError, match="zero_point"):
        reference_run(model, [np.zeros((1, 4), np.int16)])
    with pytest.raises(KilnError, match="needs int16 zero points 0, 'x' has 3"):
        kernelrun.load_graph(model)
