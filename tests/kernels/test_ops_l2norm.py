"""L2_NORMALIZATION end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF). int8 bit-exact; float32 within 1e-6 relative (LiteRT's order: in practice
exact)."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.l2norm import l2norm_float_reference, l2norm_int8_reference
from tinykiln.tflite import load


def _model(shape, dtype, in_q=None, out_q=(1 / 128, 0)):
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=in_q, name="x")
    y = mb.tensor(shape, dtype, quant=out_q if dtype == "int8" else None, name="y")
    mb.op("L2_NORMALIZATION", [x], [y])
    return mb.build([x], [y])


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


@pytest.mark.parametrize("seed", range(6))
def test_int8_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    depth = int(rng.choice([1, 2, 5, 16, 128, 600]))
    shape = (int(rng.integers(1, 3)), 4, depth)
    zp = int(rng.integers(-128, 128))
    model = _model(shape, "int8", (0.05, zp))
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    rows = x.reshape(-1, depth)
    rows[0] = zp  # a zero row (acc = 0)
    rows[1] = np.clip(zp + rng.integers(-1, 2, size=depth), -128, 127)  # tiny norms: a left shift
    rows[2, :] = zp
    rows[2, 0] = np.clip(zp + 1, -128, 127)  # acc = 1
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(l2norm_int8_reference(x, zp), want)


@pytest.mark.parametrize("depth", [1, 7, 64])
def test_float32(depth, tmp_path):
    shape = (3, depth)
    model = _model(shape, "float32")
    x = np.random.default_rng(depth).normal(size=shape).astype(np.float32)
    x[0] = 0.0
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(l2norm_float_reference(x), want, rtol=1e-6, atol=1e-7)


def test_int8_wrong_output_quantization_is_rejected():
    with pytest.raises(KilnError, match="scale 1/128"):
        load(_model((1, 8), "int8", (0.05, 0), (0.01, 0)))


def test_fused_activation_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", name="x")
    y = mb.tensor((1, 4), "float32", name="y")
    mb.op("L2_NORMALIZATION", [x], [y], activation="RELU")
    with pytest.raises(KilnError, match="fused activation RELU"):
        load(mb.build([x], [y]))
