"""SQUARED_DIFFERENCE, DIV, FLOOR_DIV, FLOOR_MOD, PRELU against LiteRT (BUILTIN_REF) over seeded shapes
and quantizations, with broadcasting and constant operands: int8 / int32 bit-exact, float32 within
1e-5 relative (1e-6 absolute near zero)."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
import modelgen as mg
from tinykiln import KilnError, ops
from tinykiln.ops import binary_math

SHAPES = [((1, 5, 4, 3), (1, 5, 4, 3)), ((1, 5, 4, 3), (1, 1, 1, 3)), ((2, 6), (6,)), ((1, 3, 1, 4), (1, 1, 5, 1)),
          ((7,), ())]
DIVIDES = ("DIV", "FLOOR_DIV", "FLOOR_MOD")


def _values(mb, index, seed, divisor_of=None):
    """Seeded operand values; a divisor never 0 (LiteRT stops on it), for int8 as a stored value."""
    v = mg.random_input(mb, index, seed=seed)
    if divisor_of is not None and v.dtype != np.float32:
        v = np.where(v == 0, 1, v).astype(v.dtype)
    return v


def _check(mb, inputs, y, kind, workdir, seeds=(0, 1), consts=()):
    model = mb.build(inputs, [y])
    graph = kernelrun.load_graph(model)
    lowered = ops.lower(graph)
    for seed in seeds:
        values = [_values(mb, i, seed + 17 * k, divisor_of=kind if k == 1 and kind in DIVIDES else None)
                  for k, i in enumerate(inputs)]
        (want,) = mg.reference_run(model, values)
        (got,) = kernelrun.run_lowered(graph, lowered, values, workdir)
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype == np.float32:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
        else:
            np.testing.assert_array_equal(got, want)
    return lowered


def _model(kind, dtype, seed, const_b=False):
    mb = mg.ModelBuilder(seed)
    sa, sb = SHAPES[seed % len(SHAPES)]
    if kind == "PRELU" and tuple(np.broadcast_shapes(sa, sb)) != sa:
        sb = sa[-1:]  # LiteRT broadcasts alpha to the input only (one alpha per channel, here)
    a = mb.input(sa, dtype, name="a")
    if const_b:
        data = mb.rng.uniform(0.05, 0.6, size=sb) if dtype == "float32" else mb.rng.integers(1, 60, size=sb)
        b = mb.tensor(sb, dtype, quant=mb.activation_quant() if dtype == "int8" else None, data=data, name="b")
    else:
        b = mb.input(sb, dtype, name="b")
    shape = tuple(np.broadcast_shapes(sa, sb))
    y = mb.input(shape, dtype, name="y")
    options = {"activation": ["NONE", "RELU", "RELU6"][seed % 3] if dtype == "float32" else "NONE"} \
        if kind == "DIV" else {}
    mb.op(kind, [a, b], [y], **options)
    return mb, [a] if const_b else [a, b], y


CASES = [(kind, dtype) for kind in binary_math.KINDS for dtype, _ in binary_math.DTYPES[kind]]


@pytest.mark.parametrize("seed", [0, 1, 3])
@pytest.mark.parametrize("kind,dtype", CASES)
def test_binary_math(kind, dtype, seed, tmp_path):
    mb, inputs, y = _model(kind, dtype, seed, const_b=seed == 3)
    _check(mb, inputs, y, kind, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 20))
@pytest.mark.parametrize("kind,dtype", CASES)
def test_binary_math_more(kind, dtype, seed, tmp_path):
    mb, inputs, y = _model(kind, dtype, seed, const_b=seed % 4 == 3)
    _check(mb, inputs, y, kind, tmp_path)


@pytest.mark.parametrize("kind", ["SQUARED_DIFFERENCE", "PRELU"])
def test_int8_quantizations_far_apart(kind, tmp_path):
    """Scales far apart and zero points at both ends: the rescaling tables and multipliers."""
    for k, (s1, s2, so) in enumerate([(0.5, 0.002, 0.9), (0.01, 0.2, 0.0004), (0.05, 0.05, 0.05)]):
        mb = mg.ModelBuilder(k)
        a = mb.input((3, 17), "int8", quant=(s1, -128), name="a")
        b = mb.input((17,), "int8", quant=(s2, 127), name="b")
        y = mb.input((3, 17), "int8", quant=(so, 5), name="y")
        mb.op(kind, [a, b], [y])
        _check(mb, [a, b], y, kind, tmp_path / str(k), seeds=(0,))


def test_int8_models_match_litert():
    """The numpy models of the int8 kernels (the oracles of the docs) against LiteRT, every code pair."""
    codes = np.arange(-128, 128, dtype=np.int64)
    a, b = (m.astype(np.int8) for m in np.meshgrid(codes, codes, indexing="ij"))
    qs = ((0.04, -3), (0.07, 20), (0.1, -9))
    for kind, model in (("SQUARED_DIFFERENCE", binary_math.squared_difference_reference),
                        ("PRELU", binary_math.prelu_reference)):
        mb = mg.ModelBuilder(0)
        x1 = mb.tensor(a.shape, "int8", quant=qs[0])
        x2 = mb.tensor(a.shape, "int8", quant=qs[1])
        y = mb.tensor(a.shape, "int8", quant=qs[2])
        mb.op(kind, [x1, x2], [y])
        (want,) = mg.reference_run(mb.build([x1, x2], [y]), [a, b])
        np.testing.assert_array_equal(model(a, b, *qs), want)


def test_int8_div_is_rejected_naming_the_dtypes():
    mb = mg.ModelBuilder(0)
    a, b = mb.input((4,), "int8"), mb.input((4,), "int8")
    y = mb.input((4,), "int8")
    mb.op("DIV", [a, b], [y], activation="NONE")
    with pytest.raises(KilnError, match=r"DIV.*int8 activations are not supported \(float32 or int32\)"):
        kernelrun.load_graph(mb.build([a, b], [y]))


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("dtype", ["float32", "int32"])
def test_add_n(dtype, count, tmp_path):
    mb = mg.ModelBuilder(count)
    xs = [mb.input((2, 3, 5), dtype, name=f"x{k}") for k in range(count)]
    const = mb.tensor((2, 3, 5), dtype, data=mb.rng.integers(-9, 9, size=(2, 3, 5)), name="c") if count == 4 else None
    y = mb.input((2, 3, 5), dtype, name="y")
    mb.op("ADD_N", xs + ([const] if const is not None else []), [y])
    _check(mb, xs, y, "ADD_N", tmp_path)


def test_int8_add_n_is_rejected_naming_the_dtypes():
    mb = mg.ModelBuilder(0)
    xs = [mb.input((4,), "int8") for _ in range(2)]
    y = mb.input((4,), "int8")
    mb.op("ADD_N", xs, [y])
    with pytest.raises(KilnError, match=r"ADD_N.*int8 activations are not supported \(float32 or int32\)"):
        kernelrun.load_graph(mb.build(xs, [y]))


def _rejected(mb, inputs, outputs, match):
    with pytest.raises(KilnError, match=match):
        kernelrun.load_graph(mb.build(inputs, outputs))


def test_import_rejections_name_the_problem():
    mb = mg.ModelBuilder(0)
    x, alpha = mb.input((1, 4), "float32"), mb.input((3, 4), "float32")
    y = mb.input((3, 4), "float32")
    mb.op("PRELU", [x, alpha], [y])
    _rejected(mb, [x, alpha], [y], r"alpha \[3, 4\] must broadcast to the input \[1, 4\]")

    mb = mg.ModelBuilder(0)
    a, b = mb.input((2, 4), "int32"), mb.input((4,), "int32")
    y = mb.input((2, 4), "int32")
    mb.op("ADD_N", [a, b], [y])
    _rejected(mb, [a, b], [y], "ADD_N's inputs must have one shape")

    mb = mg.ModelBuilder(0)
    a, b = mb.input((2, 4), "float32"), mb.input((3, 4), "float32")
    y = mb.input((3, 4), "float32")
    mb.op("FLOOR_MOD", [a, b], [y])
    _rejected(mb, [a, b], [y], r"input shapes \[2, 4\] and \[3, 4\] do not broadcast")


@pytest.mark.parametrize("kind", ["FLOOR_DIV", "FLOOR_MOD", "DIV"])
def test_float_quotients_near_integers(kind, tmp_path):
    """Quotients that float rounds onto an integer and double does not (0.3f / 0.1f), signs mixed,
    and a zero dividend: bit for bit with LiteRT and the numpy models."""
    a = np.float32([0.3, -0.3, 0.3, 0.7, -0.7, 1.0, -0.0, 0.0, 5.5, -5.5, 1e-3, 7.0])
    b = np.float32([0.1, 0.1, -0.1, 0.1, 0.1, 3.0, 2.0, -2.0, 2.5, 2.5, -1e-4, 7.0])
    mb = mg.ModelBuilder(0)
    x1, x2 = mb.tensor(a.shape, "float32"), mb.tensor(a.shape, "float32")
    y = mb.tensor(a.shape, "float32")
    mb.op(kind, [x1, x2], [y], **({"activation": "NONE"} if kind == "DIV" else {}))
    model = mb.build([x1, x2], [y])
    graph = kernelrun.load_graph(model)
    (got,) = kernelrun.run_lowered(graph, ops.lower(graph), [a, b], tmp_path)
    (want,) = mg.reference_run(model, [a, b])
    assert got.tobytes() == want.tobytes()
    if kind != "DIV":
        model_fn = binary_math.floor_div_reference if kind == "FLOOR_DIV" else binary_math.floor_mod_reference
        assert model_fn(a, b).tobytes() == want.tobytes()
