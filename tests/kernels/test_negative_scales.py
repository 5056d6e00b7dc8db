"""Negative per-channel weight scales (MCUNet's models): CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED
with some channels' weight (and bias) scales negative, compiled and run bit-exact against LiteRT
(BUILTIN_REF); the importer negates those channels (tinykiln/tflite/scales.py)."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
import modelgen
from modelgen import ModelBuilder, conv2d, depthwise_conv2d, fully_connected, random_input, reference_run
from tinykiln import KilnError, ops


def _negate_scales(model, op_index, channels):
    """Make the scales of `channels` of the op's weights and bias negative, in the ModelT."""
    sg = model.subgraphs[0]
    op = sg.operators[op_index]
    for position in (1, 2):
        if position < len(op.inputs) and op.inputs[position] >= 0:
            q = sg.tensors[op.inputs[position]].quantization
            q.scale = [-s if (c in channels or len(q.scale) == 1 and channels) else s for c, s in enumerate(q.scale)]
    return modelgen.pack(model)


def _layer(kind, seed, per_channel=True):
    mb = ModelBuilder(seed=seed)
    if kind == "FULLY_CONNECTED":
        x = mb.input((2, 24), "int8", name="x")
        y = fully_connected(mb, x, 7, per_channel=per_channel, activation="RELU" if seed % 2 else "NONE")
    elif kind == "CONV_2D":
        x = mb.input((1, 7, 6, 5), "int8", name="x")
        y = conv2d(mb, x, 6, (3, 3), stride=(1, 2), padding="SAME", per_channel=per_channel)
    else:
        x = mb.input((1, 7, 6, 4), "int8", name="x")
        y = depthwise_conv2d(mb, x, (3, 3), depth_multiplier=2, padding="VALID", per_channel=per_channel)
    return mb, x, y


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"])
def test_negative_channel_scales_bit_exact(kind, seed, tmp_path):
    mb, x, y = _layer(kind, seed)
    channels = {0, 2, 3} if seed == 0 else set(int(c) for c in np.flatnonzero(mb.rng.integers(0, 2, 6)))
    model = _negate_scales(mb.model([x], [y]), 0, channels)
    inputs = [random_input(mb, x, seed=seed)]
    graph = kernelrun.load_graph(model)
    got = kernelrun.run_lowered(graph, ops.lower(graph), inputs, tmp_path)
    np.testing.assert_array_equal(got[0], reference_run(model, inputs)[0])


@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_negative_per_tensor_scale_bit_exact(kind, tmp_path):
    mb, x, y = _layer(kind, 4, per_channel=False)
    model = _negate_scales(mb.model([x], [y]), 0, {0})
    inputs = [random_input(mb, x, seed=1)]
    graph = kernelrun.load_graph(model)
    got = kernelrun.run_lowered(graph, ops.lower(graph), inputs, tmp_path)
    np.testing.assert_array_equal(got[0], reference_run(model, inputs)[0])


def test_negative_per_tensor_fully_connected_scale_is_refused_as_litert_does():
    mb, x, y = _layer("FULLY_CONNECTED", 4, per_channel=False)
    model = _negate_scales(mb.model([x], [y]), 0, {0})
    with pytest.raises(RuntimeError, match="input_product_scale >= 0"):
        reference_run(model, [random_input(mb, x)])
    with pytest.raises(KilnError, match="per-tensor weight scale .* is negative"):
        kernelrun.load_graph(model)


def test_weight_minus_128_in_a_negative_channel_is_refused():
    mb, x, y = _layer("CONV_2D", 1)
    model = mb.model([x], [y])
    sg = model.subgraphs[0]
    w = model.buffers[sg.tensors[sg.operators[0].inputs[1]].buffer]
    w.data = w.data.copy()
    w.data[1, 0, 0, 0] = -128
    with pytest.raises(KilnError, match=r"hold -128 in channel 1, whose scale is negative"):
        kernelrun.load_graph(_negate_scales(model, 0, {1}))


def test_negative_activation_scale_is_refused():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "int8", quant=(-0.1, 0), name="x")
    y = mb.tensor((1, 4), "int8", quant=(0.1, 0), name="y")
    mb.op("RELU", [x], [y])
    with pytest.raises(KilnError, match="tensor 'x' quantization scale is negative"):
        kernelrun.load_graph(mb.build([x], [y]))


def test_negative_scale_on_a_constant_operand_is_refused():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "int8", quant=(0.1, 0), name="x")
    c = mb.tensor((1, 4), "int8", quant=(-0.1, 0), data=[[1, 2, 3, 4]], name="c")
    y = mb.tensor((1, 4), "int8", quant=(0.1, 0), name="y")
    mb.op("ADD", [x, c], [y])
    with pytest.raises(KilnError, match=r"op 0 ADD \(output 'y'\): activation 'c' has scale -0.1"):
        kernelrun.load_graph(mb.build([x], [y]))


def test_a_minus_two_to_the_31_multiplier_is_refused():
    """s_in * s_w / s_out = -(1 - 2^-46): QuantizeMultiplier rounds its mantissa to -2^31 and keeps it."""
    mb = ModelBuilder(seed=2)
    x = mb.tensor((1, 3, 3, 2), "int8", quant=(1 + 2.0**-23, 0), name="x")
    w = mb.tensor((2, 1, 1, 2), "int8", quant=([-(1 - 2.0**-23), 0.5], [0, 0], 0), data=np.ones((2, 1, 1, 2)))
    y = mb.tensor((1, 3, 3, 2), "int8", quant=(1.0, 0), name="y")
    mb.op("CONV_2D", [x, w, -1], [y], padding="SAME", stride=(1, 1))
    with pytest.raises(KilnError, match="channel 0's negative multiplier is exactly -2\\^31"):
        kernelrun.load_graph(mb.build([x], [y]))
