"""Whole models with the converters' idioms, compiled and run against LiteRT (BUILTIN_REF): Keras'
SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE chain folded at import, Conv1D as EXPAND_DIMS + CONV_2D,
float16 weights DEQUANTIZEd at import; and that folded constants no kernel reads stay out of
weights.c."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, conv2d, fully_connected, random_input, reference_run
from tinykiln import aot, memplan, ops


def _keras_reshape(mb, x, target):
    shape = mb.tensor((len(mb.shapes[x]),), "int32", name="shape")
    mb.op("SHAPE", [x], [shape], out_type=2)
    batch = mb.tensor((), "int32", name="batch")
    mb.op("STRIDED_SLICE", [shape, mb.const([0]), mb.const([1]), mb.const([1])], [batch], shrink_axis_mask=1)
    packed = mb.tensor((len(target) + 1,), "int32", name="packed")
    mb.op("PACK", [batch] + [mb.const(d) for d in target], [packed], values_count=len(target) + 1)
    y = mb.tensor((mb.shapes[x][0], *target), mb.dtypes[x], quant=mb.quants[x], name="reshaped")
    mb.op("RESHAPE", [x, packed], [y])
    return y


def _compare(model, inputs, tmp_path, exact=True):
    graph = kernelrun.load_graph(model)
    lowered = ops.lower(graph)
    got = kernelrun.run_lowered(graph, lowered, inputs, tmp_path)
    want = reference_run(model, inputs)
    for g, w in zip(got, want):
        if exact:
            np.testing.assert_array_equal(g, w)
        else:
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return graph, lowered


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_keras_reshape_then_conv(dtype, tmp_path):
    mb = ModelBuilder(seed=3)
    x = mb.input((1, 96), dtype, name="x")
    r = _keras_reshape(mb, x, (12, 8, 1))
    y = conv2d(mb, r, 4, (3, 3), padding="SAME", activation="RELU")
    model = mb.build([x], [y])
    graph, _ = _compare(model, [random_input(mb, x, seed=1)], tmp_path, exact=dtype == "int8")
    assert [op.kind for op in graph.ops] == ["RESHAPE", "CONV_2D"]


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("axis", [1, -3])
def test_conv1d_as_expand_dims_and_conv2d(dtype, axis, tmp_path):
    mb = ModelBuilder(seed=5)
    x = mb.input((1, 20, 6), dtype, name="x")
    e = mb.tensor((1, 1, 20, 6), dtype, quant=mb.quants[x], name="expanded")
    mb.op("EXPAND_DIMS", [x, mb.const(axis)], [e])
    y = conv2d(mb, e, 5, (1, 3), padding="VALID")
    s = mb.tensor((1, 18, 5), dtype, quant=mb.quants[y], name="squeezed")
    mb.op("SQUEEZE", [y], [s], squeeze_dims=[1])
    _compare(mb.build([x], [s]), [random_input(mb, x, seed=2)], tmp_path, exact=dtype == "int8")


def test_float16_weights(tmp_path):
    mb = ModelBuilder(seed=1)
    x = mb.input((1, 8), "float32", name="x")
    w16 = mb.tensor((3, 8), "float16", data=mb.rng.normal(0, 0.5, (3, 8)), name="w16")
    w = mb.tensor((3, 8), "float32", name="w")
    mb.op("DEQUANTIZE", [w16], [w])
    b = mb.tensor((3,), "float32", data=[0.5, -0.25, 1.0])
    y = mb.tensor((1, 3), "float32", name="y")
    mb.op("FULLY_CONNECTED", [x, w, b], [y])
    graph, _ = _compare(mb.build([x], [y]), [random_input(mb, x, seed=4)], tmp_path)
    assert [op.kind for op in graph.ops] == ["FULLY_CONNECTED"]


def _weights_c(model, name="m"):
    graph = kernelrun.load_graph(model)
    lowered = ops.lower(graph)
    return aot.generate(graph, lowered, memplan.plan(graph, lowered), name, source_digest="t").weights_c


def test_folded_constants_no_kernel_reads_are_not_in_weights_c():
    def model(chain):
        mb = ModelBuilder(seed=9)
        x = mb.input((1, 32), "int8", name="x")
        h = _keras_reshape(mb, x, (32,)) if chain else x
        y = fully_connected(mb, h, 5)
        return mb.build([x], [y])

    assert _weights_c(model(True)) == _weights_c(model(False))
