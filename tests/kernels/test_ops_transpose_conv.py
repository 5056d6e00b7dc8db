"""TRANSPOSE_CONV end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF). int8 bit-exact; float32 within 1e-5 relative (LiteRT's order)."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.transpose_conv import transpose_conv_float_reference, transpose_conv_int8_reference
from tinykiln.tflite import load

# (input h, w, ic, oc, kernel, stride, padding, output h, w, bias, per channel, activation)
CASES = [
    (3, 3, 2, 3, (3, 3), (2, 2), "SAME", 6, 6, True, True, "NONE"),
    (4, 3, 3, 2, (2, 2), (2, 2), "VALID", 8, 6, False, True, "RELU"),
    (3, 4, 1, 4, (3, 2), (1, 1), "SAME", 3, 4, True, False, "NONE"),
    (2, 3, 4, 2, (4, 4), (2, 3), "VALID", 6, 10, True, True, "RELU6"),
    (3, 3, 2, 5, (3, 3), (2, 2), "SAME", 5, 5, True, True, "NONE"),  # an output size the stride does not divide
    (5, 2, 3, 3, (1, 3), (3, 1), "VALID", 15, 4, False, False, "RELU_N1_TO_1"),
]


def _model(case, dtype, rng):
    h, w, ic, oc, (kh, kw), stride, padding, oh, ow, has_bias, per_channel, activation = case
    mb = ModelBuilder()
    qs = {}
    if dtype == "int8":
        in_q = (float(rng.uniform(0.02, 0.1)), int(rng.integers(-128, 128)))
        scales = np.exp(rng.uniform(np.log(0.002), np.log(0.02), oc if per_channel else 1))
        wq = (scales, [0] * len(scales), 0) if per_channel else (float(scales[0]), 0)
        out_q = (in_q[0] * float(scales.mean()) * 74 * 74 * np.sqrt(kh * kw * ic) / 40, int(rng.integers(-20, 20)))
        weights = rng.integers(-127, 128, size=(oc, kh, kw, ic))
        bias = rng.integers(-3000, 3000, size=oc) if has_bias else None
        bq = ((in_q[0] * scales, [0] * len(scales), 0) if per_channel else (in_q[0] * float(scales[0]), 0))
        qs = {"in_q": in_q, "w_scales": scales, "out_q": out_q}
        wt = mb.tensor((oc, kh, kw, ic), "int8", quant=wq, data=weights, name="filter")
        b = mb.tensor((oc,), "int32", quant=bq, data=bias, name="bias") if has_bias else -1
    else:
        in_q = out_q = None
        weights = rng.normal(size=(oc, kh, kw, ic)).astype(np.float32)
        bias = rng.normal(size=oc).astype(np.float32) if has_bias else None
        wt = mb.tensor((oc, kh, kw, ic), "float32", data=weights, name="filter")
        b = mb.tensor((oc,), "float32", data=bias, name="bias") if has_bias else -1
    shape = mb.const(np.array([1, oh, ow, oc], np.int32), name="output_shape")
    x = mb.tensor((1, h, w, ic), dtype, quant=in_q, name="x")
    y = mb.tensor((1, oh, ow, oc), dtype, quant=out_q, name="y")
    inputs = [shape, wt, x] + ([b] if has_bias else [])
    mb.op("TRANSPOSE_CONV", inputs, [y], padding=padding, stride_h=stride[0], stride_w=stride[1],
          activation=activation)
    return mb.build([x], [y]), weights, bias, qs


def _run(model, inputs, workdir, knobs=None):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph, knobs), inputs, workdir)


@pytest.mark.parametrize("seed", range(len(CASES)))
def test_int8_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    case = CASES[seed]
    model, weights, bias, qs = _model(case, "int8", rng)
    x = rng.integers(-128, 128, size=(1, *case[:3])).astype(np.int8)
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_array_equal(got, want)
    assert len(np.unique(want)) > 3  # not all clamped
    out_shape = (1, case[7], case[8], case[3])
    np.testing.assert_array_equal(
        transpose_conv_int8_reference(x, weights, bias, case[5], case[6], out_shape, **qs, activation=case[11]), want)


@pytest.mark.parametrize("seed", [0, 1, 3, 5])
def test_float32(seed, tmp_path):
    rng = np.random.default_rng(seed)
    case = CASES[seed]
    model, weights, bias, _ = _model(case, "float32", rng)
    x = rng.normal(size=(1, *case[:3])).astype(np.float32)
    (got,) = _run(model, [x], tmp_path)
    (want,) = reference_run(model, [x])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    out_shape = (1, case[7], case[8], case[3])
    np.testing.assert_allclose(transpose_conv_float_reference(x, weights, bias, case[5], case[6], out_shape,
                                                              case[11]), want, rtol=1e-5, atol=1e-5)


def test_int8_every_knob_value(tmp_path):
    from tinykiln.ops import knob_space, workload_key

    rng = np.random.default_rng(11)
    case = (3, 3, 2, 4, (3, 3), (2, 2), "SAME", 6, 6, True, True, "RELU")
    model, _, _, _ = _model(case, "int8", rng)
    x = rng.integers(-128, 128, size=(1, 3, 3, 2)).astype(np.int8)
    (want,) = reference_run(model, [x])
    spec = ops.lower(kernelrun.load_graph(model)).calls[0].spec
    space = knob_space(spec)
    for tile in space["oc_tile"]:
        for unroll in space["unroll"]:
            knobs = {workload_key(spec): {"oc_tile": tile, "unroll": unroll}}
            (got,) = _run(model, [x], tmp_path / f"{tile}{unroll}", knobs)
            np.testing.assert_array_equal(got, want)


def test_output_shape_must_match():
    rng = np.random.default_rng(0)
    model, _, _, _ = _model((3, 3, 2, 3, (3, 3), (2, 2), "SAME", 6, 6, True, True, "NONE"), "float32", rng)
    from ai_edge_litert import schema_py_generated as schema

    from modelgen import pack
    m = schema.ModelT.InitFromPackedBuf(model, 0)
    m.subgraphs[0].tensors[-1].shape = [1, 5, 6, 3]
    with pytest.raises(KilnError, match="shape"):
        load(pack(m))
