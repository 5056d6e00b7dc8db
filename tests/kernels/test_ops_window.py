"""DEPTHWISE_CONV_2D, FULLY_CONNECTED, AVERAGE/MAX_POOL_2D kernels against LiteRT's reference
kernels on seeded random shapes and parameters (imported from .tflite by the importer)."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg
from kernelrun import check_against_litert

ACTS = ["NONE", "RELU", "RELU6", "RELU_N1_TO_1"]


def _depthwise(seed, dtype):
    rng = np.random.default_rng(seed)
    mb = mg.ModelBuilder(seed)
    h, w = (int(v) for v in rng.integers(4, 11, 2))
    x = mb.input((1, h, w, int(rng.integers(1, 7))), dtype, name="input")
    kernel = tuple(int(v) for v in rng.integers(1, 4, 2))
    padding = str(rng.choice(["SAME", "VALID"]))
    dilation = (1, 1) if padding == "VALID" or rng.integers(3) else (2, 2)
    y = mg.depthwise_conv2d(mb, x, kernel, depth_multiplier=int(rng.integers(1, 4)),
                            stride=tuple(int(v) for v in rng.integers(1, 3, 2)), padding=padding,
                            dilation=dilation, activation=str(rng.choice(ACTS)), per_channel=bool(rng.integers(2)))
    return mb, [x], [y]


def _fully_connected(seed, dtype):
    rng = np.random.default_rng(seed)
    mb = mg.ModelBuilder(seed)
    shape = [(1, int(rng.integers(1, 40))), (int(rng.integers(2, 4)), int(rng.integers(1, 20))),
             (1, 3, 4, int(rng.integers(1, 6)))][seed % 3]
    x = mb.input(shape, dtype, name="input")
    y = mg.fully_connected(mb, x, int(rng.integers(1, 17)), activation=str(rng.choice(ACTS)),
                           per_channel=bool(rng.integers(2)) and dtype == "int8",
                           keep_num_dims=bool(rng.integers(2)), bias=bool(rng.integers(4)))
    return mb, [x], [y]


def _pool(seed, dtype):
    rng = np.random.default_rng(seed)
    mb = mg.ModelBuilder(seed)
    h, w = (int(v) for v in rng.integers(3, 12, 2))
    x = mb.input((1, h, w, int(rng.integers(1, 6))), dtype, name="input")
    kind = ["AVERAGE_POOL_2D", "MAX_POOL_2D"][seed % 2]
    filt = tuple(int(v) for v in rng.integers(1, 4, 2))
    y = mg.pool2d(mb, kind, x, filt, tuple(int(v) for v in rng.integers(1, 3, 2)),
                  str(rng.choice(["SAME", "VALID"])), str(rng.choice(ACTS)))
    return mb, [x], [y]


CASES = {"depthwise": _depthwise, "fully_connected": _fully_connected, "pool": _pool}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("family", list(CASES))
def test_random(family, dtype, seed, tmp_path):
    mb, ins, outs = CASES[family](seed, dtype)
    check_against_litert(mb, ins, outs, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(4, 30))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("family", list(CASES))
def test_random_more(family, dtype, seed, tmp_path):
    mb, ins, outs = CASES[family](seed, dtype)
    check_against_litert(mb, ins, outs, tmp_path)


@pytest.mark.parametrize("shape, units", [((1, 1), 1), ((1, 1), 4), ((3, 1), 5), ((2, 3), 1)])
def test_fully_connected_micro_kernel_tiles_with_unit_loops(shape, units, tmp_path):
    """Depth 1 and unit tiles: loops of extent 1 in the micro-kernel's tile (units tile x depth)."""
    from test_ops_conv2d import check_knob_points

    mb = mg.ModelBuilder(3)
    x = mb.input(shape, "int8", name="input")
    y = mg.fully_connected(mb, x, units, activation="RELU", per_channel=True)
    taken = check_knob_points(mb, [x], [y], [{}, {"oc_tile": 1}], tmp_path)
    assert all(k["microkernel"] == "dot_s8" and k["weight_layout"] == "OI" for k in taken)


@pytest.mark.parametrize("shape, kernel, multiplier, stride, padding", [
    ((1, 5, 4, 1), (3, 1), 1, (1, 1), "SAME"),   # one tap per filter row, one channel
    ((1, 4, 5, 1), (1, 2), 2, (1, 1), "SAME"),   # one filter row of two taps, depth multiplier 2
    ((1, 6, 5, 3), (2, 1), 1, (2, 2), "VALID"),  # no padding, strided, one tap per row
])
def test_depthwise_micro_kernel_windows_with_unit_loops(shape, kernel, multiplier, stride, padding, tmp_path):
    """ROW16 and CHW16 depthwise windows with a unit dimension (the window loops under the
    micro-kernel call); ROW16 is the default where the columns have stride 1."""
    from test_ops_conv2d import check_knob_points

    mb = mg.ModelBuilder(5)
    x = mb.input(shape, "int8", name="input")
    y = mg.depthwise_conv2d(mb, x, kernel, depth_multiplier=multiplier, stride=stride, padding=padding,
                            activation="RELU6", per_channel=True)
    points = [{}, {"layout": "CHW16"}, {"layout": "NHWC", "unroll": True}]
    taken = check_knob_points(mb, [x], [y], points, tmp_path)
    default = "ROW16" if stride[1] == 1 else "CHW16"
    assert [k["layout"] for k in taken] == [default, "CHW16", "NHWC"]


@pytest.mark.parametrize("shape, kernel, multiplier, stride, padding", [
    ((1, 25, 5, 16), (3, 3), 1, (1, 1), "SAME"),   # kws' depthwise layers, fewer channels
    ((1, 9, 8, 3), (3, 2), 2, (2, 1), "SAME"),     # depth multiplier 2: two outputs per plane
    ((1, 7, 6, 4), (2, 3), 1, (1, 2), "VALID"),    # no padding: the plane is the input's
])
def test_depthwise_chw16_scratch_is_one_plane(shape, kernel, multiplier, stride, padding, tmp_path):
    """CHW16 copies one input channel's padded plane at a time (then computes that channel's
    outputs): the scratch is one plane of int16, never overrun, whatever the knobs; bit-exact."""
    from kernelrun import load_graph
    from test_ops_conv2d import run_guarded

    from tinykiln.ops import lower, workload_key

    mb = mg.ModelBuilder(8)
    x = mb.input(shape, "int8", name="input")
    y = mg.depthwise_conv2d(mb, x, kernel, depth_multiplier=multiplier, stride=stride, padding=padding,
                            activation="RELU", per_channel=True)
    model = mb.build([x], [y])
    graph = load_graph(model, mb, [x], [y])
    spec = lower(graph).calls[0].spec
    pt, pb, pl, pr = spec.attrs["pad"]
    key = workload_key(spec)
    values = [mg.random_input(mb, x, seed=2)]
    want = mg.reference_run(model, values)[0]
    for i, knobs in enumerate([{"layout": "CHW16"}, {"layout": "CHW16", "oc_tile": 1, "unroll": True}]):
        lowered = lower(graph, {key: knobs})
        assert lowered.calls[0].spec.knobs["layout"] == "CHW16"
        (scratch,) = [p for p in lowered.calls[0].spec.params if p.role == "scratch"]
        assert scratch.nbytes == (shape[1] + pt + pb) * (shape[2] + pl + pr) * 2
        (got,), overrun = run_guarded(graph, lowered, values, tmp_path / str(i))
        assert not overrun, f"{knobs}: the kernel wrote past its scratch"
        assert np.array_equal(got, want), f"{knobs}: {np.count_nonzero(got != want)} values differ"


def test_avg_pool_rounds_half_away_from_zero(tmp_path):
    """2x1 windows whose int8 sums are odd: the halves must round away from zero both ways."""
    mb = mg.ModelBuilder(0)
    x = mb.input((1, 2, 4, 1), "int8", quant=(0.1, 0), name="input")
    y = mg.pool2d(mb, "AVERAGE_POOL_2D", x, (2, 1), (2, 1), "VALID")
    model = mb.build([x], [y])
    from kernelrun import load_graph, run_lowered

    from tinykiln.ops import lower

    graph = load_graph(model)
    value = np.array([[3, -3, 5, -128], [0, 0, -6, -127]], np.int8).reshape(1, 2, 4, 1)
    got = run_lowered(graph, lower(graph), [value], tmp_path)[0]
    assert got.reshape(-1).tolist() == [2, -2, -1, -128]  # 1.5, -1.5, -0.5, -127.5
    assert np.array_equal(got, mg.reference_run(model, [value])[0])
