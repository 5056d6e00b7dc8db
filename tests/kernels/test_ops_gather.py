"""GATHER and GATHER_ND end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF) over seeded shapes, axes, batch_dims, constant and computed int32/int64 indices;
copies, so exact. The numpy models of ops/gather.py are held to LiteRT too."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import gather
from tinykiln.ops.rules import gather_nd_shape, gather_shape

Q = (0.05, -7)
# (dtype, constant indices, seed); seed 1: int64 indices, seed 2: batch_dims, seed 0: negative axis
CASES = [("int8", True, 0), ("float32", False, 0), ("int32", True, 1), ("int8", False, 1), ("int8", True, 2),
         ("float32", False, 2)]


def _data(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if dtype in ("int32", "int64"):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-5, 5, size=shape).astype(np.float32)


def _run(mb, ins, y, values, tmp_path):
    model = mb.build(ins, [y])
    graph = kernelrun.load_graph(model)
    got = kernelrun.run_lowered(graph, ops.lower(graph), values, tmp_path)[0]
    want = reference_run(model, values)[0]
    np.testing.assert_array_equal(got, want)
    return want, graph


@pytest.mark.parametrize("dtype, constant, seed", CASES + [("bool", False, 0), ("int64", True, 2)])
def test_gather(dtype, constant, seed, tmp_path):
    rng = np.random.default_rng(seed + 10 * constant)
    rank = int(rng.integers(1, 4))
    shape = tuple(int(v) for v in rng.integers(1, 5, size=rank))
    axis = int(rng.integers(0, rank))
    batch = int(rng.integers(0, axis + 1)) if seed == 2 else 0
    idx_shape = tuple(shape[:batch]) + tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    index_type = "int64" if seed == 1 else "int32"
    indices = rng.integers(0, shape[axis], size=idx_shape).astype(index_type)
    out = gather_shape(shape, idx_shape, axis, batch)
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    i = mb.tensor(idx_shape, index_type, data=indices if constant else None)
    y = mb.tensor(out, dtype, quant=q)
    # negative axis (seeds 0, 2) and batch_dims (seed 2): LiteRT counts them from the end
    axis_opt = axis - rank if seed != 1 else axis
    batch_opt = batch - len(idx_shape) if seed == 2 and batch else batch
    mb.op("GATHER", [x, i], [y], axis=axis_opt, batch_dims=batch_opt)
    v = _data(rng, shape, dtype)
    want, _ = _run(mb, [x] if constant else [x, i], y, [v] if constant else [v, indices], tmp_path)
    np.testing.assert_array_equal(gather.reference_gather(v, indices, axis, batch), want)


def test_gather_from_a_constant_table(tmp_path):
    """An embedding lookup: constant params, computed indices."""
    rng = np.random.default_rng(4)
    table = _data(rng, (10, 3), "int8")
    mb = ModelBuilder()
    x = mb.tensor((10, 3), "int8", quant=Q, data=table)
    i = mb.tensor((2, 4), "int32")
    y = mb.tensor((2, 4, 3), "int8", quant=Q)
    mb.op("GATHER", [x, i], [y], axis=0)
    _run(mb, [i], y, [rng.integers(0, 10, size=(2, 4)).astype(np.int32)], tmp_path)


def test_gather_clamps_computed_indices_out_of_range(tmp_path):
    """LiteRT fails the run on such an index; the kernel cannot, and must not read outside."""
    mb = ModelBuilder()
    x = mb.tensor((4, 2), "float32")
    i = mb.tensor((3,), "int32")
    y = mb.tensor((3, 2), "float32")
    mb.op("GATHER", [x, i], [y], axis=0)
    graph = kernelrun.load_graph(mb.build([x, i], [y]))
    v = np.arange(8, dtype=np.float32).reshape(4, 2)
    got = kernelrun.run_lowered(graph, ops.lower(graph), [v, np.asarray([-3, 9, 1], np.int32)], tmp_path)[0]
    np.testing.assert_array_equal(got, v[[0, 3, 1]])


def test_gather_constant_index_out_of_range_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((4, 2), "float32")
    i = mb.const(np.asarray([0, 4], np.int32))
    y = mb.tensor((2, 2), "float32")
    mb.op("GATHER", [x, i], [y], axis=0)
    with pytest.raises(KilnError, match="outside"):
        kernelrun.load_graph(mb.build([x], [y]))


@pytest.mark.parametrize("dtype, constant, seed", CASES[:4] + [("bool", True, 1), ("int64", False, 0)])
def test_gather_nd(dtype, constant, seed, tmp_path):
    rng = np.random.default_rng(50 + seed + 10 * constant)
    rank = int(rng.integers(1, 4))
    shape = tuple(int(v) for v in rng.integers(1, 5, size=rank))
    k = int(rng.integers(1, rank + 1))
    idx_shape = tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(0, 2)))) + (k,)
    index_type = "int64" if seed else "int32"
    indices = np.stack([rng.integers(0, shape[d], size=idx_shape[:-1]) for d in range(k)], axis=-1).astype(index_type)
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    i = mb.tensor(idx_shape, index_type, data=indices if constant else None)
    y = mb.tensor(gather_nd_shape(shape, idx_shape), dtype, quant=q)
    mb.op("GATHER_ND", [x, i], [y])
    v = _data(rng, shape, dtype)
    want, _ = _run(mb, [x] if constant else [x, i], y, [v] if constant else [v, indices], tmp_path)
    np.testing.assert_array_equal(gather.reference_gather_nd(v, indices), want)
