"""One-input math (ABS, NEG, SQUARE, SQRT, RSQRT, EXP, LOG, ELU, GELU, RELU_0_TO_1, FLOOR) end to end
against LiteRT: int8 bit-exact over every input code, float32 exact (GELU, ELU within 1e-5 relative:
LiteRT's float kernels use Eigen's erfc/tanh/exp), int32 ABS/NEG exact. ELU is missing from
BUILTIN_REF: it is compared with LiteRT's BUILTIN kernels."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import unary_math

INT8_KINDS = ["ABS", "NEG", "SQRT", "RSQRT", "EXP", "LOG", "ELU", "GELU", "RELU_0_TO_1"]
FLOAT_KINDS = INT8_KINDS + ["SQUARE", "FLOOR"]
POSITIVE = {"SQRT", "RSQRT", "LOG"}  # LiteRT refuses negative int8 inputs of SQRT and RSQRT


def _model(kind, shape, dtype, in_q=None, out_q=None, **options):
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=in_q, name="x")
    y = mb.tensor(shape, dtype, quant=out_q, name="y")
    mb.op(kind, [x], [y], **options)
    return mb.build([x], [y])


def _litert(kind, model, inputs):
    if kind != "ELU":
        return reference_run(model, inputs)
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN)
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], inputs[0])
    interp.invoke()
    return [interp.get_tensor(interp.get_output_details()[0]["index"])]


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


def _log_uniform(rng, lo, hi):
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", INT8_KINDS)
def test_int8_every_code(kind, seed, tmp_path):
    rng = np.random.default_rng(seed)
    in_q = (_log_uniform(rng, 0.005, 0.3), int(rng.integers(-128, 128)))
    out_q = in_q if seed == 0 else (_log_uniform(rng, 0.005, 0.3), int(rng.integers(-128, 128)))
    options = {"approximate": bool(seed % 2)} if kind == "GELU" else {}
    codes = np.arange(-128, 128, dtype=np.int64)
    if kind in ("SQRT", "RSQRT"):
        codes = np.maximum(codes, in_q[1])
    x = codes.astype(np.int8).reshape(4, 64)
    model = _model(kind, x.shape, "int8", in_q, out_q, **options)
    (got,) = _run(model, [x], tmp_path)
    (want,) = _litert(kind, model, [x])
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", FLOAT_KINDS)
def test_float32(kind, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.uniform(-6, 6, size=(3, 5, 7)).astype(np.float32)
    x.flat[:6] = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5]
    if kind in POSITIVE:
        x = np.abs(x) + np.float32(1e-3)
    for approximate in ((False, True) if kind == "GELU" else (None,)):
        options = {} if approximate is None else {"approximate": approximate}
        model = _model(kind, x.shape, "float32", **options)
        (got,) = _run(model, [x], tmp_path)
        (want,) = _litert(kind, model, [x])
        if kind in ("GELU", "ELU"):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
            if kind == "GELU":  # and exactly the C library's formula of LiteRT's int8 tables
                exact = np.array([unary_math.gelu_f32(v, approximate) for v in x.reshape(-1)], np.float32)
                assert got.reshape(-1).tobytes() == exact.tobytes()
        else:
            assert got.tobytes() == want.tobytes(), kind


@pytest.mark.parametrize("kind", ["ABS", "NEG"])
def test_int32(kind, tmp_path):
    x = np.random.default_rng(2).integers(-(1 << 30), 1 << 30, size=(2, 33)).astype(np.int32)
    x.flat[:3] = [0, 1, -1]
    model = _model(kind, x.shape, "int32")
    (got,) = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


def test_rsqrt_table_fixed_point_model():
    """The numpy GetInvSqrtQuantizedMultiplierExp gives 1/sqrt(v) as multiplier * 2^shift / 2^31."""
    for v in (2, 3, 17, 255, 1 << 20, (1 << 29) + 5):
        m, shift = unary_math.inv_sqrt_multiplier_exp(v)
        assert abs(m * 2.0 ** shift / 2 ** 31 * np.sqrt(v) - 1) < 1e-5


@pytest.mark.parametrize("kind", ["SQUARE", "FLOOR"])
def test_int8_without_litert_kernel_is_rejected(kind):
    """LiteRT has no int8 SQUARE or FLOOR: the importer says which dtypes there are."""
    model = _model(kind, (1, 8), "int8", (0.1, 0), (0.1, 0))
    with pytest.raises(KilnError, match=rf"{kind}.*int8 activations are not supported \(float32\)"):
        kernelrun.load_graph(model)


# -- CAST --------------------------------------------------------------------------------------------

def _cast_values(dtype, rng, shape):
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    if dtype == "float32":
        # in range of every integer target (a C cast of an out-of-range float is undefined, in LiteRT too)
        v = rng.uniform(-127.9, 127.9, size=shape).astype(np.float32)
        v.flat[:4] = [0.0, -0.0, 0.5, -0.99]
        return v
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -(1 << 40)), min(info.max, 1 << 40)
    v = rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)
    v.flat[:3] = [0, 1, info.min]  # wraps when narrowed, as C++'s static_cast does
    return v


@pytest.mark.parametrize("dst", unary_math.CAST_TYPES)
@pytest.mark.parametrize("src", unary_math.CAST_TYPES)
def test_cast(src, dst, tmp_path):
    rng = np.random.default_rng(len(src) * 7 + len(dst))
    shape = (3, 11)
    mb = ModelBuilder()
    x = mb.tensor(shape, src, quant=(0.1, 3) if src == "int8" else None, name="x")
    y = mb.tensor(shape, dst, quant=(0.2, -1) if dst == "int8" else None, name="y")
    mb.op("CAST", [x], [y])
    model = mb.build([x], [y])
    v = _cast_values(src, rng, shape)
    (got,) = _run(model, [v], tmp_path)
    (want,) = reference_run(model, [v])
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
    if src != "float32" or dst == "float32":
        np.testing.assert_array_equal(unary_math.cast_reference(v, dst), want)
