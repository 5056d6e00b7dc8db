"""MINIMUM, MAXIMUM against LiteRT (BUILTIN_REF): broadcasting, constant operands (clip_by_value as
converters write it: a rank-0 constant bound), int8 / int32 bit-exact, float32 exact."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
import modelgen as mg
from kernelrun import check_against_litert
from tinykiln import KilnError, ops
from tinykiln.ops import compare

SHAPES = [((1, 5, 4, 3), (1, 5, 4, 3)), ((1, 5, 4, 3), (1, 1, 1, 3)), ((2, 6), (6,)), ((1, 3, 1, 4), (1, 1, 5, 1)),
          ((7,), ())]


def _model(kind, dtype, seed, out_dtype=None, const_b=False, quant=None):
    mb = mg.ModelBuilder(seed)
    sa, sb = SHAPES[seed % len(SHAPES)]
    q = quant or (mb.activation_quant() if dtype == "int8" else None)
    a = mb.tensor(sa, dtype, quant=q, name="a")
    if const_b:
        data = mb.rng.uniform(-2, 2, size=sb) if dtype == "float32" else mb.rng.integers(-60, 60, size=sb)
        b = mb.tensor(sb, dtype, quant=q, data=data, name="b")
    else:
        other = mb.activation_quant() if dtype == "int8" and seed % 2 else q
        b = mb.tensor(sb, dtype, quant=other, name="b")
    shape = tuple(np.broadcast_shapes(sa, sb))
    out_dtype = out_dtype or dtype
    y = mb.tensor(shape, out_dtype, quant=q if out_dtype == "int8" else None, name="y")
    mb.op(kind, [a, b], [y])
    return mb, [a] if const_b else [a, b], [y]


@pytest.mark.parametrize("seed", range(1, 5))
@pytest.mark.parametrize("dtype", ["int8", "float32", "int32"])
@pytest.mark.parametrize("kind", ["MINIMUM", "MAXIMUM"])
def test_minmax(kind, dtype, seed, tmp_path):
    check_against_litert(*_model(kind, dtype, seed, const_b=seed == 3), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5, 20))
@pytest.mark.parametrize("dtype", ["int8", "float32", "int32"])
@pytest.mark.parametrize("kind", ["MINIMUM", "MAXIMUM", *compare.COMPARISONS])
def test_minmax_and_comparisons_more(kind, dtype, seed, tmp_path):
    out = "bool" if kind in compare.COMPARISONS else None
    check_against_litert(*_model(kind, dtype, seed, out_dtype=out, const_b=seed % 5 == 3), tmp_path)


@pytest.mark.parametrize("kind", ["MINIMUM", "MAXIMUM"])
def test_minmax_clip_by_value(kind, tmp_path):
    """As ST's EfficientNet writes clip_by_value: int8 [1, 1, 1, C] against a rank-0 constant bound,
    one quantization throughout; the bound is a const param of the kernel."""
    mb = mg.ModelBuilder(1)
    q = (0.03137255, -1)
    x = mb.tensor((1, 1, 1, 16), "int8", quant=q, name="x")
    bound = mb.tensor((), "int8", quant=q, data=np.int8(126 if kind == "MINIMUM" else -128), name="bound")
    y = mb.tensor((1, 1, 1, 16), "int8", quant=q, name="y")
    mb.op(kind, [x, bound], [y])
    lowered = check_against_litert(mb, [x], [y], tmp_path, seeds=(0, 1, 2))
    assert [p.role for p in lowered.calls[0].spec.params] == ["input", "const", "output"]


def test_minmax_float_specials(tmp_path):
    """Ties of -0.0 and 0.0, infinities and NaN give what LiteRT's el1 > el2 ? el1 : el2 gives."""
    mb = mg.ModelBuilder(0)
    a = mb.tensor((8,), "float32", name="a")
    b = mb.tensor((8,), "float32", name="b")
    y = mb.tensor((8,), "float32", name="y")
    mb.op("MAXIMUM", [a, b], [y])
    model = mb.build([a, b], [y])
    va = np.float32([0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, np.nan, 3.0])
    vb = np.float32([-0.0, 0.0, 1.0, 1.0, 2.0, np.nan, np.nan, 3.0])
    graph = kernelrun.load_graph(model)
    (got,) = kernelrun.run_lowered(graph, ops.lower(graph), [va, vb], tmp_path)
    (want,) = mg.reference_run(model, [va, vb])
    assert got.tobytes() == want.tobytes()
    assert want.tobytes() == compare.minmax_reference("MAXIMUM", va, vb).tobytes()


def test_minmax_mixed_dtypes_are_rejected():
    mb = mg.ModelBuilder(0)
    a = mb.tensor((4,), "float32", name="a")
    b = mb.tensor((4,), "int32", name="b")
    y = mb.tensor((4,), "float32", name="y")
    mb.op("MINIMUM", [a, b], [y])
    with pytest.raises(KilnError, match="MINIMUM"):
        kernelrun.load_graph(mb.build([a, b], [y]))


# -- comparisons, logical ops, SELECT / SELECT_V2 ---------------------------------------------------

@pytest.mark.parametrize("dtype,seed", [("int8", 1), ("int8", 2), ("float32", 1), ("int32", 2)])
@pytest.mark.parametrize("kind", compare.COMPARISONS)
def test_comparison(kind, dtype, seed, tmp_path):
    """int8 operands of two quantizations (seed 1: compared by real value) and of one, against a
    constant (seed 2); the shapes broadcast."""
    check_against_litert(*_model(kind, dtype, seed, out_dtype="bool", const_b=seed == 2), tmp_path)


@pytest.mark.parametrize("kind", ["EQUAL", "NOT_EQUAL"])
def test_comparison_of_bools(kind, tmp_path):
    check_against_litert(*_model(kind, "bool", 1, out_dtype="bool"), tmp_path)


@pytest.mark.parametrize("kind", compare.COMPARISONS)
def test_int8_comparison_every_code_pair(kind, tmp_path):
    """Scales that make the rescaling round neighbouring codes together: every code against every code."""
    codes = np.arange(-128, 128, dtype=np.int64)
    a, b = (m.astype(np.int8) for m in np.meshgrid(codes, codes, indexing="ij"))
    qa, qb = (0.0021, 7), (0.0034, -100)
    mb = mg.ModelBuilder(0)
    x1, x2 = mb.tensor(a.shape, "int8", quant=qa), mb.tensor(a.shape, "int8", quant=qb)
    y = mb.tensor(a.shape, "bool")
    mb.op(kind, [x1, x2], [y])
    model = mb.build([x1, x2], [y])
    (want,) = mg.reference_run(model, [a, b])
    np.testing.assert_array_equal(compare.comparison_reference(kind, a, b, qa, qb), want)
    graph = kernelrun.load_graph(model)
    (got,) = kernelrun.run_lowered(graph, ops.lower(graph), [a, b], tmp_path)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["LOGICAL_AND", "LOGICAL_OR"])
def test_logical(kind, seed, tmp_path):
    check_against_litert(*_model(kind, "bool", seed, const_b=seed == 2), tmp_path)


def test_logical_not(tmp_path):
    mb = mg.ModelBuilder(0)
    x = mb.tensor((3, 7), "bool", name="x")
    y = mb.tensor((3, 7), "bool", name="y")
    mb.op("LOGICAL_NOT", [x], [y])
    check_against_litert(mb, [x], [y], tmp_path)


SELECT_SHAPES = [((2, 3, 4), (2, 3, 4), (2, 3, 4)), ((1, 3, 1), (2, 1, 4), (4,)), ((), (5, 2), (5, 1)),
                 ((2, 1), (2, 6), ())]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", ["int8", "float32", "int32"])
def test_select_v2(dtype, seed, tmp_path):
    mb = mg.ModelBuilder(seed)
    sc, sx, sy = SELECT_SHAPES[seed]
    q = mb.activation_quant() if dtype == "int8" else None
    cond = mb.tensor(sc, "bool", name="cond")
    x = mb.tensor(sx, dtype, quant=q, name="x")
    y = mb.tensor(sy, dtype, quant=q, data=np.arange(np.prod(sy, dtype=int)).reshape(sy) % 50 if seed == 3 else None,
                  name="y")
    out = mb.tensor(np.broadcast_shapes(sc, sx, sy), dtype, quant=q, name="out")
    mb.op("SELECT_V2", [cond, x, y], [out])
    check_against_litert(mb, [cond, x] if seed == 3 else [cond, x, y], [out], tmp_path)


@pytest.mark.parametrize("cond_shape", [(3, 4, 2), (3,)], ids=["same shape", "rank-1 along dim 0"])
def test_select(cond_shape, tmp_path):
    mb = mg.ModelBuilder(2)
    q = mb.activation_quant()
    cond = mb.tensor(cond_shape, "bool", name="cond")
    x, y = mb.tensor((3, 4, 2), "int8", quant=q, name="x"), mb.tensor((3, 4, 2), "int8", quant=q, name="y")
    out = mb.tensor((3, 4, 2), "int8", quant=q, name="out")
    mb.op("SELECT", [cond, x, y], [out])
    check_against_litert(mb, [cond, x, y], [out], tmp_path, seeds=(0, 1, 2))


def test_int8_comparison_with_scale_one_or_more_is_rejected():
    mb = mg.ModelBuilder(0)
    a, b = mb.tensor((4,), "int8", quant=(1.5, 0)), mb.tensor((4,), "int8", quant=(0.1, 0))
    y = mb.tensor((4,), "bool")
    mb.op("LESS", [a, b], [y])
    with pytest.raises(KilnError, match="scale 1.5 >= 1"):
        kernelrun.load_graph(mb.build([a, b], [y]))


def test_select_shapes_that_do_not_fit_are_rejected():
    mb = mg.ModelBuilder(0)
    cond = mb.tensor((4,), "bool")
    x, y = mb.tensor((3, 4), "float32"), mb.tensor((3, 4), "float32")
    out = mb.tensor((3, 4), "float32")
    mb.op("SELECT", [cond, x, y], [out])
    with pytest.raises(KilnError, match=r"condition \[4\] and values \[3, 4\], \[3, 4\] do not fit SELECT"):
        kernelrun.load_graph(mb.build([cond, x, y], [out]))
