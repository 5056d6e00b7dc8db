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
    {"weight_layout": "HWIO", "oc_tile": 4, "unroll": True, "weights16": False},
    {"weight_layout": "OHWI", "oc_tile": 2, "unroll": False, "weights16": True},
    {"weight_layout": "HOWI", "oc_tile": 2, "unroll": False, "weights16": False},
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
    assert tuned.calls[0].spec.knobs == knobs
    # another C text under the same name: kernels are named by their workload, not their knobs
    assert tuned.calls[0].spec.spec_hash != default.calls[0].spec.spec_hash
    assert tuned.calls[0].spec.function_name == default.calls[0].spec.function_name
    value = mg.random_input(mb, x, seed=3)
    want = mg.reference_run(model, [value])[0]
    got = run_lowered(graph, tuned, [value], tmp_path)[0]
    assert np.array_equal(got, want)


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
