"""The micro-kernels of runtime/kernels/tk_mk.h (app=mkcheck compares them with plain loops on the
board) and a model whose convolutions call them, validated against LiteRT on an emulated Cortex-M7."""
from __future__ import annotations

import pytest

import modelgen as mg


@pytest.mark.parametrize("board, path", [("host", "portable"), ("mps2-an500", "dsp"), ("mps2-an386", "dsp")])
def test_microkernels_match_plain_loops(scons, board, path):
    result = scons(f"board={board}", "app=mkcheck", "run=1", "werror=1")
    assert result.returncode == 0, result.output
    assert f"mkcheck: {path} path, 7974 cases, 0 mismatches" in result.output, result.output


def test_portable_path_can_be_forced_on_a_dsp_core(scons, tmp_path):
    result = scons("board=mps2-an500", "app=mkcheck", "run=1", "werror=1", "defines=TK_MK_PORTABLE",
                   builddir=tmp_path)
    assert result.returncode == 0, result.output
    assert "mkcheck: portable path, 7974 cases, 0 mismatches" in result.output, result.output


def _conv_model(path):
    """Three int8 convolutions (3x1 on one channel: one-tap runs over three filter rows; SAME with
    odd channel counts; VALID strided), a pointwise one, two depthwise ones (SAME 3x3; VALID 2x3
    strided with depth multiplier 2) and a fully connected layer of 7 units: tails of the 4-wide
    loops, unit loops in the micro-kernel tiles, padding scratch, no-padding input, oc tiles of 1..4,
    odd window widths of the depthwise micro-kernel. Two outputs: the 3x1 layer's and the last."""
    mb = mg.ModelBuilder(11)
    x = mb.input((1, 9, 8, 1), "int8", name="input")
    rows = mg.conv2d(mb, x, 3, (3, 1), padding="SAME", activation="RELU", per_channel=True)
    y = mg.conv2d(mb, rows, 6, (3, 3), padding="SAME", activation="RELU", per_channel=True)
    y = mg.conv2d(mb, y, 5, (3, 2), stride=(2, 2), padding="VALID", per_channel=False)
    y = mg.conv2d(mb, y, 8, (1, 1), padding="SAME", activation="RELU6", per_channel=True)
    y = mg.depthwise_conv2d(mb, y, (3, 3), padding="SAME", activation="RELU")
    y = mg.depthwise_conv2d(mb, y, (2, 3), depth_multiplier=2, stride=(2, 1), padding="VALID")
    y = mg.fully_connected(mb, y, 7, activation="RELU")
    path.write_bytes(mb.build([x], [rows, y]))  # the 3x1 layer is an output too: compared in full
    return path


def test_dsp_convolutions_are_bit_exact_on_cortex_m7(scons, tmp_path):
    model = _conv_model(tmp_path / "convs.tflite")
    result = scons("board=mps2-an500", f"model={model}", "validate=1", "n=4", "werror=1", "use_tuned=0")
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output
