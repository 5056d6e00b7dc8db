"""TILE and BROADCAST_TO end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF) over seeded shapes; copies, so exact. The numpy models of ops/tile.py too."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import tile

Q = (0.05, -7)
CASES = [("int8", 0), ("float32", 1), ("int32", 2), ("int8", 3)]  # (dtype, seed)


def _data(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if dtype in ("int32", "int64"):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-5, 5, size=shape).astype(np.float32)


def _run(kind, dtype, shape, operand, out, rng, tmp_path, index_type="int32", version=1):
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out, dtype, quant=q)
    mb.op(kind, [x, mb.const(np.asarray(operand), index_type)], [y], version=version)
    model = mb.build([x], [y])
    v = _data(rng, shape, dtype)
    graph = kernelrun.load_graph(model)
    got = kernelrun.run_lowered(graph, ops.lower(graph), [v], tmp_path)[0]
    want = reference_run(model, [v])[0]
    np.testing.assert_array_equal(got, want)
    return v, want


@pytest.mark.parametrize("dtype, seed", CASES + [("bool", 4), ("int64", 5)])
def test_tile(dtype, seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(1, 5))))
    multiples = [int(m) for m in rng.integers(1, 4, size=len(shape))]
    out = [d * m for d, m in zip(shape, multiples)]
    v, want = _run("TILE", dtype, shape, multiples, out, rng, tmp_path, "int64" if seed == 1 else "int32")
    np.testing.assert_array_equal(tile.reference_tile(v, multiples), want)


@pytest.mark.parametrize("dtype, seed", CASES + [("bool", 4), ("int64", 5)])
def test_broadcast_to(dtype, seed, tmp_path):
    rng = np.random.default_rng(10 + seed)
    target = [int(v) for v in rng.integers(1, 4, size=int(rng.integers(1, 5)))]
    rank = int(rng.integers(1, len(target) + 1))
    shape = tuple(1 if rng.integers(2) else d for d in target[len(target) - rank:])
    # BROADCAST_TO is version 2 in LiteRT's registry (version 1 is not registered)
    v, want = _run("BROADCAST_TO", dtype, shape, target, target, rng, tmp_path, version=2)
    np.testing.assert_array_equal(tile.reference_broadcast_to(v, target), want)


def test_broadcast_to_an_impossible_shape_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((2, 3), "float32")
    y = mb.tensor((2, 4), "float32")
    mb.op("BROADCAST_TO", [x, mb.const(np.asarray([2, 4], np.int32))], [y])
    with pytest.raises(KilnError, match="does not broadcast"):
        kernelrun.load_graph(mb.build([x], [y]))
