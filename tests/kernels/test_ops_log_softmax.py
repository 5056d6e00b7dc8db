"""LOG_SOFTMAX end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF). int8 bit-exact; float32 within 1e-5 relative."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.log_softmax import log_softmax_float_reference, log_softmax_int8_reference
from tinykiln.tflite import load


def _model(shape, dtype, in_q=None, out_q=(16 / 256, 127)):
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=in_q, name="x")
    y = mb.tensor(shape, dtype, quant=out_q if dtype == "int8" else None, name="y")
    mb.op("LOG_SOFTMAX", [x], [y])
    return mb.build([x], [y])


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


@pytest.mark.parametrize("seed", range(4))
def test_int8_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    depth = int(rng.choice([1, 2, 10, 37, 256]))
    shape = (int(rng.integers(1, 3)), 3, depth)
    scale = float(np.exp(rng.uniform(np.log(0.002), np.log(1.0))))
    model = _model(shape, "int8", (scale, int(rng.integers(-128, 128))))
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    rows = x.reshape(-1, depth)
    rows[0] = 7  # all equal
    rows[1] = -128
    rows[1, 0] = 127  # one hot at the extremes
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(log_softmax_int8_reference(x, scale), want)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 16))
def test_int8_bit_exact_more(seed, tmp_path):
    test_int8_bit_exact(seed, tmp_path)


@pytest.mark.parametrize("depth", [1, 10, 100])
def test_float32(depth, tmp_path):
    shape = (2, depth)
    model = _model(shape, "float32")
    x = np.random.default_rng(depth).uniform(-10, 10, size=shape).astype(np.float32)
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_softmax_float_reference(x), want, rtol=1e-5, atol=1e-5)


def test_int8_wrong_output_quantization_is_rejected():
    with pytest.raises(KilnError, match="16/256"):
        load(_model((1, 8), "int8", (0.05, 0), (1 / 256, -128)))
