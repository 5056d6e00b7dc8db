"""SUM, REDUCE_MAX, REDUCE_MIN, REDUCE_PROD end to end: single-op .tflite -> import -> lower -> TVM C
-> gcc -> compare with LiteRT (BUILTIN_REF). int8 bit-exact; float32 SUM/PROD within 1e-5 relative
(the order is LiteRT's, so in practice exact), MAX/MIN exact.

int8 SUM: LiteRT 2.3.0 reads the input codes as unsigned bytes (see ops/reduce_more.py), so the
comparisons with it use codes >= 0 and results in [0, 127]; the numpy model, checked against LiteRT
there, covers the rest."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.reduce_more import reduce_float_reference, sum_int8_reference
from tinykiln.tflite import load

AXES = [[1], [0, 2], [-1], [2, 0], [0, 1, 2], [1, -1]]


def _model(kind, shape, axes, keep_dims, dtype, in_q=None, out_q=None):
    rank = len(shape)
    resolved = sorted({a % rank for a in axes})
    out_shape = [1 if d in resolved else n for d, n in enumerate(shape)] if keep_dims else \
        [n for d, n in enumerate(shape) if d not in resolved]
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=in_q, name="x")
    ax = mb.const(np.asarray(axes, np.int32))
    y = mb.tensor(out_shape, dtype, quant=out_q, name="y")
    mb.op(kind, [x, ax], [y], keep_dims=keep_dims)
    return mb.build([x], [y])


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


def _shape(rng):
    return tuple(int(v) for v in rng.integers(1, 6, size=3))


@pytest.mark.parametrize("seed", range(6))
def test_int8_max_min(seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape, axes, keep = _shape(rng), AXES[seed % len(AXES)], seed % 3 != 1
    kind = ("REDUCE_MAX", "REDUCE_MIN")[seed % 2]
    q = (0.05, int(rng.integers(-128, 128)))
    model = _model(kind, shape, axes, keep, "int8", q, q)
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(reduce_float_reference(kind, x, axes, keep), want)


@pytest.mark.parametrize("seed", range(8))
def test_int8_sum(seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape, axes, keep = _shape(rng), AXES[seed % len(AXES)], seed % 3 != 1
    count = int(np.prod([shape[a % 3] for a in set(a % 3 for a in axes)]))
    in_q = (float(rng.uniform(0.01, 0.1)), int(rng.integers(-20, 20)))
    if seed % 4 == 0:
        out_q = in_q  # still rescaled (by exactly 1): small codes keep the sums in range
        x = rng.integers(0, max(2, 100 // count), size=shape).astype(np.int8)
    else:
        out_q = (in_q[0] * count * float(rng.uniform(0.6, 1.5)), int(rng.integers(-10, 10)))
        x = rng.integers(0, 128, size=shape).astype(np.int8)
    model = _model("SUM", shape, axes, keep, "int8", in_q, out_q)
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    # where LiteRT 2.3 reads int8 SUM right: results in [0, 127] (it clamps to [0, 255])
    ours = sum_int8_reference(x, axes, keep, in_q, out_q)
    fits = (ours >= 0) & (ours < 127)
    assert fits.mean() > 0.3
    np.testing.assert_array_equal(got[fits], want[fits])
    np.testing.assert_array_equal(ours[fits], want[fits])
    # negative codes and saturation: the kernel against the numpy model
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    (got,) = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, sum_int8_reference(x, axes, keep, in_q, out_q))


@pytest.mark.parametrize("kind", ["SUM", "REDUCE_MAX", "REDUCE_MIN", "REDUCE_PROD"])
@pytest.mark.parametrize("axes,keep", [([1, 2], True), ([0], False), ([0, 1, 2, 3], False)])
def test_float32(kind, axes, keep, tmp_path):
    shape = (2, 3, 4, 3)
    model = _model(kind, shape, axes, keep, "float32")
    x = np.random.default_rng(len(axes)).uniform(-2, 2, size=shape).astype(np.float32)
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reduce_float_reference(kind, x, axes, keep), want, rtol=1e-6, atol=1e-7)


def test_int8_max_with_another_quantization_is_rejected():
    model = _model("REDUCE_MAX", (2, 3), [1], False, "int8", (0.05, 0), (0.1, 0))
    with pytest.raises(KilnError, match="quantized like the input"):
        load(model)


def test_int8_prod_is_rejected():
    model = _model("REDUCE_PROD", (2, 3), [1], False, "int8", (0.05, 0), (0.1, 0))
    with pytest.raises(KilnError, match="REDUCE_PROD"):
        load(model)
