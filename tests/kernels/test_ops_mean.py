"""MEAN end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with LiteRT
(BUILTIN_REF). int8 bit-exact; float32 within 1e-5 relative."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import ops


AXES = [[1, 2], [2, 1], [3], [1], [0, 1, 2, 3], [-1, 1], [0]]


def _model(shape, axes, keep_dims, dtype, in_q, out_q):
    rank = len(shape)
    resolved = sorted({a % rank for a in axes})
    out_shape = [1 if d in resolved else n for d, n in enumerate(shape)] if keep_dims else \
        [n for d, n in enumerate(shape) if d not in resolved]
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=in_q, name="x")
    ax = mb.const(np.asarray(axes, np.int32))
    y = mb.tensor(out_shape, dtype, quant=out_q, name="y")
    mb.op("MEAN", [x, ax], [y], keep_dims=keep_dims)
    return mb.build([x], [y])


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


@pytest.mark.parametrize("seed", range(14))
def test_int8_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 8, size=4))
    axes = AXES[seed % len(AXES)]
    keep_dims = seed % 4 != 1
    in_q = (float(np.exp(rng.uniform(np.log(0.005), np.log(0.2)))), int(rng.integers(-128, 128)))
    out_q = in_q if seed % 3 == 0 else (float(np.exp(rng.uniform(np.log(0.005), np.log(0.2)))),
                                        int(rng.integers(-128, 128)))
    model = _model(shape, axes, keep_dims, "int8", in_q, out_q)
    for x in (rng.integers(-128, 128, size=shape).astype(np.int8), np.full(shape, 127, np.int8),
              np.full(shape, -128, np.int8)):
        (got,) = _run(model, [x], tmp_path)
        np.testing.assert_array_equal(got, reference_run(model, [x])[0])


def test_int8_global_average_pool_shape(tmp_path):
    """The MobileNet-style head: 4-D input, axes (1, 2), keep_dims."""
    shape = (1, 7, 7, 32)
    model = _model(shape, [1, 2], True, "int8", (0.05, -10), (0.02, 5))
    x = np.random.default_rng(9).integers(-128, 128, size=shape).astype(np.int8)
    (got,) = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


@pytest.mark.parametrize("shape,axes", [((1, 1, 5, 3), [1, 2]), ((1, 4, 1, 3), [0, 2]), ((2, 3, 1, 1), [3])])
def test_int8_unit_reduced_dims(shape, axes, tmp_path):
    model = _model(shape, axes, True, "int8", (0.05, 3), (0.03, -2))
    x = np.random.default_rng(2).integers(-128, 128, size=shape).astype(np.int8)
    (got,) = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


@pytest.mark.parametrize("axes", [[1, 2], [3], [0, 2]])
def test_float32(axes, tmp_path):
    shape = (2, 5, 6, 3)
    model = _model(shape, axes, True, "float32", None, None)
    x = np.random.default_rng(4).uniform(-3, 3, size=shape).astype(np.float32)
    (got,) = _run(model, [x], tmp_path)
    np.testing.assert_allclose(got, reference_run(model, [x])[0], rtol=1e-5, atol=1e-6)
