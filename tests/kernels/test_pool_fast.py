"""int8 MAX_POOL_2D / AVERAGE_POOL_2D through the layer micro-kernels (runtime/kernels/tk_mk_pool.h:
four channels per word with SSUB8/SEL and SXTAB16 on Cortex-M DSP, plain C elsewhere), the
default knob. Bit-exact against LiteRT on the host and the emulated Cortex-A9 (portable C), on the
emulated Cortex-M7 and Cortex-M4 (DSP path), with the TVM loop nest (microkernel off) as the other
point of the knob space: channel counts not a multiple of 4 (word loads at unaligned addresses,
channel tails), SAME/VALID borders (windows cut by the image: smaller counts), strides, 1xN/Nx1
windows, global pools, windows of more than 255 taps (the int32 sums), fused RELU/RELU6."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg

KINDS = ["MAX_POOL_2D", "AVERAGE_POOL_2D"]
# RELU clamps at -10 and RELU6 at 110: both bounds of the clamp cut real values
QUANT = (0.05, -10)

SHAPES = [
    # shape, filter, stride, padding, activation
    ((1, 32, 32, 8), (3, 3), (2, 2), "SAME", "RELU"),     # cifar10's max pool, fewer channels
    ((1, 9, 7, 7), (3, 3), (2, 2), "SAME", "NONE"),       # 7 channels: one word and a tail
    ((1, 8, 8, 4), (2, 2), (2, 2), "VALID", "RELU6"),     # the clamp from above
    ((1, 7, 6, 5), (1, 3), (1, 2), "SAME", "NONE"),       # a 1x3 window
    ((1, 6, 5, 6), (4, 1), (1, 1), "SAME", "RELU"),       # a 4x1 window
    ((1, 25, 5, 12), (25, 5), (1, 1), "VALID", "NONE"),   # global pool (kws' shape)
    ((1, 17, 16, 3), (17, 16), (1, 1), "VALID", "NONE"),  # 272 taps: the int32 sums
    ((1, 5, 5, 9), (5, 5), (2, 2), "SAME", "RELU"),       # windows larger than the stride
    ((1, 4, 4, 2), (1, 1), (2, 2), "VALID", "NONE"),      # 1x1: a strided copy, no word at all
]


def _single(kind, shape, filt, stride, padding, activation, seed=4):
    mb = mg.ModelBuilder(seed)
    x = mb.input(shape, "int8", quant=QUANT, name="input")
    y = mg.pool2d(mb, kind, x, filt, stride, padding, activation)
    return mb, x, y


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape, filt, stride, padding, activation", SHAPES)
def test_every_knob_point_is_bit_exact(kind, shape, filt, stride, padding, activation, tmp_path):
    """The micro-kernel (default) and the TVM loop nest against LiteRT on the host."""
    from kernelrun import load_graph
    from test_ops_conv2d import check_knob_points

    from tinykiln.ops import kernel_family, lower

    mb, x, y = _single(kind, shape, filt, stride, padding, activation)
    graph = load_graph(mb.build([x], [y]), mb, [x], [y])
    spec = lower(graph).calls[0].spec
    assert kernel_family(spec.family).knob_space(spec)["microkernel"] == [True, False]
    points = [{}, {"microkernel": False}, {"microkernel": False, "oc_tile": 1, "unroll": False}]
    taken = check_knob_points(mb, [x], [y], points, tmp_path)
    assert [k["microkernel"] for k in taken] == [True, False, False]


def test_float_pools_have_no_microkernel_knob():
    from kernelrun import load_graph

    from tinykiln.ops import kernel_family, lower

    mb = mg.ModelBuilder(1)
    x = mb.input((1, 6, 6, 4), "float32", name="input")
    y = mg.pool2d(mb, "MAX_POOL_2D", x, (2, 2), (2, 2))
    spec = lower(load_graph(mb.build([x], [y]), mb, [x], [y])).calls[0].spec
    assert "microkernel" not in kernel_family(spec.family).knob_space(spec)


def test_generated_c_is_one_call(tmp_path):
    from kernelrun import load_graph

    from tinykiln.codegen import kernel_c
    from tinykiln.ops import lower

    mb, x, y = _single("AVERAGE_POOL_2D", (1, 9, 7, 7), (3, 3), (2, 2), "SAME", "NONE")
    spec = lower(load_graph(mb.build([x], [y]), mb, [x], [y])).calls[0].spec
    assert "tk_mk_avgpool_s8(" in kernel_c(spec)


def _branches_model(path, part):
    """Shapes 4*part .. 4*part+3 of SHAPES, both kinds, as branches of one model (one input per shape;
    the runtime takes at most 8 outputs)."""
    mb = mg.ModelBuilder(9)
    ins, outs = [], []
    for i, (shape, filt, stride, padding, activation) in enumerate(SHAPES[4 * part:4 * part + 4]):
        x = mb.input(shape, "int8", quant=QUANT, name=f"input{i}")
        ins.append(x)
        for kind in KINDS:
            outs.append(mg.pool2d(mb, kind, x, filt, stride, padding, activation))
    path.write_bytes(mb.build(ins, outs))
    return path


@pytest.mark.parametrize("board", ["host", "mps2-an500", pytest.param("mps2-an386", marks=pytest.mark.slow),
                                   pytest.param("pynq-z1", marks=pytest.mark.slow)])  # Cortex-A9: portable C
def test_branches_on_boards(scons, board, tmp_path):
    for part in range((len(SHAPES) + 3) // 4):
        model = _branches_model(tmp_path / f"pools{part}.tflite", part)
        result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0")
        assert result.returncode == 0, result.output
        assert "validation PASS" in result.output, result.output


@pytest.mark.slow
@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386", "host"])
@pytest.mark.parametrize("name", ["mlperf_kws_dscnn_int8", "mlperf_ic_resnet8_int8"])
def test_shared_models_are_bit_exact(scons, board, name):
    from pathlib import Path

    model = Path(__file__).resolve().parents[3] / "shared" / "models" / f"{name}.tflite"
    if not model.exists():
        pytest.skip(f"{model} not found")
    result = scons(f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0")
    assert result.returncode == 0, result.output
    assert "validation PASS" in result.output, result.output


def test_random_inputs_reach_the_int8_extremes():
    """The host checks above are only as good as their inputs: they must contain -128 and 127
    (a wrong lane sign extension or rounding shows there first)."""
    mb, x, _ = _single("MAX_POOL_2D", (1, 32, 32, 8), (3, 3), (2, 2), "SAME", "RELU")
    value = mg.random_input(mb, x, seed=7)
    assert value.min() == -128 and value.max() == 127
    assert np.issubdtype(value.dtype, np.int8)
