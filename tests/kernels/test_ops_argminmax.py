"""ARG_MAX / ARG_MIN end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF). Indices are exact for int8 and float32 alike, ties included."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.argminmax import argminmax_reference
from tinykiln.tflite import load

TYPE_CODES = {"int32": 2, "int64": 4}  # TensorType


def _model(kind, shape, axis, dtype, out_dtype, axis_dtype="int32", option_dtype=None):
    rank = len(shape)
    out_shape = [n for d, n in enumerate(shape) if d != axis % rank]
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=(0.05, 3) if dtype == "int8" else None, name="x")
    ax = mb.const(np.asarray([axis]), axis_dtype)
    y = mb.tensor(out_shape, out_dtype, name="y")
    mb.op(kind, [x, ax], [y], output_type=TYPE_CODES[option_dtype or out_dtype])
    return mb.build([x], [y])


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


@pytest.mark.parametrize("seed", range(8))
def test_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    rank = int(rng.integers(1, 5))
    shape = tuple(int(v) for v in rng.integers(1, 7, size=rank))
    axis = int(rng.integers(-rank, rank))
    kind = ("ARG_MAX", "ARG_MIN")[seed % 2]
    dtype = ("int8", "float32")[(seed // 2) % 2]
    out_dtype = ("int32", "int64")[(seed // 4) % 2]
    model = _model(kind, shape, axis, dtype, out_dtype, axis_dtype=("int32", "int64")[seed % 3 == 0])
    if dtype == "int8":
        # few distinct values: many ties
        xs = [rng.integers(-3, 3, size=shape).astype(np.int8), rng.integers(-128, 128, size=shape).astype(np.int8),
              np.full(shape, -128, np.int8)]
    else:
        xs = [rng.integers(-2, 2, size=shape).astype(np.float32), rng.normal(size=shape).astype(np.float32)]
    for x in xs:
        (got,) = _run(model, [x], tmp_path)
        (want,) = reference_run(model, [x])
        assert got.dtype == want.dtype == np.dtype(out_dtype)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(argminmax_reference(x, axis % rank, kind == "ARG_MAX", out_dtype), want)


def test_segmentation_head(tmp_path):
    """DeepLab's last op: ARG_MAX over the channels of an int8 NHWC map, int64 out."""
    shape = (1, 5, 6, 21)
    model = _model("ARG_MAX", shape, 3, "int8", "int64")
    x = np.random.default_rng(3).integers(-128, 128, size=shape).astype(np.int8)
    (got,) = _run(model, [x], tmp_path)
    np.testing.assert_array_equal(got, reference_run(model, [x])[0])


def test_output_type_must_match_the_tensor():
    model = _model("ARG_MAX", (2, 3), 1, "int8", "int32", option_dtype="int64")
    with pytest.raises(KilnError, match="output_type is int64"):
        load(model)


def test_float_output_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((2, 3), "float32", name="x")
    y = mb.tensor((2,), "float32", name="y")
    mb.op("ARG_MAX", [x, mb.const([1])], [y], output_type=TYPE_CODES["int32"])
    with pytest.raises(KilnError, match="ARG_MAX"):
        load(mb.build([x], [y]))
