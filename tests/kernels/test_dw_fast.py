"""DEPTHWISE_CONV_2D int8, layout ROW16 (the default where the stride across the width is 1): one
input channel's padded int16 plane at a time, one tk_mk_dw_row_s16 call per output row
(runtime/kernels/tk_mk_dw.h: rows of three taps load a filter row's two weight words with one
LDRD and compute up to six outputs per pass with SMLAD/SMLABT/SMLATB; other widths a generic
pair-wise body; plain C elsewhere, three taps along the row with the weights in registers).
Bit-exact against LiteRT on the host and the emulated Cortex-A9 (portable C), on the emulated
Cortex-M7 and Cortex-M4 (DSP path), for every layout of the knob space and odd shapes:
each row width 1..13 of the three-tap body (chunks of 6, last chunks of 1..6), other kernel
widths, strides and dilation along the height, depth multiplier 2, channel counts not a multiple
of 4, per-tensor and per-channel quantization."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg

SHAPES = [
    # shape, kernel, multiplier, stride, dilation, padding, per_channel
    ((1, 25, 5, 16), (3, 3), 1, (1, 1), (1, 1), "SAME", True),    # kws' depthwise layers, fewer channels
    ((1, 9, 7, 3), (3, 3), 2, (1, 1), (1, 1), "SAME", False),     # depth multiplier 2, per-tensor
    ((1, 8, 11, 5), (3, 3), 1, (2, 1), (1, 1), "VALID", True),    # strided rows, 9 outputs a row
    ((1, 10, 6, 2), (3, 3), 1, (1, 1), (2, 1), "SAME", True),     # dilated rows
    ((1, 6, 9, 3), (2, 4), 1, (1, 1), (1, 1), "SAME", True),      # even kernel width (generic body)
    ((1, 7, 5, 1), (1, 5), 3, (1, 1), (1, 1), "SAME", False),     # one filter row of 5 taps
    ((1, 5, 4, 6), (3, 1), 1, (1, 1), (1, 1), "SAME", True),      # one tap a row
    ((1, 4, 13, 4), (3, 3), 1, (1, 1), (1, 1), "SAME", True),     # 13 outputs: chunks 6, 6, 1
    ((1, 3, 300, 2), (3, 3), 1, (1, 1), (1, 1), "SAME", True),    # 300 outputs a row: calls of 100
]


def _single(shape, kernel, multiplier, stride, dilation, padding, per_channel, seed=3):
    mb = mg.ModelBuilder(seed)
    x = mb.input(shape, "int8", name="input")
    y = mg.depthwise_conv2d(mb, x, kernel, depth_multiplier=multiplier, stride=stride, padding=padding,
                            dilation=dilation, activation="RELU", per_channel=per_channel)
    return mb, x, y


@pytest.mark.parametrize("shape, kernel, multiplier, stride, dilation, padding, per_channel", SHAPES)
def test_every_layout_is_bit_exact(shape, kernel, multiplier, stride, dilation, padding, per_channel, tmp_path):
    """Each layout of the knob space (ROW16 first, the default) against LiteRT on the host."""
    from kernelrun import load_graph
    from test_ops_conv2d import check_knob_points

    from tinykiln.ops import kernel_family, lower

    mb, x, y = _single(shape, kernel, multiplier, stride, dilation, padding, per_channel)
    graph = load_graph(mb.build([x], [y]), mb, [x], [y])
    spec = lower(graph).calls[0].spec
    layouts = kernel_family(spec.family).knob_space(spec)["layout"]
    assert layouts[0] == "ROW16"
    points = [{"layout": layout} for layout in layouts] + [{"layout": "NHWC", "oc_tile": 2, "unroll": True}]
    w8 = kernel[1] == 3  # ROW16 with three taps has int8 weights too (tk_mk_dw_row_s16w8)
    if w8:
        points.append({"layout": "ROW16", "weights8": True})
    taken = check_knob_points(mb, [x], [y], points, tmp_path)
    assert [k["layout"] for k in taken] == [*layouts, "NHWC"] + (["ROW16"] if w8 else [])
    assert [bool(k.get("weights8")) for k in taken][-1] == w8


@pytest.mark.parametrize("shape, kernel, multiplier, stride, dilation, padding, per_channel", SHAPES)
def test_row16_scratch_is_one_plane(shape, kernel, multiplier, stride, dilation, padding, per_channel, tmp_path):
    """ROW16's scratch is one padded plane plus a spare column, rounded to an even width, and the
    kernel never writes past it."""
    from kernelrun import load_graph
    from test_ops_conv2d import run_guarded

    from tinykiln.ops import lower

    mb, x, y = _single(shape, kernel, multiplier, stride, dilation, padding, per_channel, seed=8)
    model = mb.build([x], [y])
    graph = load_graph(model, mb, [x], [y])
    lowered = lower(graph)
    spec = lowered.calls[0].spec
    assert spec.knobs["layout"] == "ROW16"
    pt, pb, pl, pr = spec.attrs["pad"]
    width = shape[2] + pl + pr + 1
    (scratch,) = [p for p in spec.params if p.role == "scratch"]
    assert scratch.nbytes == (shape[1] + pt + pb) * (width + width % 2) * 2
    values = [mg.random_input(mb, x, seed=2)]
    (got,), overrun = run_guarded(graph, lowered, values, tmp_path)
    assert not overrun, "the kernel wrote past its scratch"
    want = mg.reference_run(model, values)[0]
    assert np.array_equal(got, want), f"{np.count_nonzero(got != want)} values differ"


@pytest.mark.parametrize("shape, stride", [
    ((1, 6, 8, 3), (1, 2)),    # a stride across the width
    ((1, 2, 131, 2), (1, 1)),  # a row too long for one call and no even divisor to split it by
])
def test_where_row16_does_not_apply_chw16_is_the_default(shape, stride):
    from kernelrun import load_graph

    from tinykiln.ops import lower

    mb, x, y = _single(shape, (3, 3), 1, stride, (1, 1), "SAME", True)
    spec = lower(load_graph(mb.build([x], [y]), mb, [x], [y])).calls[0].spec
    assert spec.knobs["layout"] == "CHW16"


def test_row16_tiles_of_long_rows():
    from tinykiln.ops.depthwise_conv2d import row16_tile

    assert [row16_tile({"out_shape": [1, 1, ow, 1]}) for ow in (5, 128, 300, 296, 131, 258)] == \
        [5, 128, 100, 74, None, 86]


def _widths_model(path):
    """Rows of 4 and 1 taps (the generic body), three-tap rows under filters of 2, 5 (dilated) and
    3 rows (strided), then a chain whose 3x3 SAME layers see every row width 13 .. 1, each followed
    by a 1x2 VALID layer (generic body) that narrows the row by one: 5 channels, a depth multiplier
    of 2 once, per-tensor weights on every third layer, the outputs of four layers compared. (No
    RELU6: with this seed its range collapses to one value on some layers, where ROW16 steps aside.)"""
    mb = mg.ModelBuilder(21)
    x = mb.input((1, 6, 13, 5), "int8", name="input")
    y = mg.depthwise_conv2d(mb, x, (3, 4), padding="SAME", activation="RELU")
    y = mg.depthwise_conv2d(mb, y, (3, 1), padding="SAME")
    y = mg.depthwise_conv2d(mb, y, (2, 3), padding="SAME", activation="RELU")
    y = mg.depthwise_conv2d(mb, y, (5, 3), padding="SAME", dilation=(2, 1), per_channel=False)
    y = mg.depthwise_conv2d(mb, y, (3, 3), stride=(2, 1), padding="SAME", activation="RELU")
    outs = [y]
    for i, width in enumerate(range(13, 0, -1)):
        y = mg.depthwise_conv2d(mb, y, (3, 3), depth_multiplier=2 if width == 7 else 1, padding="SAME",
                                activation=["RELU", "NONE"][i % 2], per_channel=i % 3 != 2)
        if width in (12, 7, 1):
            outs.append(y)
        if width > 1:
            y = mg.depthwise_conv2d(mb, y, (1, 2), padding="VALID", per_channel=i % 2 == 0,
                                    activation="RELU" if i % 3 == 0 else "NONE")
    path.write_bytes(mb.build([x], outs))
    return path


def test_widths_chain_on_host(tmp_path):
    from kernelrun import load_graph, run_lowered

    from tinykiln.ops import lower

    model = _widths_model(tmp_path / "widths.tflite").read_bytes()
    graph = load_graph(model)
    lowered = lower(graph)
    assert {c.spec.knobs["layout"] for c in lowered.calls} == {"ROW16"}
    assert all(c.spec.attrs["act"][0] < c.spec.attrs["act"][1] - 8 for c in lowered.calls)
    rng = np.random.default_rng(5)
    (index,) = graph.inputs
    inputs = [rng.integers(-128, 128, graph.tensors[index].shape, dtype=np.int8)]
    want = mg.reference_run(model, inputs)
    got = run_lowered(graph, lowered, inputs, tmp_path / "run")
    for w, g in zip(want, got):
        assert np.array_equal(w, g), f"{np.count_nonzero(w != g)} of {w.size} values differ"


def _wide_model(path):
    """Rows of 300 and 296 outputs: tk_mk_dw_row_s16 calls of 100 and 74 outputs (the acc tiles
    start inside the row); dilated rows; LDRD offsets beyond a row of the plane."""
    mb = mg.ModelBuilder(6)
    x = mb.input((1, 5, 300, 2), "int8", name="input")
    y = mg.depthwise_conv2d(mb, x, (3, 3), padding="SAME", dilation=(2, 1), activation="RELU")
    y = mg.depthwise_conv2d(mb, y, (2, 5), padding="VALID", per_channel=False)
    path.write_bytes(mb.build([x], [y]))
    return path


def test_wide_rows_on_cortex_m7(scons, tmp_path):
    model = _wide_model(tmp_path / "wide.tflite")
    result = scons("board=mps2-an500", f"model={model}", "validate=1", "n=2", "werror=1", "use_tuned=0")
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output


@pytest.mark.parametrize("board", ["mps2-an500", pytest.param("mps2-an386", marks=pytest.mark.slow),
                                   pytest.param("pynq-z1", marks=pytest.mark.slow)])  # Cortex-A9: portable C
def test_widths_chain_on_boards(scons, board, tmp_path):
    model = _widths_model(tmp_path / "widths.tflite")
    result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0")
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output


@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386"])
def test_widths_chain_with_int8_weights_on_boards(scons, board, tmp_path):
    """optimize=size: three-tap rows on tk_mk_dw_row_s16w8 (int8 weights), the others in NHWC."""
    model = _widths_model(tmp_path / "widths.tflite")
    result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0",
                   "optimize=size")
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386", "host"])
def test_kws_is_bit_exact(scons, board):
    from pathlib import Path

    model = Path(__file__).resolve().parents[3] / "shared" / "models" / "mlperf_kws_dscnn_int8.tflite"
    if not model.exists():
        pytest.skip(f"{model} not found")
    result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0")
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output
