"""uint8 end-to-end graphs (TF1 style) on the int8 kernels (tflite/uint8.py), bit-exact with LiteRT's
uint8 reference kernels, with uint8 at the API."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg
from kernelrun import check_against_litert

from tinykiln import KilnError
from tinykiln.tflite import load


def _act(mb, shape, zp=None, scale=None, name=None):
    scale = scale if scale is not None else float(np.exp(mb.rng.uniform(np.log(0.01), np.log(0.1))))
    zp = int(mb.rng.integers(0, 256)) if zp is None else zp
    return mb.tensor(shape, "uint8", quant=(scale, zp), name=name)


def test_uint8_tensors_become_int8_inside_and_stay_uint8_at_the_api():
    mb = mg.ModelBuilder(0)
    a, b = _act(mb, (1, 4, 4, 3), 120, name="a"), _act(mb, (1, 4, 4, 3), 7, name="b")
    y = _act(mb, (1, 4, 4, 3), 130, name="y")
    mb.op("ADD", [a, b], [y])
    g = load(mb.build([a, b], [y]))
    # the file's tensors keep their indices (as int8, zero point - 128); the API's are new uint8 ones
    assert [(t.name, t.dtype, t.quant.zero_point, t.from_uint8) for t in g.tensors] == [
        ("a/int8", "int8", (-8,), True), ("b/int8", "int8", (-121,), True), ("y/int8", "int8", (2,), True),
        ("a", "uint8", (120,), False), ("b", "uint8", (7,), False), ("y", "uint8", (130,), False)]
    assert g.inputs == [3, 4] and g.outputs == [5]
    # the file's op keeps its index; the edges are numbered after it, in execution order
    assert [(op.index, op.kind, op.inputs, op.outputs) for op in g.ops] == [
        (1, "QUANTIZE", [3], [0]), (2, "QUANTIZE", [4], [1]), (0, "ADD", [0, 1], [2]), (3, "QUANTIZE", [2], [5])]


def test_uint8_input_quantized_by_the_model_is_read_as_it_is(tmp_path):
    """ST's export: uint8 input -> QUANTIZE -> int8 graph, int8 -> QUANTIZE -> uint8 output: no edge
    op is added, the model's own QUANTIZE ops read and write uint8."""
    mb = mg.ModelBuilder(1)
    x = _act(mb, (1, 6, 6, 2), 128, scale=1 / 255, name="x")
    q = mg.quantize(mb, x, quant=(0.02, -5))
    r = mg.unary(mb, "RELU", q)
    y = _act(mb, (1, 6, 6, 2), 3, scale=0.03, name="y")
    mb.op("QUANTIZE", [r], [y])
    g = load(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == ["QUANTIZE", "RELU", "QUANTIZE"]
    assert g.tensor(g.inputs[0]).dtype == "uint8" and g.tensor(g.outputs[0]).dtype == "uint8"
    check_against_litert(mb, [x], [y], tmp_path)


@pytest.mark.parametrize("seed", range(3))
def test_uint8_add_sub_mul(seed, tmp_path):
    mb = mg.ModelBuilder(seed)
    shape = (1, 3, 5, 4)
    a, b = _act(mb, shape), _act(mb, (1, 1, 5, 4) if seed == 2 else shape)
    outs = []
    for kind, act in (("ADD", "NONE"), ("SUB", "RELU"), ("MUL", "RELU6")):
        y = _act(mb, shape)
        mb.op(kind, [a, b], [y], activation=act)
        outs.append(y)
    check_against_litert(mb, [a, b], outs, tmp_path)


def test_uint8_and_int8_activations_do_not_mix():
    mb = mg.ModelBuilder(2)
    a = _act(mb, (1, 4), 100)
    b = mb.input((1, 4), "int8")
    y = _act(mb, (1, 4), 100)
    mb.op("ADD", [a, b], [y])
    with pytest.raises(KilnError, match="mixes int8 and uint8 activations"):
        load(mb.build([a, b], [y]))
