"""ADD, SUB, MUL (with broadcasting and fused activations), RESHAPE and SQUEEZE against LiteRT."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg
from kernelrun import check_against_litert

SHAPES = [((1, 5, 4, 3), (1, 5, 4, 3)), ((1, 5, 4, 3), (1, 1, 4, 3)), ((2, 6), (6,)), ((1, 3, 1, 4), (1, 1, 5, 1)),
          ((7,), (1,))]


def _binary(seed, dtype, kind):
    rng = np.random.default_rng(seed)
    mb = mg.ModelBuilder(seed)
    sa, sb = SHAPES[seed % len(SHAPES)]
    if rng.integers(2):
        sa, sb = sb, sa
    a = mb.input(sa, dtype, name="a")
    b = mb.input(sb, dtype, name="b")
    y = mg.binary(mb, kind, a, b, activation=str(rng.choice(["NONE", "RELU", "RELU6"])))
    return mb, [a, b], [y]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL"])
def test_binary_random(kind, dtype, seed, tmp_path):
    check_against_litert(*_binary(seed, dtype, kind), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5, 30))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL"])
def test_binary_random_more(kind, dtype, seed, tmp_path):
    check_against_litert(*_binary(seed, dtype, kind), tmp_path)


def test_binary_with_constant_operand(tmp_path):
    mb = mg.ModelBuilder(4)
    a = mb.input((1, 4, 4, 3), "int8", name="a")
    b = mb.tensor((1, 1, 1, 3), "int8", quant=mb.activation_quant(), data=[5, -100, 77], name="b")
    y = mg.binary(mb, "ADD", a, b)
    lowered = check_against_litert(mb, [a], [y], tmp_path)
    params = lowered.calls[0].spec.params
    # the two tables of rescaled inputs are constants too
    assert [(p.name, p.role) for p in params] == [("input1", "input"), ("input2", "const"), ("table1", "const"),
                                                  ("table2", "const"), ("output", "output")]


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL"])
@pytest.mark.parametrize("scales", [(0.02, 0.05, 0.03), (0.5, 0.0005, 0.01), (0.01, 0.012, 3.0), (0.05, 0.04, 0.0002)],
                         ids=["usual", "far apart", "output 300x (generic requantization)", "tiny output"])
@pytest.mark.parametrize("activation", ["NONE", "RELU6"])
def test_int8_binary_scales(kind, scales, activation, tmp_path):
    """int8 ADD/SUB/MUL with input and output scales far apart: the output multiplier's shift goes
    past what the fused requantization takes (output 300x: the generic form), a MUL multiplier
    above one (tiny output), zero points at both ends."""
    mb = mg.ModelBuilder(3)
    sa, sb, so = scales
    a = mb.input((2, 3, 17), "int8", quant=(sa, -128), name="a")
    b = mb.input((3, 1), "int8", quant=(sb, 127), name="b")
    y = mb.tensor((2, 3, 17), "int8", quant=(so, 5), name="y")
    mb.op(kind, [a, b], [y], activation=activation)
    check_against_litert(mb, [a, b], [y], tmp_path, seeds=(0, 1, 2))


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_reshape_and_squeeze_alias_their_input(dtype, tmp_path):
    """conv -> reshape -> squeeze-free path: the reshape costs no kernel, the bytes are shared."""
    mb = mg.ModelBuilder(2)
    x = mb.input((1, 4, 4, 2), dtype, name="input")
    y = mg.conv2d(mb, x, 3, (3, 3))
    r = mg.unary(mb, "RESHAPE", y, out_shape=(1, 48), extra_inputs=[mb.const([1, 48])])
    s = mg.unary(mb, "SQUEEZE", r, out_shape=(48,), squeeze_dims=[0])
    lowered = check_against_litert(mb, [x], [s], tmp_path)
    assert len(lowered.calls) == 1
    assert lowered.aliases == {r: y, s: y}
