"""The input16 CONV_2D schedules (ops/conv2d_input16.py Geometry16, runtime/kernels/tk_mk_conv.h): int16
rows or im2col windows, pixel pairs x channel pairs. Bit-exact against LiteRT on the host (portable
C) at several knob points, and on emulated Cortex-M7 / Cortex-M4 (the LDRD + SMLAD body) for
generated edge cases: odd channel counts (a padding channel), runs that are not a multiple of
four, odd output widths (the last pixel of a pair missing), odd oc tiles, strides, dilation,
SAME/VALID, per-tensor and per-channel weights, fused RELU/RELU6."""
from __future__ import annotations

import json

import numpy as np
import pytest

import modelgen as mg
from test_ops_conv2d import check_knob_points

# (input shape, filters, kernel, stride, padding, dilation, per_channel, activation)
CASES = [
    ((1, 9, 7, 3), 5, (3, 3), (1, 1), "SAME", (1, 1), True, "RELU"),     # 3 channels -> 4, odd width, oc 5
    ((1, 20, 10, 1), 6, (10, 4), (2, 2), "SAME", (1, 1), True, "NONE"),  # kws' first layer: im2col
    ((1, 11, 9, 2), 4, (3, 3), (2, 2), "VALID", (1, 1), False, "RELU6"), # runs of 6, stride 2, per-tensor
    ((1, 6, 7, 6), 7, (1, 1), (1, 1), "VALID", (1, 1), True, "NONE"),    # pointwise: widened, no padding
    ((1, 10, 8, 4), 6, (3, 2), (1, 1), "SAME", (2, 1), True, "RELU"),    # dilated rows: 5-row rolling window
    ((1, 8, 9, 1), 3, (3, 3), (1, 1), "SAME", (1, 1), False, "NONE"),    # one channel, odd runs (unpaired)
    ((1, 7, 10, 5), 8, (2, 2), (2, 2), "SAME", (1, 1), True, "RELU6"),   # 5 channels, windows do not overlap
    ((1, 5, 5, 3), 2, (3, 1), (1, 2), "SAME", (1, 1), True, "NONE"),     # odd channels, odd stride across
    ((1, 6, 4, 3), 4, (2, 5), (1, 1), "SAME", (1, 1), True, "RELU"),     # im2col windows cut on both sides
]

def _points(mb, x, y):
    """Default knobs, each other value of oc_tile / unroll / im2col alone (input16 on), and all of
    them at their last value together."""
    from kernelrun import load_graph

    from tinykiln.ops import knob_space, lower

    graph = load_graph(mb.build([x], [y]), mb, [x], [y])
    space = knob_space(lower(graph).calls[0].spec)
    points = [{}] + [{name: v} for name in ("oc_tile", "unroll", "im2col") for v in space[name][1:]]
    last = {name: space[name][-1] for name in ("oc_tile", "unroll", "im2col")}
    # int8 weights (tk_mk_conv_s16w8): in the default geometry, and with the other knobs at their last
    return points + [last, {"weights8": True}, {"weights8": True, "im2col": space["im2col"][-1]},
                     dict(last, weights8=True)]


def _single(case, seed=3):
    shape, filters, kernel, stride, padding, dilation, per_channel, act = case
    mb = mg.ModelBuilder(seed)
    x = mb.input(shape, "int8", name="input")
    y = mg.conv2d(mb, x, filters, kernel, stride=stride, padding=padding, dilation=dilation,
                  activation=act, per_channel=per_channel)
    return mb, x, y


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_input16_knob_points_are_bit_exact_on_host(case, tmp_path):
    mb, x, y = _single(case)
    taken = check_knob_points(mb, [x], [y], _points(mb, x, y), tmp_path)
    assert all(k["weight_layout"] == "HOWI" and k["input16"] for k in taken)
    assert {k["im2col"] for k in taken} == {True, False}  # both geometries ran
    assert {k["im2col"] for k in taken if k["weights8"]} == {True, False}  # int8 weights in both


def test_input16_scratch_is_not_overrun(tmp_path):
    """The kernel writes its int16 scratch within the planned size (guard bytes after it)."""
    from kernelrun import load_graph
    from test_ops_conv2d import run_guarded

    from tinykiln.ops import lower, workload_key

    for i, case in enumerate(CASES):
        mb, x, y = _single(case)
        model = mb.build([x], [y])
        graph = load_graph(model, mb, [x], [y])
        key = workload_key(lower(graph).calls[0].spec)
        values = [mg.random_input(mb, x, seed=5)]
        want = mg.reference_run(model, values)[0]
        for j, knobs in enumerate([{"im2col": False}, {"im2col": True}]):
            lowered = lower(graph, {key: knobs})
            (got,), overrun = run_guarded(graph, lowered, values, tmp_path / f"{i}_{j}")
            assert not overrun, f"case {i} {knobs}: the kernel wrote past its scratch"
            assert np.array_equal(got, want), f"case {i} {knobs}"


def test_odd_channels_get_a_padding_channel():
    from tinykiln.ops.conv2d_input16 import channels16, geometry16

    def attrs(c, kernel, stride, w=8):
        return {"in_shape": [1, 8, w, c], "out_shape": [1, 8, w, 4], "kernel": list(kernel),
                "stride": list(stride), "dilation": [1, 1], "pad": [1, 1, 1, 1]}

    assert channels16(attrs(3, (3, 3), (1, 1))) == 4
    assert channels16(attrs(5, (2, 2), (2, 2))) == 5  # even runs and distances already
    assert channels16(attrs(1, (3, 3), (1, 1))) == 1
    g = geometry16(attrs(3, (3, 3), (1, 1)), im2col=False)
    assert (g.k, g.xs, g.length % 2) == (12, 4, 0)
    g = geometry16(attrs(1, (3, 3), (1, 1)), im2col=True)
    assert (g.rows, g.k, g.length) == (1, 10, 80)  # 9 taps and a padding tap, per pixel


def _edge_model(path):
    """The cases chained where shapes allow, each layer an output (compared in full)."""
    mb = mg.ModelBuilder(21)
    x = mb.input((1, 20, 10, 1), "int8", name="input")
    a = mg.conv2d(mb, x, 3, (10, 4), stride=(2, 2), padding="SAME", per_channel=True)          # 10x5x3, im2col
    b = mg.conv2d(mb, a, 5, (3, 3), padding="SAME", activation="RELU", per_channel=True)       # 3 -> 4 channels
    c = mg.conv2d(mb, b, 6, (3, 2), stride=(2, 1), padding="VALID", per_channel=False)         # odd width 4
    d = mg.conv2d(mb, c, 7, (1, 1), padding="VALID", activation="RELU6", per_channel=True)     # pointwise, oc 7
    e = mg.conv2d(mb, d, 4, (3, 3), padding="SAME", dilation=(2, 1), activation="RELU", per_channel=True)
    # im2col windows cut on the left (first pixel), whole (second), cut on the right (third)
    f = mg.conv2d(mb, a, 4, (3, 5), stride=(1, 2), padding="SAME", per_channel=True)           # 10x3x4
    path.write_bytes(mb.build([x], [a, b, c, d, e, f]))
    return path


def _validate(scons, board, model, *extra, builddir=None):
    result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", *extra,
                   builddir=builddir)
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output
    return result


def test_edge_convs_bit_exact_on_cortex_m7(scons, tmp_path):
    _validate(scons, "mps2-an500", _edge_model(tmp_path / "edge.tflite"), "use_tuned=0")


@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386"])
def test_edge_convs_with_int8_weights_bit_exact_on_device(scons, board, tmp_path):
    """optimize=size: every conv's weights int8 in flash (tk_mk_conv_s16w8, widened by SXTB16)."""
    _validate(scons, board, _edge_model(tmp_path / "edge.tflite"), "use_tuned=0", "optimize=size")


@pytest.mark.slow
def test_edge_convs_bit_exact_on_cortex_m4(scons, tmp_path):
    _validate(scons, "mps2-an386", _edge_model(tmp_path / "edge.tflite"), "use_tuned=0")


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386"])
def test_edge_convs_other_knobs_bit_exact_on_device(scons, board, tmp_path):
    """Every conv with the other geometry (im2col toggled), oc tiles of 1 and rolled filter rows,
    through a schedules= file."""
    from kernelrun import load_graph

    from tinykiln.ops import lower, workload_key

    model = _edge_model(tmp_path / "edge.tflite")
    graph = load_graph(model.read_bytes())
    kernels = {}
    for call in lower(graph).calls:
        if call.spec.family == "conv2d_int8":
            knobs = {"im2col": not call.spec.knobs["im2col"], "oc_tile": 1, "unroll": False}
            kernels[workload_key(call.spec)] = {"family": "conv2d_int8", "knobs": knobs}
    schedule = tmp_path / "knobs.json"
    schedule.write_text(json.dumps({"format": 1, "model": "edge", "board": board, "kernels": kernels}))
    result = _validate(scons, board, model, f"schedules={schedule}")
    assert "stale" not in result.output and "not in its space" not in result.output, result.output


def test_im2col_is_the_default_only_for_few_channels_and_small_scratch():
    from tinykiln.ops.conv2d_input16 import short_runs

    def attrs(c, kernel, w):
        return {"in_shape": [1, 8, w, c], "out_shape": [1, 8, w, 8], "kernel": list(kernel),
                "stride": [1, 1], "dilation": [1, 1], "pad": [1, 1, 1, 1]}

    assert short_runs(attrs(3, (3, 3), 32))       # resnet8's first layer: 32 x 28 taps x 2 B
    assert not short_runs(attrs(8, (3, 3), 32))    # runs of 24 taps need no gathering
    assert not short_runs(attrs(3, (1, 3), 32))    # one filter row: one run already
    assert not short_runs(attrs(3, (7, 7), 200))   # 200 x 148 taps x 2 B: too big a scratch
