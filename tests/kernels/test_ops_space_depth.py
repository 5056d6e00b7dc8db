"""SPACE_TO_DEPTH, DEPTH_TO_SPACE, SPACE_TO_BATCH_ND, BATCH_TO_SPACE_ND end to end: single-op .tflite ->
import -> lower -> TVM C -> gcc -> compare with LiteRT (BUILTIN_REF) over seeded shapes and blocks;
copies, so exact. The numpy models of ops/space_depth.py are held to LiteRT too."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import space_depth
from tinykiln.ops.rules import batch_to_space_shape, space_to_batch_shape

Q = (0.05, -7)
CASES = [("int8", 0), ("float32", 1), ("int32", 2), ("int8", 3)]  # (dtype, seed); seed 2: 3-D


def _data(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if dtype in ("int32", "int64"):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    return rng.uniform(-5, 5, size=shape).astype(np.float32)


def _run(mb, x, y, v, tmp_path):
    model = mb.build([x], [y])
    graph = kernelrun.load_graph(model)
    got = kernelrun.run_lowered(graph, ops.lower(graph), [v], tmp_path)[0]
    want = reference_run(model, [v])[0]
    np.testing.assert_array_equal(got, want)
    return want


@pytest.mark.parametrize("dtype, seed", CASES[:3] + [("int64", 1)])
def test_space_to_depth_and_back(dtype, seed, tmp_path):
    rng = np.random.default_rng(seed)
    b = int(rng.integers(1, 4))
    n, h, w, c = 1 + seed, b * int(rng.integers(1, 3)), b * int(rng.integers(1, 3)), int(rng.integers(1, 4))
    q = Q if dtype == "int8" else None
    v = _data(rng, (n, h, w, c), dtype)
    mb = ModelBuilder()
    x = mb.tensor((n, h, w, c), dtype, quant=q)
    y = mb.tensor((n, h // b, w // b, c * b * b), dtype, quant=q)
    mb.op("SPACE_TO_DEPTH", [x], [y], block_size=b)
    want = _run(mb, x, y, v, tmp_path / "s2d")
    np.testing.assert_array_equal(space_depth.reference_space_to_depth(v, b), want)
    mb = ModelBuilder()
    x = mb.tensor(want.shape, dtype, quant=q)
    y = mb.tensor((n, h, w, c), dtype, quant=q)
    mb.op("DEPTH_TO_SPACE", [x], [y], block_size=b)
    back = _run(mb, x, y, want, tmp_path / "d2s")
    np.testing.assert_array_equal(space_depth.reference_depth_to_space(want, b), back)


@pytest.mark.parametrize("dtype, seed", CASES + [("int64", 5)])
def test_space_to_batch_nd(dtype, seed, tmp_path):
    rng = np.random.default_rng(10 + seed)
    rank = 3 if seed % 2 == 0 else 4
    m = rank - 2
    block = [int(b) for b in rng.integers(1, 4, size=m)]
    pads, spatial = [], []
    for b in block:
        lo = int(rng.integers(0, 3))
        total = b * int(rng.integers(1, 3))
        size = int(rng.integers(max(1, total - lo - 2), total - lo + 1)) if total - lo >= 1 else 1
        size = max(1, min(size, total - lo)) if total - lo >= 1 else 1
        hi = (-(size + lo)) % b
        pads.append([lo, hi])
        spatial.append(size)
    shape = (int(rng.integers(1, 3)), *spatial, int(rng.integers(1, 4)))
    out = space_to_batch_shape(shape, block, pads)
    q = Q if dtype == "int8" else None
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out, dtype, quant=q)
    mb.op("SPACE_TO_BATCH_ND", [x, mb.const(np.asarray(block, np.int32)), mb.const(np.asarray(pads, np.int32))], [y])
    v = _data(rng, shape, dtype)
    want = _run(mb, x, y, v, tmp_path)
    fill = Q[1] if dtype == "int8" else 0
    np.testing.assert_array_equal(space_depth.reference_space_to_batch(v, block, pads, fill), want)


@pytest.mark.parametrize("dtype, seed", CASES + [("int64", 5)])
def test_batch_to_space_nd(dtype, seed, tmp_path):
    rng = np.random.default_rng(20 + seed)
    rank = 3 if seed % 2 == 0 else 4
    m = rank - 2
    block = [int(b) for b in rng.integers(1, 4, size=m)]
    spatial = [int(s) for s in rng.integers(1, 4, size=m)]
    crops = []
    for b, s in zip(block, spatial):
        room = b * s - 1
        lo = int(rng.integers(0, min(room, 2) + 1))
        hi = int(rng.integers(0, min(room - lo, 2) + 1))
        crops.append([lo, hi])
    shape = (int(np.prod(block)) * int(rng.integers(1, 3)), *spatial, int(rng.integers(1, 4)))
    out = batch_to_space_shape(shape, block, crops)
    q = Q if dtype == "int8" else None
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out, dtype, quant=q)
    mb.op("BATCH_TO_SPACE_ND", [x, mb.const(np.asarray(block, np.int32)), mb.const(np.asarray(crops, np.int32))],
          [y])
    v = _data(rng, shape, dtype)
    want = _run(mb, x, y, v, tmp_path)
    np.testing.assert_array_equal(space_depth.reference_batch_to_space(v, block, crops), want)


def test_space_to_batch_with_another_output_quantization_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((1, 2, 2, 1), "int8", quant=Q)
    y = mb.tensor((4, 1, 1, 1), "int8", quant=(0.1, 3))
    mb.op("SPACE_TO_BATCH_ND", [x, mb.const(np.asarray([2, 2], np.int32)), mb.const(np.zeros((2, 2), np.int32))], [y])
    with pytest.raises(KilnError, match="quantized differently"):
        kernelrun.load_graph(mb.build([x], [y]))
