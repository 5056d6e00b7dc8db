"""SOFTMAX end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with LiteRT
(BUILTIN_REF). int8 bit-exact; float32 within 1e-5 relative."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops


def _model(shape, dtype, in_q, out_q, beta):
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=in_q, name="x")
    y = mb.tensor(shape, dtype, quant=out_q, name="y")
    mb.op("SOFTMAX", [x], [y], beta=beta)
    return mb.build([x], [y])


def _run(model, inputs, workdir, knobs=None):
    graph = kernelrun.load_graph(model)
    lowered = ops.lower(graph, knobs)
    return kernelrun.run_lowered(graph, lowered, inputs, workdir), lowered


def _int8_rows(rng, shape):
    x = rng.integers(-128, 128, size=shape).astype(np.int8)
    flat = x.reshape(-1, shape[-1])
    flat[0] = 127  # all equal
    if len(flat) > 1:
        flat[1] = -128
        flat[1, 0] = 127  # one hot at the extremes
    if len(flat) > 2:
        flat[2] = np.resize(np.int8([-128, 127]), shape[-1])
    return x


@pytest.mark.parametrize("seed", range(10))
def test_int8_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    depth = int(rng.choice([1, 2, 10, 12, 35, 100, 256]))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 4)), depth)
    in_scale = float(np.exp(rng.uniform(np.log(0.002), np.log(2.0))))
    beta = float(rng.choice([1.0, rng.uniform(0.1, 5.0)]))
    model = _model(shape, "int8", (in_scale, int(rng.integers(-128, 128))), (1 / 256, -128), beta)
    x = _int8_rows(rng, shape)
    (got,), _ = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 60))
def test_int8_bit_exact_more(seed, tmp_path):
    test_int8_bit_exact(seed, tmp_path)


@pytest.mark.parametrize("in_scale,beta", [(1.0, 1e4), (1e-4, 1.0), (0.5, 100.0)])
def test_int8_extreme_scaling(in_scale, beta, tmp_path):
    shape = (3, 64)
    model = _model(shape, "int8", (in_scale, 0), (1 / 256, -128), beta)
    x = _int8_rows(np.random.default_rng(0), shape)
    (got,), _ = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


def test_int8_one_class(tmp_path):
    model = _model((3, 1), "int8", (0.1, 0), (1 / 256, -128), 1.0)
    x = np.int8([[-128], [0], [127]])
    (got,), _ = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


def test_int8_every_knob_value(tmp_path):
    from tinykiln.ops import knob_space, workload_key

    shape = (2, 12)
    model = _model(shape, "int8", (0.05, 4), (1 / 256, -128), 1.0)
    x = _int8_rows(np.random.default_rng(1), shape)
    (ref,) = reference_run(model, [x])
    graph = kernelrun.load_graph(model)
    spec = ops.lower(graph).calls[0].spec
    for unroll in knob_space(spec)["unroll"]:
        (got,), lowered = _run(model, [x], tmp_path / str(unroll), {workload_key(spec): {"unroll": unroll}})
        assert lowered.calls[0].spec.knobs == {"unroll": unroll}
        np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("seed", range(3))
def test_float32(seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = (2, int(rng.integers(1, 40)))
    beta = float(rng.uniform(0.3, 3.0))
    model = _model(shape, "float32", None, None, beta)
    x = rng.uniform(-10, 10, size=shape).astype(np.float32)
    (got,), _ = _run(model, [x], tmp_path)
    np.testing.assert_allclose(got, reference_run(model, [x])[0], rtol=1e-5, atol=1e-7)


def test_int8_wrong_output_quantization_is_rejected():
    model = _model((1, 10), "int8", (0.1, 0), (1 / 128, 0), 1.0)
    with pytest.raises(KilnError, match="SOFTMAX"):
        ops.lower(kernelrun.load_graph(model))


def _model_int8_to_int16(shape, in_q, beta):
    mb = ModelBuilder()
    x = mb.tensor(shape, "int8", quant=in_q, name="x")
    y = mb.tensor(shape, "int16", quant=(1 / 65536, -32768), name="y")
    mb.op("SOFTMAX", [x], [y], beta=beta)
    return mb.build([x], [y])


@pytest.mark.parametrize("seed", range(4))
def test_int8_to_int16_bit_exact(seed, tmp_path):
    """int8 in, int16 out (the keyword models' last layer): the same kernel, a 16-bit output stage."""
    rng = np.random.default_rng(100 + seed)
    depth = int(rng.choice([2, 3, 12, 40]))
    shape = (int(rng.integers(1, 3)), depth)
    in_scale = float(np.exp(rng.uniform(np.log(0.01), np.log(0.5))))
    model = _model_int8_to_int16(shape, (in_scale, int(rng.integers(-128, 128))), float(rng.choice([1.0, 0.7])))
    x = _int8_rows(rng, shape)
    (got,), _ = _run(model, [x], tmp_path)
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


def test_float32_to_int16_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", name="x")
    y = mb.tensor((1, 4), "int16", quant=(1 / 65536, -32768), name="y")
    mb.op("SOFTMAX", [x], [y], beta=1.0)
    with pytest.raises(KilnError, match="SOFTMAX from float32 to int16"):
        kernelrun.load_graph(mb.build([x], [y]))
