"""RESIZE_NEAREST_NEIGHBOR and RESIZE_BILINEAR end to end: single-op .tflite -> import -> lower -> TVM C
-> gcc -> compare with LiteRT (BUILTIN_REF), over seeded shapes and both corner modes. int8 (and
nearest's int32, float32) bit-exact; the numpy models of ops/resize.py are held to LiteRT as well."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import resize

MODES = [(False, False), (True, False), (False, True)]  # (align_corners, half_pixel_centers)


def _data(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if dtype == "int32":
        return rng.integers(-1000, 1000, size=shape).astype(np.int32)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-5, 5, size=shape).astype(np.float32)


def _model(kind, dtype, shape, size, modes, out_quant=None):
    mb = ModelBuilder()
    q = (0.05, -7) if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor((shape[0], *size, shape[3]), dtype, quant=out_quant or q)
    mb.op(kind, [x, mb.const(np.asarray(size, np.int32))], [y], align_corners=modes[0],
          half_pixel_centers=modes[1])
    return mb.build([x], [y])


def _check(kind, dtype, shape, size, modes, rng, tmp_path, out_quant=None):
    model = _model(kind, dtype, shape, size, modes, out_quant)
    x = _data(rng, shape, dtype)
    graph = kernelrun.load_graph(model)
    got = kernelrun.run_lowered(graph, ops.lower(graph), [x], tmp_path)[0]
    want = reference_run(model, [x])[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(resize.reference_resize(kind, x, size, *modes), want)


@pytest.mark.parametrize("modes", MODES)
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("seed", range(2))
def test_resize_bilinear(modes, dtype, seed, tmp_path):
    rng = np.random.default_rng(seed + 10 * MODES.index(modes))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 5)))
    size = [int(rng.integers(1, 12)), int(rng.integers(1, 12))]
    _check("RESIZE_BILINEAR", dtype, shape, size, modes, rng, tmp_path)


@pytest.mark.parametrize("modes", MODES)
@pytest.mark.parametrize("dtype, seed", [("int8", 0), ("float32", 1), ("int32", 2), ("int8", 3), ("bool", 4)])
def test_resize_nearest(modes, dtype, seed, tmp_path):
    rng = np.random.default_rng(100 + seed + 10 * MODES.index(modes))
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 6)), int(rng.integers(1, 6)), int(rng.integers(1, 5)))
    size = [int(rng.integers(1, 12)), int(rng.integers(1, 12))]
    _check("RESIZE_NEAREST_NEIGHBOR", dtype, shape, size, modes, rng, tmp_path)


def test_resize_like_the_zoo_models(tmp_path):
    """The shapes of the zoo's users: the IMU autoencoder's 2x nearest upsampling (half pixel) and
    deeplab's align-corners bilinear from 1x1 and to a size that does not divide."""
    rng = np.random.default_rng(7)
    _check("RESIZE_NEAREST_NEIGHBOR", "int8", (1, 8, 4, 16), [16, 8], (False, True), rng, tmp_path)
    _check("RESIZE_BILINEAR", "int8", (1, 1, 1, 8), [33, 33], (True, False), rng, tmp_path)
    _check("RESIZE_BILINEAR", "int8", (1, 9, 9, 3), [65, 65], (True, False), rng, tmp_path)


def test_resize_int8_copies_codes_when_the_output_quantization_differs(tmp_path):
    """LiteRT checks no quantization on resize and interpolates codes: so do we."""
    rng = np.random.default_rng(3)
    _check("RESIZE_BILINEAR", "int8", (1, 3, 4, 2), [5, 7], (False, False), rng, tmp_path, out_quant=(0.1, 4))


def test_resize_with_both_corner_modes_is_rejected():
    with pytest.raises(KilnError, match="both set"):
        kernelrun.load_graph(_model("RESIZE_BILINEAR", "float32", (1, 2, 2, 1), [4, 4], (True, True)))


@pytest.mark.parametrize("modes", MODES)
def test_resize_bilinear_of_a_uint8_graph_follows_litert_uint8_kernel(modes, tmp_path):
    """A uint8 tensor mapped onto int8 (codes - 128, Tensor.from_uint8) is resized with LiteRT's
    uint8 arithmetic (float blend + 0.5, truncated), which the int8 integer blend does not match."""
    rng = np.random.default_rng(11)
    shape, size = (1, 5, 7, 3), [9, 4]
    mb = ModelBuilder()
    x = mb.tensor(shape, "uint8", quant=(0.1, 34))
    y = mb.tensor((1, *size, 3), "uint8", quant=(0.1, 34))
    mb.op("RESIZE_BILINEAR", [x, mb.const(np.asarray(size, np.int32))], [y], align_corners=modes[0],
          half_pixel_centers=modes[1])
    u = rng.integers(0, 256, size=shape).astype(np.uint8)
    want = reference_run(mb.build([x], [y]), [u])[0].astype(np.int16) - 128
    # the same graph as the uint8 import makes it (int8 codes, marked), built here from an int8 model
    graph = kernelrun.load_graph(_model("RESIZE_BILINEAR", "int8", shape, size, modes))
    for t in graph.tensors:
        if t.dtype == "int8":
            t.from_uint8 = True
    codes = (u.astype(np.int16) - 128).astype(np.int8)
    got = kernelrun.run_lowered(graph, ops.lower(graph), [codes], tmp_path)[0]
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(resize.reference_resize("RESIZE_BILINEAR", codes, size, *modes, from_uint8=True),
                                  want)


def test_resize_bilinear_int8_with_the_int64_accumulator(tmp_path, monkeypatch):
    """The int64 blend (chosen only where int32 could overflow, sizes no test can afford) computes
    the same values."""
    monkeypatch.setattr(resize, "_int_accumulator", lambda rows, cols: "int64")
    rng = np.random.default_rng(12)
    _check("RESIZE_BILINEAR", "int8", (1, 3, 5, 2), [7, 4], (False, True), rng, tmp_path)


def test_nearest_align_corners_rounds_like_std_round(tmp_path):
    """2 -> 83 rows with align_corners: row 41 sits one float32 step below 0.5, where adding 0.5 in
    float32 would round it up; LiteRT's std::round keeps it at 0."""
    rng = np.random.default_rng(13)
    _check("RESIZE_NEAREST_NEIGHBOR", "int8", (1, 2, 1, 2), [83, 1], (True, False), rng, tmp_path)


def test_resize_bilinear_int8_where_litert_reads_past_the_edge(tmp_path):
    """3 -> 184 columns: LiteRT's rounded 10-bit scale overshoots, its kernel reads one pixel past
    the row (undefined output there). The kernel reads the edge pixel instead, and the build says so."""
    assert resize.int_taps_overrun(3, 184, False, False)
    assert resize.int_taps_overrun(33, 513, False, False)  # the last row: 512 * 66 = 33 * 1024
    assert not any(resize.int_taps_overrun(*c) for c in [(8, 16, False, True), (1, 33, True, False),
                                                         (33, 513, True, False), (4, 8, False, False)])
    model = _model("RESIZE_BILINEAR", "int8", (1, 2, 3, 2), [5, 184], (False, False))
    graph = kernelrun.load_graph(model)
    lowered = ops.lower(graph)
    assert any("reads past the input's edge" in w for w in lowered.warnings)
    x = _data(np.random.default_rng(14), (1, 2, 3, 2), "int8")
    got = kernelrun.run_lowered(graph, lowered, [x], tmp_path)[0]
    np.testing.assert_array_equal(got, resize.reference_resize("RESIZE_BILINEAR", x, [5, 184], False, False))
    want = reference_run(model, [x])[0]
    assert np.array_equal(got[:, :, :180], want[:, :, :180])  # LiteRT's defined part
