"""PAD, CONCATENATION, STRIDED_SLICE, TRANSPOSE end to end: single-op .tflite -> import -> lower ->
TVM C -> gcc -> compare with LiteRT (BUILTIN_REF); data movement, so int8 and float32 are exact."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import rules

Q = (0.05, -7)  # int8 quantization of the data-movement tests (any works)


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


def _data(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    return rng.uniform(-5, 5, size=shape).astype(np.float32)


def _check(model, inputs, tmp_path):
    got = _run(model, inputs, tmp_path)
    for g, r in zip(got, reference_run(model, inputs)):
        np.testing.assert_array_equal(g, r)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("seed", range(3))
def test_pad(dtype, seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 6, size=4))
    pads = rng.integers(0, 3, size=(4, 2))
    out_shape = tuple(int(n + b + a) for n, (b, a) in zip(shape, pads))
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out_shape, dtype, quant=q)
    mb.op("PAD", [x, mb.const(pads.astype(np.int32))], [y])
    _check(mb.build([x], [y]), [_data(rng, shape, dtype)], tmp_path)


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("axis", [0, 1, 3, -1])
def test_concatenation(dtype, axis, tmp_path):
    rng = np.random.default_rng(abs(axis))
    base = [1, 3, 4, 2]
    shapes = []
    for k in range(3):
        s = list(base)
        s[axis] = k + 1
        shapes.append(tuple(s))
    out = list(base)
    out[axis] = 6
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    xs = [mb.tensor(s, dtype, quant=q) for s in shapes]
    y = mb.tensor(out, dtype, quant=q)
    mb.op("CONCATENATION", xs, [y], axis=axis)
    _check(mb.build(xs, [y]), [_data(rng, s, dtype) for s in shapes], tmp_path)


def test_strided_slice_shrinking_outside_the_input_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((4, 3), "float32")
    consts = [mb.const(np.asarray(v, np.int32)) for v in ([4, 0], [5, 3], [1, 1])]
    y = mb.tensor((3,), "float32")
    mb.op("STRIDED_SLICE", [x, *consts], [y], shrink_axis_mask=1)
    with pytest.raises(KilnError, match="outside the input"):
        ops.lower(kernelrun.load_graph(mb.build([x], [y])))


def test_int8_concatenation_with_mixed_quantization_is_rejected():
    mb = ModelBuilder()
    a = mb.tensor((1, 3), "int8", quant=(0.1, 3))
    b = mb.tensor((1, 2), "int8", quant=(0.2, 3))
    y = mb.tensor((1, 5), "int8", quant=(0.1, 3))
    mb.op("CONCATENATION", [a, b], [y], axis=1)
    with pytest.raises(KilnError, match="quantized differently"):
        ops.lower(kernelrun.load_graph(mb.build([a, b], [y])))


@pytest.mark.parametrize("seed", range(12))
def test_strided_slice(seed, tmp_path):
    rng = np.random.default_rng(100 + seed)
    dtype = "int8" if seed % 2 else "float32"
    while True:
        rank = int(rng.integers(1, 5))
        shape = tuple(int(v) for v in rng.integers(1, 7, size=rank))
        begin = [int(rng.integers(-d, d + 1)) for d in shape]
        end = [int(rng.integers(-d - 1, d + 2)) for d in shape]
        shrink = int(rng.integers(0, 1 << rank)) if seed % 3 == 0 else 0
        strides = [int(rng.choice([1, 2, 3])) if shrink >> i & 1 else int(rng.choice([1, 2, -1, -2]))
                   for i in range(rank)]
        masks = {"begin_mask": int(rng.integers(0, 1 << rank)), "end_mask": int(rng.integers(0, 1 << rank)),
                 "shrink_axis_mask": shrink}
        ranges, out_shape = rules.strided_slice_ranges(shape, begin, end, strides, **masks)
        # a shrunk axis must start inside the input (LiteRT reads out of bounds otherwise)
        inside = all(0 <= r[0] < shape[d] for d, r in enumerate(ranges) if shrink >> d & 1)
        if out_shape and 0 not in out_shape and inside:
            break
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    consts = [mb.const(np.asarray(v, np.int32)) for v in (begin, end, strides)]
    y = mb.tensor(out_shape, dtype, quant=q)
    mb.op("STRIDED_SLICE", [x, *consts], [y], **masks)
    _check(mb.build([x], [y]), [_data(rng, shape, dtype)], tmp_path)


@pytest.mark.parametrize("perm", [[0, 3, 1, 2], [0, 2, 3, 1], [2, 1, 0], [1, 0]])
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_transpose(perm, dtype, tmp_path):
    rng = np.random.default_rng(len(perm))
    shape = (2, 3, 4, 5)[:len(perm)]
    out_shape = tuple(shape[p] for p in perm)
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out_shape, dtype, quant=q)
    mb.op("TRANSPOSE", [x, mb.const(np.asarray(perm, np.int32))], [y])
    _check(mb.build([x], [y]), [_data(rng, shape, dtype)], tmp_path)
