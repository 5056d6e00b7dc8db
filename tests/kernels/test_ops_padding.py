"""PADV2 and MIRROR_PAD end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF) over seeded shapes and paddings; copies, so exact. The numpy models of
ops/padding.py are held to LiteRT too."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import padding

Q = (0.05, -7)
CASES = [("int8", 0), ("float32", 1), ("int32", 2), ("int8", 3)]  # (dtype, seed)


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


@pytest.mark.parametrize("dtype, seed", CASES + [("int64", 5)])
def test_padv2(dtype, seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(1, 5))))
    pads = rng.integers(0, 3, size=(len(shape), 2))
    out = [int(n + lo + hi) for n, (lo, hi) in zip(shape, pads)]
    q = Q if dtype == "int8" else None
    mb = ModelBuilder()
    # the input's quantization may differ (codes are copied); the pad value's must be the output's
    x = mb.tensor(shape, dtype, quant=(0.2, 3) if dtype == "int8" and seed == 3 else q)
    y = mb.tensor(out, dtype, quant=q)
    value = _data(rng, (), dtype)
    wide = seed == 1
    inputs = [x, mb.const(pads.astype(np.int64 if wide else np.int32), "int64" if wide else "int32")]
    if seed != 0:
        inputs.append(mb.tensor((), dtype, quant=q, data=value))
    mb.op("PADV2", inputs, [y])
    v = _data(rng, shape, dtype)
    want = _run(mb, x, y, v, tmp_path)
    fill = value if seed != 0 else (Q[1] if dtype == "int8" else 0)
    np.testing.assert_array_equal(padding.reference_padv2(v, pads, fill), want)


@pytest.mark.parametrize("mode", padding.MODES)
@pytest.mark.parametrize("dtype, seed", CASES[:3] + [("int64", 1)])
def test_mirror_pad(mode, dtype, seed, tmp_path):
    rng = np.random.default_rng(10 + seed)
    shape = tuple(int(v) for v in rng.integers(1, 5, size=int(rng.integers(1, 5))))
    offset = 1 if mode == "REFLECT" else 0
    pads = np.asarray([[int(rng.integers(0, n - offset + 1)) for _ in range(2)] for n in shape])
    out = [int(n + lo + hi) for n, (lo, hi) in zip(shape, pads)]
    q = Q if dtype == "int8" else None
    mb = ModelBuilder()
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out, dtype, quant=q)
    mb.op("MIRROR_PAD", [x, mb.const(pads.astype(np.int32))], [y], mode=padding.MODES.index(mode))
    v = _data(rng, shape, dtype)
    want = _run(mb, x, y, v, tmp_path)
    np.testing.assert_array_equal(padding.reference_mirror_pad(v, pads, mode), want)


def test_mirror_pad_beyond_the_edge_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((2, 3), "float32")
    y = mb.tensor((6, 3), "float32")
    mb.op("MIRROR_PAD", [x, mb.const(np.asarray([[2, 2], [0, 0]], np.int32))], [y], mode=0)
    with pytest.raises(KilnError, match="exceed"):
        kernelrun.load_graph(mb.build([x], [y]))


def test_padv2_value_quantized_unlike_the_output_is_rejected():
    mb = ModelBuilder()
    x = mb.tensor((2, 3), "int8", quant=Q)
    y = mb.tensor((4, 5), "int8", quant=Q)
    value = mb.tensor((), "int8", quant=(0.2, -7), data=np.int8(5))
    mb.op("PADV2", [x, mb.const(np.ones((2, 2), np.int32)), value], [y])
    with pytest.raises(KilnError, match="quantized differently"):
        kernelrun.load_graph(mb.build([x], [y]))
