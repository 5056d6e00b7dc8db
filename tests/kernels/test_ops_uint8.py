"""uint8 end-to-end graphs (TF1 style) on the int8 kernels (tflite/uint8.py), bit-exact with LiteRT's
uint8 reference kernels, with uint8 at the API."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg
import uint8net
from kernelrun import check_against_litert

from tinykiln import KilnError
from tinykiln.tflite import load


def _act(mb, shape, zp=None, scale=None, name=None):
    scale = scale if scale is not None else float(np.exp(mb.rng.uniform(np.log(0.01), np.log(0.1))))
    zp = int(mb.rng.integers(0, 256)) if zp is None else zp
    return mb.tensor(shape, "uint8", quant=(scale, zp), name=name)


def test_uint8_tensors_become_int8_inside_and_stay_uint8_at_the_api():
    mb = mg.ModelBuilder(0)
    a, b = _act(mb, (1, 4, 4, 3), 120, name="a"), _act(mb, (1, 4, 4, 3), 7, name="b")
    y = _act(mb, (1, 4, 4, 3), 130, name="y")
    mb.op("ADD", [a, b], [y])
    g = load(mb.build([a, b], [y]))
    # the file's tensors keep their indices (as int8, zero point - 128); the API's are new uint8 ones
    assert [(t.name, t.dtype, t.quant.zero_point, t.from_uint8) for t in g.tensors] == [
        ("a/int8", "int8", (-8,), True), ("b/int8", "int8", (-121,), True), ("y/int8", "int8", (2,), True),
        ("a", "uint8", (120,), False), ("b", "uint8", (7,), False), ("y", "uint8", (130,), False)]
    assert g.inputs == [3, 4] and g.outputs == [5]
    # the file's op keeps its index; the edges are numbered after it, in execution order
    assert [(op.index, op.kind, op.inputs, op.outputs) for op in g.ops] == [
        (1, "QUANTIZE", [3], [0]), (2, "QUANTIZE", [4], [1]), (0, "ADD", [0, 1], [2]), (3, "QUANTIZE", [2], [5])]


def test_uint8_input_quantized_by_the_model_is_read_as_it_is(tmp_path):
    """ST's export: uint8 input -> QUANTIZE -> int8 graph, int8 -> QUANTIZE -> uint8 output: no edge
    op is added, the model's own QUANTIZE ops read and write uint8."""
    mb = mg.ModelBuilder(1)
    x = _act(mb, (1, 6, 6, 2), 128, scale=1 / 255, name="x")
    q = mg.quantize(mb, x, quant=(0.02, -5))
    r = mg.unary(mb, "RELU", q)
    y = _act(mb, (1, 6, 6, 2), 3, scale=0.03, name="y")
    mb.op("QUANTIZE", [r], [y])
    g = load(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == ["QUANTIZE", "RELU", "QUANTIZE"]
    assert g.tensor(g.inputs[0]).dtype == "uint8" and g.tensor(g.outputs[0]).dtype == "uint8"
    check_against_litert(mb, [x], [y], tmp_path)


@pytest.mark.parametrize("seed", range(3))
def test_uint8_add_sub_mul(seed, tmp_path):
    mb = mg.ModelBuilder(seed)
    shape = (1, 3, 5, 4)
    a, b = _act(mb, shape), _act(mb, (1, 1, 5, 4) if seed == 2 else shape)
    outs = []
    for kind, act in (("ADD", "NONE"), ("SUB", "RELU"), ("MUL", "RELU6")):
        y = _act(mb, shape)
        mb.op(kind, [a, b], [y], activation=act)
        outs.append(y)
    check_against_litert(mb, [a, b], outs, tmp_path)


def test_uint8_and_int8_activations_do_not_mix():
    mb = mg.ModelBuilder(2)
    a = _act(mb, (1, 4), 100)
    b = mb.input((1, 4), "int8")
    y = _act(mb, (1, 4), 100)
    mb.op("ADD", [a, b], [y])
    with pytest.raises(KilnError, match="mixes int8 and uint8 activations"):
        load(mb.build([a, b], [y]))


def _weights(mb, shape, name):
    """uint8 weights with a nonzero zero point (per tensor, as TF1's converter writes them)."""
    zp = int(mb.rng.integers(40, 216))
    scale = float(np.exp(mb.rng.uniform(np.log(0.002), np.log(0.02))))
    data = np.clip(np.rint(mb.rng.normal(zp, 60, size=shape)), 0, 255)
    return mb.tensor(shape, "uint8", quant=(scale, zp), data=data, name=name), scale


def _bias(mb, x, w_scale, n):
    scale = mb.quants[x][0] * w_scale
    return mb.tensor((n,), "int32", quant=(scale, 0), data=mb.rng.integers(-3000, 3000, size=n))


def _out_scale(mb, x, w_scale, taps):
    # about 3 sigma of the accumulator over the uint8 range (outputs get a zero point near 128)
    return float(mb.quants[x][0] * w_scale * np.sqrt(taps) * 74 * 60 * 6 / 255)


def _out(mb, shape, scale):
    return _act(mb, shape, int(mb.rng.integers(98, 158)), scale=scale)


def _conv_case(seed, kind):
    rng = np.random.default_rng(seed)
    mb = mg.ModelBuilder(seed)
    h, w = (int(v) for v in rng.integers(3, 10, 2))
    c = int(rng.integers(1, 7))
    x = _act(mb, (1, h, w, c), name="input")
    k = tuple(int(v) for v in rng.integers(1, 4, 2))
    stride = tuple(int(v) for v in rng.integers(1, 3, 2))
    padding = str(rng.choice(["SAME", "VALID"]))
    act = str(rng.choice(["NONE", "RELU", "RELU6"]))
    oh = (h + stride[0] - 1) // stride[0] if padding == "SAME" else (h - k[0] + stride[0]) // stride[0]
    ow = (w + stride[1] - 1) // stride[1] if padding == "SAME" else (w - k[1] + stride[1]) // stride[1]
    if kind == "CONV_2D":
        oc = int(rng.integers(1, 9))
        wt, ws = _weights(mb, (oc, k[0], k[1], c), "filter")
        y = _out(mb, (1, oh, ow, oc), _out_scale(mb, x, ws, k[0] * k[1] * c))
        mb.op(kind, [x, wt, _bias(mb, x, ws, oc)], [y], padding=padding, stride=stride, activation=act)
    else:
        m = int(rng.integers(1, 3))
        wt, ws = _weights(mb, (1, k[0], k[1], c * m), "filter")
        y = _out(mb, (1, oh, ow, c * m), _out_scale(mb, x, ws, k[0] * k[1]))
        mb.op(kind, [x, wt, _bias(mb, x, ws, c * m)], [y], padding=padding, stride=stride, activation=act,
              depth_multiplier=m)
    return mb, [x], [y]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_uint8_conv_with_weight_zero_points(kind, seed, tmp_path):
    mb, ins, outs = _conv_case(seed, kind)
    check_against_litert(mb, ins, outs, tmp_path)


@pytest.mark.parametrize("seed", range(3))
def test_uint8_fully_connected_with_weight_zero_points(seed, tmp_path):
    mb = mg.ModelBuilder(seed)
    depth, units = 5 + 7 * seed, 3 + 2 * seed
    x = _act(mb, (2, depth), name="input")
    wt, ws = _weights(mb, (units, depth), "weights")
    y = _out(mb, (2, units), _out_scale(mb, x, ws, depth))
    mb.op("FULLY_CONNECTED", [x, wt, _bias(mb, x, ws, units)], [y], activation="RELU" if seed else "NONE")
    check_against_litert(mb, [x], [y], tmp_path)


def _knob_points(mb, ins, outs, tmp_path, fixed=None):
    """The weighted op at each value of each of its knobs (the others default) against LiteRT:
    every layout takes the weights' zero point. Returns the points taken."""
    from kernelrun import load_graph, run_lowered

    from tinykiln.ops import lower, workload_key
    from tinykiln.ops.registry import FAMILIES

    model = mb.build(ins, outs)
    graph = load_graph(model, mb, ins, outs)
    spec = next(c.spec for c in lower(graph).calls  # the weighted op, not the uint8 edges' casts
                if c.spec.family.startswith(("conv2d", "depthwise_conv2d", "fully_connected")))
    key = workload_key(spec)
    space = FAMILIES[spec.family].knob_space(spec)
    values = [mg.random_input(mb, x, seed=7) for x in ins]
    want = mg.reference_run(model, values)
    points = [dict(fixed or {}, **{name: v}) for name, vs in space.items() for v in vs[1:]] + [dict(fixed or {})]
    for i, knobs in enumerate(points):
        got = run_lowered(graph, lower(graph, {key: knobs}), values, tmp_path / str(i))
        for w, g in zip(want, got):
            assert np.array_equal(w, g), knobs
    return space


@pytest.mark.slow
def test_uint8_conv_every_layout(tmp_path):
    mb = mg.ModelBuilder(11)
    x = _act(mb, (1, 6, 5, 3), name="input")
    wt, ws = _weights(mb, (4, 3, 3, 3), "filter")
    y = _out(mb, (1, 6, 5, 4), _out_scale(mb, x, ws, 27))
    mb.op("CONV_2D", [x, wt, _bias(mb, x, ws, 4)], [y], padding="SAME", stride=(1, 1), activation="RELU")
    space = _knob_points(mb, [x], [y], tmp_path)
    assert space["weights16"] == [True] and "HWIO" in space["weight_layout"]
    _knob_points(mb, [x], [y], tmp_path / "howi", {"input16": False})


@pytest.mark.slow
def test_uint8_depthwise_every_layout(tmp_path):
    mb = mg.ModelBuilder(12)
    x = _act(mb, (1, 7, 6, 4), name="input")
    wt, ws = _weights(mb, (1, 3, 3, 4), "filter")
    y = _out(mb, (1, 7, 6, 4), _out_scale(mb, x, ws, 9))
    mb.op("DEPTHWISE_CONV_2D", [x, wt, _bias(mb, x, ws, 4)], [y], padding="SAME", stride=(1, 1),
          depth_multiplier=1)
    space = _knob_points(mb, [x], [y], tmp_path)
    assert space["layout"] == ["ROW16", "CHW16", "NHWC"]


def test_uint8_fully_connected_every_layout(tmp_path):
    mb = mg.ModelBuilder(13)
    x = _act(mb, (1, 13), name="input")
    wt, ws = _weights(mb, (6, 13), "weights")
    y = _out(mb, (1, 6), _out_scale(mb, x, ws, 13))
    mb.op("FULLY_CONNECTED", [x, wt, _bias(mb, x, ws, 6)], [y])
    space = _knob_points(mb, [x], [y], tmp_path)
    assert space["weights16"] == [True]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("kind", ["AVERAGE_POOL_2D", "MAX_POOL_2D"])
def test_uint8_pools(kind, seed, tmp_path):
    mb = mg.ModelBuilder(seed)
    x = _act(mb, (1, 6, 7, 3), name="input")
    filt = [(2, 2), (3, 3), (2, 3)][seed]
    y = mg.pool2d(mb, kind, x, filt, (1, 2) if seed else (2, 2), padding="SAME" if seed % 2 else "VALID",
                  activation="RELU" if seed == 2 else "NONE")
    check_against_litert(mb, [x], [y], tmp_path, seeds=(0, 1, 2))


def test_uint8_average_with_odd_counts_keeps_the_int8_kernel(tmp_path):
    """Windows of odd counts have no ties: the int8 rounding (and its micro-kernel) is exact."""
    mb = mg.ModelBuilder(4)
    x = _act(mb, (1, 7, 7, 4), name="input")
    y = mg.pool2d(mb, "AVERAGE_POOL_2D", x, (3, 3), (2, 2))
    lowered = check_against_litert(mb, [x], [y], tmp_path, seeds=(0, 1, 2))
    pool = next(c.spec for c in lowered.calls if c.spec.family.startswith("avg"))
    assert "rounding" not in pool.attrs and pool.knobs["microkernel"] is True


_FIXED = {"SOFTMAX": (1 / 256, 0), "LOGISTIC": (1 / 256, 0), "TANH": (1 / 128, 128)}


@pytest.mark.parametrize("kind, options", [
    ("SOFTMAX", {"beta": 1.0}), ("SOFTMAX", {"beta": 0.5}), ("LOGISTIC", {}), ("TANH", {}), ("RELU", {}),
    ("RELU6", {}), ("LEAKY_RELU", {"alpha": 0.2}), ("HARD_SWISH", {})])
def test_uint8_activations(kind, options, tmp_path):
    mb = mg.ModelBuilder(len(kind))
    x = _act(mb, (2, 9), scale=0.05, name="input")
    y = _act(mb, (2, 9), *reversed(_FIXED[kind])) if kind in _FIXED else _act(mb, (2, 9), scale=0.04)
    mb.op(kind, [x], [y], **options)
    check_against_litert(mb, [x], [y], tmp_path, seeds=(0, 1, 2))


def _same_quant(mb, kind, x, shape, extra=(), **options):
    y = mb.tensor(shape, "uint8", quant=mb.quants[x])
    mb.op(kind, [x, *extra], [y], **options)
    return y


def test_uint8_movement_ops(tmp_path):
    """CONCATENATION, PAD (the pad value is the zero point), RESHAPE, TRANSPOSE, STRIDED_SLICE, MEAN."""
    mb = mg.ModelBuilder(5)
    q = (0.05, 131)
    a, b = mb.tensor((1, 3, 4, 2), "uint8", quant=q, name="a"), mb.tensor((1, 3, 4, 1), "uint8", quant=q, name="b")
    cat = mg.concatenation(mb, [a, b], axis=3)
    padded = _same_quant(mb, "PAD", cat, (1, 5, 5, 3), [mb.const([[0, 0], [1, 1], [0, 1], [0, 0]])])
    flat = _same_quant(mb, "RESHAPE", padded, (1, 75), [mb.const([1, 75])])
    moved = _same_quant(mb, "TRANSPOSE", padded, (1, 3, 5, 5), [mb.const([0, 3, 1, 2])])
    sliced = _same_quant(mb, "STRIDED_SLICE", padded, (1, 2, 5, 3),
                         [mb.const([0, 1, 0, 0]), mb.const([1, 5, 5, 3]), mb.const([1, 2, 1, 1])])
    mean = _act(mb, (1, 1, 1, 3), 120, scale=0.03)
    mb.op("MEAN", [padded, mb.const([1, 2])], [mean], keep_dims=True)
    check_against_litert(mb, [a, b], [cat, flat, moved, sliced, mean], tmp_path, seeds=(0, 1, 2))


def test_uint8_ops_whose_arithmetic_differs_are_rejected(monkeypatch):
    from tinykiln.tflite import uint8

    monkeypatch.setitem(uint8.DIFFERENT_ARITHMETIC, "MAX_POOL_2D", "its uint8 kernel differs")
    mb = mg.ModelBuilder(3)
    x = _act(mb, (1, 4, 4, 2), name="input")
    y = mg.pool2d(mb, "MAX_POOL_2D", x, name="pooled")
    with pytest.raises(KilnError, match=r"op 0 MAX_POOL_2D \(output 'pooled'\): uint8 MAX_POOL_2D is not "
                                        "supported: its uint8 kernel differs"):
        load(mb.build([x], [y]))


def test_per_channel_uint8_weights_are_rejected():
    mb = mg.ModelBuilder(3)
    x = _act(mb, (1, 4, 4, 2), name="input")
    wt = mb.tensor((3, 1, 1, 2), "uint8", quant=([0.01, 0.02, 0.03], [100, 120, 130], 0), data=np.ones((3, 1, 1, 2)),
                   name="filter")
    y = _act(mb, (1, 4, 4, 3))
    mb.op("CONV_2D", [x, wt, -1], [y], padding="SAME", stride=(1, 1))
    with pytest.raises(KilnError, match="uint8 filter 'filter' is quantized per channel"):
        load(mb.build([x], [y]))


def test_uint8_concatenation_of_differently_quantized_inputs_is_rejected():
    mb = mg.ModelBuilder(3)
    a, b = _act(mb, (1, 2, 2), 100, 0.1, name="a"), _act(mb, (1, 2, 2), 90, 0.1, name="b")
    y = _act(mb, (1, 2, 4), 100, 0.1)
    mb.op("CONCATENATION", [a, b], [y], axis=2)
    with pytest.raises(KilnError, match="uint8 input 'b' is quantized differently from the output"):
        load(mb.build([a, b], [y]))


@pytest.mark.parametrize("seed", [0])
def test_uint8_chain(seed, tmp_path):
    """A small uint8 network, op after op on the int8 kernels, bit-exact at its uint8 output."""
    mb, ins, outs = uint8net.uint8_example(seed)
    check_against_litert(mb, ins, outs, tmp_path, seeds=(0, 1, 2))


def test_uint8_graph_between_float_casts(tmp_path):
    """float32 in -> QUANTIZE to uint8 -> uint8 ops -> DEQUANTIZE -> float32 out: the casts take the
    mapped int8 tensors (zero points - 128), exactly."""
    mb = mg.ModelBuilder(6)
    x = mb.tensor((1, 3, 4, 2), "float32", name="x")
    q = _act(mb, (1, 3, 4, 2), 140, 0.02)
    mb.op("QUANTIZE", [x], [q])
    r = _act(mb, (1, 3, 4, 2), 140, 0.02)
    mb.op("RELU", [q], [r])
    y = mg.dequantize(mb, r)
    qy = _act(mb, (1, 3, 4, 2), 100, 0.03, name="qy")
    mb.op("QUANTIZE", [x], [qy])  # a uint8 model output written by a float32 -> uint8 QUANTIZE
    g = load(mb.build([x], [y, qy]))
    # the float32 -> uint8 QUANTIZE writes the uint8 output itself: no uint8 edge after it
    assert [op.kind for op in g.ops] == ["QUANTIZE", "RELU", "DEQUANTIZE", "QUANTIZE"]
    assert [g.tensor(i).dtype for i in g.outputs] == ["float32", "uint8"]
    check_against_litert(mb, [x], [y, qy], tmp_path, seeds=(0, 1, 2))


def test_hybrid_uint8_weights_are_named_uint8():
    mb = mg.ModelBuilder(7)
    x = mb.tensor((1, 4), "float32")
    w = mb.tensor((2, 4), "uint8", quant=(0.01, 128), data=np.full((2, 4), 130), name="w")
    y = mb.tensor((1, 2), "float32")
    mb.op("FULLY_CONNECTED", [x, w, -1], [y])
    with pytest.raises(KilnError, match="float32 activations with uint8 weights 'w'"):
        load(mb.build([x], [y]))


def test_uint8_requantize_inside_and_at_the_input(tmp_path):
    """QUANTIZE uint8 -> uint8 (deeplab's, before a CONCATENATION): at the input it reads the uint8
    model input as it is; inside it is an int8 -> int8 requantization."""
    mb = mg.ModelBuilder(8)
    x = _act(mb, (1, 5, 3), 128, 0.05, name="x")
    q = _act(mb, (1, 5, 3), 90, 0.03)
    mb.op("QUANTIZE", [x], [q])
    r = _act(mb, (1, 5, 3), 90, 0.03)
    mb.op("RELU", [q], [r])
    y = _act(mb, (1, 5, 3), 10, 0.07, name="y")
    mb.op("QUANTIZE", [r], [y])
    z = _act(mb, (1, 5, 3), 200, 0.02, name="z")
    mb.op("QUANTIZE", [r], [z])
    g = load(mb.build([x], [y, z]))
    assert [(op.kind, g.tensor(op.inputs[0]).dtype, g.tensor(op.outputs[0]).dtype) for op in g.ops] == [
        ("QUANTIZE", "uint8", "int8"), ("RELU", "int8", "int8"), ("QUANTIZE", "int8", "uint8"),
        ("QUANTIZE", "int8", "uint8")]
    check_against_litert(mb, [x], [y, z], tmp_path, seeds=(0, 1, 2))
