"""CONV_2D kernels against LiteRT's reference kernels: seeded random shapes and parameters."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg
from kernelrun import check_against_litert


def _conv_case(seed: int, dtype: str):
    rng = np.random.default_rng(seed)
    mb = mg.ModelBuilder(seed)
    h, w = (int(v) for v in rng.integers(4, 12, 2))
    c = int(rng.integers(1, 9))
    x = mb.input((1, h, w, c), dtype, name="input")
    kernel = tuple(int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    dilation = tuple(int(v) for v in rng.integers(1, 3, 2)) if rng.integers(3) == 0 else (1, 1)
    padding = str(rng.choice(["SAME", "VALID"]))
    if padding == "VALID":
        dilation = tuple(min(d, (s - 1) // max(k - 1, 1)) or 1 for d, s, k in zip(dilation, (h, w), kernel))
    y = mg.conv2d(mb, x, int(rng.integers(1, 9)), kernel, stride=stride, padding=padding, dilation=dilation,
                  activation=str(rng.choice(["NONE", "RELU", "RELU6", "RELU_N1_TO_1"])),
                  per_channel=bool(rng.integers(2)))
    return mb, [x], [y]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_conv2d_random(seed, dtype, tmp_path):
    mb, ins, outs = _conv_case(seed, dtype)
    check_against_litert(mb, ins, outs, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6, 40))
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_conv2d_random_more(seed, dtype, tmp_path):
    mb, ins, outs = _conv_case(seed, dtype)
    check_against_litert(mb, ins, outs, tmp_path)


@pytest.mark.parametrize("knobs", [
    {"weight_layout": "HWIO", "oc_tile": 4, "unroll": True, "weights16": False, "input16": True, "im2col": True},
    {"weight_layout": "OHWI", "oc_tile": 2, "unroll": False, "weights16": True, "input16": False, "im2col": False},
    {"weight_layout": "HOWI", "oc_tile": 2, "unroll": False, "weights16": False, "input16": False, "im2col": True},
    {"weight_layout": "HOWI", "oc_tile": 8, "unroll": False, "weights16": True, "input16": True, "im2col": False},
    {"weight_layout": "HOWI", "oc_tile": 1, "unroll": True, "weights16": True, "input16": True, "im2col": True},
])
def test_conv2d_knobs_keep_results(knobs, tmp_path):
    """Every point of the schedule space computes the same bits."""
    from kernelrun import load_graph, run_lowered

    from tinykiln.ops import lower, workload_key

    mb = mg.ModelBuilder(5)
    x = mb.input((1, 7, 6, 3), "int8", name="input")
    y = mg.conv2d(mb, x, 8, (3, 3), stride=(1, 2), padding="SAME", activation="RELU")
    model = mb.build([x], [y])
    graph = load_graph(model, mb, [x], [y])
    default = lower(graph)
    key = workload_key(default.calls[0].spec)
    tuned = lower(graph, {key: knobs})
    assert tuned.calls[0].spec.knobs == {**knobs, "weights8": False}  # (int16 weights: speed's default)
    # another C text under the same name: kernels are named by their workload, not their knobs
    assert tuned.calls[0].spec.spec_hash != default.calls[0].spec.spec_hash
    assert tuned.calls[0].spec.function_name == default.calls[0].spec.function_name
    value = mg.random_input(mb, x, seed=3)
    want = mg.reference_run(model, [value])[0]
    got = run_lowered(graph, tuned, [value], tmp_path)[0]
    assert np.array_equal(got, want)


def check_knob_points(mb, ins, outs, points, tmp_path):
    """The single-op model at each point of its schedule space ({knob: value}, others default)
    against LiteRT, int8 bit-exact. Returns the specs' knobs (to assert a point was really taken)."""
    from kernelrun import load_graph, run_lowered

    from tinykiln.ops import lower, workload_key

    model = mb.build(ins, outs)
    graph = load_graph(model, mb, ins, outs)
    key = workload_key(lower(graph).calls[0].spec)
    values = [mg.random_input(mb, x, seed=7) for x in ins]
    want = mg.reference_run(model, values)
    taken = []
    for i, knobs in enumerate(points):
        lowered = lower(graph, {key: knobs})
        got = run_lowered(graph, lowered, values, tmp_path / str(i))
        for w, g in zip(want, got):
            diff = np.abs(w.astype(np.int32) - g.astype(np.int32))
            assert diff.max() == 0, f"{knobs}: {np.count_nonzero(diff)} of {diff.size} values differ"
        taken.append(lowered.calls[0].spec.knobs)
    return taken


@pytest.mark.parametrize("shape, filters, kernel, stride, padding", [
    ((1, 4, 4, 1), 4, (3, 1), (1, 1), "SAME"),   # slow sweep seed 34: runs of 1 tap, 3 filter rows
    ((1, 5, 4, 1), 5, (3, 1), (1, 1), "SAME"),   # the same with an oc tile of 1
    ((1, 4, 4, 1), 1, (1, 1), (1, 1), "VALID"),  # every loop of the tile is a unit loop, no padding
    ((1, 6, 5, 1), 3, (2, 3), (2, 2), "SAME"),   # runs of 3: the 4-wide loop's tail only
    ((1, 4, 5, 5), 2, (1, 1), (1, 1), "SAME"),   # a run of 5 (one group and a tail), one filter row
])
def test_conv2d_micro_kernel_tiles_with_unit_loops(shape, filters, kernel, stride, padding, tmp_path):
    """HOWI convolutions whose micro-kernel tile has loops of extent 1 (one tap per filter row, one
    output channel per tile, a single filter row): the schedule must still give each filter row its
    own call (it once blockized the kh loop into the tile and computed only the first row)."""
    mb = mg.ModelBuilder(34)
    x = mb.input(shape, "int8", name="input")
    y = mg.conv2d(mb, x, filters, kernel, stride=stride, padding=padding, activation="RELU", per_channel=True)
    points = [{"input16": False}, {"weights16": False, "oc_tile": 1, "input16": False},
              {"unroll": True, "weights16": False, "input16": False}, {}, {"oc_tile": 1, "unroll": True}]
    taken = check_knob_points(mb, [x], [y], points, tmp_path)
    assert all(k["weight_layout"] == "HOWI" for k in taken)
    assert taken[0]["weights16"] and not taken[1]["weights16"] and taken[1]["oc_tile"] == 1
    assert taken[3]["input16"] and taken[4]["input16"] and not taken[0]["input16"]


def test_identical_layers_share_a_spec():
    from kernelrun import graph_from_builder

    from tinykiln.ops import lower

    mb = mg.ModelBuilder(1)
    x = mb.input((1, 6, 6, 4), "int8", name="a")
    y = mg.conv2d(mb, x, 4, (3, 3), name="first")
    # same shapes and quantization, different tensor names and op index
    mb.quants[y] = mb.quants[x]
    mb.tensors[y].quantization = mb.tensors[x].quantization
    w = mb.tensors[1]
    mb.op("CONV_2D", [y, 1, 2], [mb.tensor((1, 6, 6, 4), "int8", quant=mb.quants[3], name="second")],
          padding="SAME", stride=(1, 1), activation="NONE")
    assert w is mb.tensors[1]
    graph = graph_from_builder(mb, [x], [4])
    lowered = lower(graph)
    a, b = lowered.calls
    assert a.spec.function_name == b.spec.function_name


def run_guarded(graph, lowered, values, workdir):
    """A single-op model's kernel called with its scratch param followed by guard bytes: the
    outputs, and whether the kernel wrote past the scratch's planned size."""
    import ctypes

    from kernelrun import build_library

    (call,) = lowered.calls
    lib = build_library(lowered, workdir)
    keep, pointers, guards = [], [], []
    feeds = dict(zip(graph.inputs, values))
    outputs = {}
    for p, arg in zip(call.spec.params, call.args):
        if p.role == "input":
            array = np.ascontiguousarray(feeds[arg], dtype=p.dtype)
        elif p.role == "output":
            array = outputs[arg] = np.zeros(p.shape, dtype=p.dtype)
        elif p.role == "const":
            array = np.ascontiguousarray(arg, dtype=p.dtype)
        else:
            array = np.full(p.nbytes + 256, 0x5A, dtype=np.uint8)
            guards.append((array, p.nbytes))
        keep.append(array)
        pointers.append(ctypes.c_void_p(array.ctypes.data))
    getattr(lib, call.spec.function_name)(*pointers)
    overrun = any(np.any(array[n:] != 0x5A) for array, n in guards)
    return [outputs[i] for i in graph.outputs], overrun


@pytest.mark.parametrize("shape, filters, kernel, stride, dilation, recopy", [
    ((1, 10, 10, 16), 8, (3, 3), (1, 1), (1, 1), False),   # rolling: many channels, 3 rows deep -> 4 slots
    ((1, 11, 9, 8), 8, (3, 3), (2, 2), (1, 1), False),     # rolling with stride 2 (one row shared)
    ((1, 13, 10, 16), 4, (3, 2), (1, 1), (2, 1), False),   # rolling over a dilated window of 5 rows
    ((1, 20, 10, 1), 16, (10, 4), (2, 2), (1, 1), True),   # kws' first layer: tall filter, one channel
    ((1, 9, 9, 4), 8, (2, 2), (2, 2), (1, 1), True),       # windows do not overlap
    ((1, 9, 7, 2), 4, (2, 3), (3, 1), (2, 1), True),       # dilated, stride past the window
])
def test_conv2d_pads_rows_per_output_row(shape, filters, kernel, stride, dilation, recopy, tmp_path):
    """int8 HOWI with padding copies only the padded rows of one output row at a time into a
    scratch of scratch_rows() rows (a rolling buffer, or each window's rows afresh): bit-exact vs
    LiteRT at several knob points, the scratch as small as planned and never overrun; other weight
    layouts pad the whole input."""
    from kernelrun import load_graph

    from tinykiln.ops import lower, workload_key
    from tinykiln.ops.conv2d import _recopy, scratch_rows
    from tinykiln.ops.conv2d_input16 import input16_fits

    mb = mg.ModelBuilder(11)
    x = mb.input(shape, "int8", name="input")
    y = mg.conv2d(mb, x, filters, kernel, stride=stride, padding="SAME", dilation=dilation, activation="RELU",
                  per_channel=True)
    model = mb.build([x], [y])
    graph = load_graph(model, mb, [x], [y])
    spec = lower(graph).calls[0].spec
    a = spec.attrs
    assert _recopy(a) == recopy
    row = (shape[2] + a["pad"][2] + a["pad"][3]) * shape[3]
    rows = kernel[0] if recopy else 1 << ((kernel[0] - 1) * dilation[0]).bit_length()
    assert scratch_rows(a) == rows
    # the rolling slots are hoisted out of unrolled rows (the old path); input16, the default where
    # it fits, calls once per filter row: unrolling would only copy code
    assert spec.knobs["unroll"] == (not recopy and not input16_fits(a))
    key = workload_key(spec)
    values = [mg.random_input(mb, x, seed=5)]
    want = mg.reference_run(model, values)[0]
    points = [{"input16": False}, {"input16": False, "weights16": False, "oc_tile": 1, "unroll": True},
              {"input16": False, "unroll": False}, {"weight_layout": "OHWI"}, {}, {"oc_tile": 1, "unroll": False}]
    for i, knobs in enumerate(points):
        lowered = lower(graph, {key: knobs})
        (scratch,) = [p for p in lowered.calls[0].spec.params if p.role == "scratch"]
        taken = lowered.calls[0].spec.knobs
        whole = taken["weight_layout"] != "HOWI"
        if taken["weight_layout"] == "HOWI" and taken["input16"] and taken["im2col"]:
            # one output row's windows, each of kh * kw * ic taps rounded up to even
            window = kernel[0] * kernel[1] * shape[3]
            assert scratch.nbytes == a["out_shape"][2] * (window + window % 2) * 2
        elif taken["weight_layout"] == "HOWI" and taken["input16"]:
            # int16 rows of even length: a rolling buffer of the window's rows, or kh rows afresh
            span = (kernel[0] - 1) * dilation[0] + 1
            want_rows = kernel[0] if stride[0] >= span else span
            assert scratch.nbytes == want_rows * (row + row % 2) * 2
        else:
            assert scratch.nbytes == (shape[1] + a["pad"][0] + a["pad"][1] if whole else rows) * row
        assert workload_key(lowered.calls[0].spec) == key  # the scratch's size is no knob's
        (got,), overrun = run_guarded(graph, lowered, values, tmp_path / str(i))
        assert not overrun, f"{knobs}: the kernel wrote past its scratch"
        assert np.array_equal(got, want), f"{knobs}: {np.count_nonzero(got != want)} values differ"


@pytest.mark.parametrize("shape, kernel, padding", [
    ((1, 1, 1, 32), (3, 3), "SAME"),   # an SSD head on a 1x1 feature map (ST's st_ssd_mobilenet_v1)
    ((1, 3, 5, 8), (3, 3), "VALID"),   # one output row from three input rows
])
def test_conv2d_int8_with_one_output_row(shape, kernel, padding, tmp_path):
    """One output row: the int16-rows schedule copies its rows once instead of a rolling buffer (TVM
    finds no row pattern to roll in a loop of one and refused to schedule the kernel)."""
    mb = mg.ModelBuilder(21)
    x = mb.input(shape, "int8", name="input")
    y = mg.conv2d(mb, x, 10, kernel, padding=padding, per_channel=True)
    assert mb.shapes[y][1] == 1
    check_against_litert(mb, [x], [y], tmp_path)
