"""Import-time constant folding (tinykiln/tflite/fold.py): each evaluator against LiteRT, and what the
importer makes of constant chains (the op leaves the graph, its output is a constant)."""
from __future__ import annotations

import numpy as np
import pytest

from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, tflite
from tinykiln.graph import Quantization, Tensor
from tinykiln.tflite import fold

I32 = np.iinfo(np.int32)


def _litert_and_fold(kind, inputs, out_shape, out_dtype, live=(0,), options=None, n_out=1):
    """Run `kind` in LiteRT with the inputs in `live` fed at run time (the others constants), and
    evaluate it with fold.evaluate on all inputs as constants: the two results must agree exactly."""
    mb = ModelBuilder()
    ids, tensors = [], []
    for i, (value, dtype, quant) in enumerate(inputs):
        value = np.asarray(value)
        data = None if i in live else value
        ids.append(mb.tensor(value.shape, dtype, quant=quant, data=data, name=f"in{i}"))
        q = None if quant is None else Quantization(*([tuple(np.atleast_1d(p)) for p in quant[:2]] + list(quant[2:])))
        tensors.append(Tensor(i, f"in{i}", value.shape, dtype, q, value.astype(dtype)))
    shapes = out_shape if n_out > 1 else [out_shape]
    outs = [mb.tensor(s, out_dtype, name=f"out{j}") for j, s in enumerate(shapes)]
    mb.op(kind, ids, outs, **(options or {}))
    want = reference_run(mb.build([ids[i] for i in live], outs), [np.asarray(inputs[i][0]) for i in live])
    out_tensors = [Tensor(100 + j, f"out{j}", tuple(s), out_dtype) for j, s in enumerate(shapes)]
    got = fold.evaluate(kind, tensors, out_tensors, _raw_options(options or {}))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)


def _raw_options(options):
    """The reader's view of ModelBuilder's keyword options (snake_case schema fields)."""
    raw = dict(options)
    if "activation" in raw:
        names = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")
        raw["fused_activation_function"] = names.index(raw.pop("activation"))
    return raw


RNG = np.random.default_rng(0)
BIG = np.array([I32.max, I32.min, I32.max - 3, -7, 7, 0, 123456789, -987654321], dtype=np.int32)


@pytest.mark.parametrize("kind", ["ADD", "SUB", "MUL", "MAXIMUM", "MINIMUM", "FLOOR_DIV", "DIV"])
def test_int32_arithmetic_wraps_and_divides_like_litert(kind):
    a = np.concatenate([BIG, RNG.integers(-1000, 1000, 24)]).astype(np.int32)
    b = np.concatenate([BIG[::-1], RNG.integers(-50, 50, 24)]).astype(np.int32)
    if kind in ("DIV", "FLOOR_DIV"):
        b[b == 0] = 3
        a[:2] = [7, -7]
        b[:2] = [-2, 2]
        if kind == "DIV":  # INT32_MIN / -1 is undefined in C: keep it out
            b[a == I32.min] = 5
    _litert_and_fold(kind, [(a, "int32", None), (b, "int32", None)], a.shape, "int32", live=(0, 1))


def test_int32_add_broadcasts_with_a_fused_relu():
    a = RNG.integers(-100, 100, (2, 3)).astype(np.int32)
    _litert_and_fold("ADD", [(a, "int32", None), (np.int32([[-5, 5, 0]]), "int32", None)], (2, 3), "int32",
                     live=(0, 1), options={"activation": "RELU6"})


@pytest.mark.parametrize("kind", ["SUM", "REDUCE_PROD"])
@pytest.mark.parametrize("keep_dims", [False, True])
def test_int32_reductions(kind, keep_dims):
    x = np.concatenate([BIG, RNG.integers(-9, 9, 16)]).astype(np.int32).reshape(2, 3, 4)
    out = (1, 3, 1) if keep_dims else (3,)
    _litert_and_fold(kind, [(x, "int32", None), (np.int32([0, -1]), "int32", None)], out, "int32",
                     options={"keep_dims": keep_dims})


@pytest.mark.parametrize("case", [
    ("STRIDED_SLICE", [np.arange(24).reshape(4, 6), [0, 1], [1, 6], [1, 2]], (3,), {"shrink_axis_mask": 1}),
    ("STRIDED_SLICE", [np.arange(24).reshape(4, 6), [3, -1], [0, 0], [-1, -2]], (3, 3),
     {"end_mask": 2}),
    ("GATHER", [np.arange(24).reshape(4, 6), [[3, 0], [1, 1]]], (4, 2, 2), {"axis": 1}),
    ("SLICE", [np.arange(24).reshape(4, 6), [1, 2], [2, -1]], (2, 4), {}),
    ("TRANSPOSE", [np.arange(24).reshape(2, 3, 4), [2, 0, 1]], (4, 2, 3), {}),
    ("EXPAND_DIMS", [np.arange(6).reshape(2, 3), [-1]], (2, 3, 1), {}),
    ("SQUEEZE", [np.arange(6).reshape(1, 2, 1, 3)], (2, 1, 3), {"squeeze_dims": [0]}),
    ("RESHAPE", [np.arange(6).reshape(2, 3), [3, -1]], (3, 2), {}),
    ("UNPACK", [np.arange(6).reshape(2, 3)], [(2,)] * 3, {"num": 3, "axis": -1}),
], ids=lambda c: c[0])
def test_movement_on_int32(case):
    kind, values, out_shape, options = case
    inputs = [(np.asarray(v, dtype=np.int32), "int32", None) for v in values]
    n_out = len(out_shape) if isinstance(out_shape, list) else 1
    _litert_and_fold(kind, inputs, out_shape, "int32", options=options, n_out=n_out)


def test_pack_and_concatenation():
    s = [(np.int32(v), "int32", None) for v in (4, 16, 8, 1)]
    _litert_and_fold("PACK", s, (4,), "int32", live=(0, 1, 2, 3), options={"values_count": 4, "axis": 0})
    m = [(np.arange(6, dtype=np.int32).reshape(2, 3), "int32", None), (np.int32([[9, 9, 9]]), "int32", None)]
    _litert_and_fold("PACK", [m[0], m[0]], (2, 3, 2), "int32", live=(0, 1), options={"values_count": 2, "axis": -1})
    _litert_and_fold("CONCATENATION", m, (3, 3), "int32", live=(0, 1), options={"axis": 0})


def test_shape_fill_range_cast():
    x = (np.zeros((2, 3, 5), np.float32), "float32", None)
    _litert_and_fold("SHAPE", [x], (3,), "int32", options={"out_type": 2})  # TensorType INT32
    _litert_and_fold("FILL", [(np.int32([2, 3]), "int32", None), (np.int32(7), "int32", None)], (2, 3), "int32",
                     live=(1,))
    _litert_and_fold("RANGE", [(np.int32(v), "int32", None) for v in (10, -3, -4)], (4,), "int32", live=())
    _litert_and_fold("RANGE", [(np.float32(v), "float32", None) for v in (0.1, 1.0, 0.3)], (3,), "float32",
                     live=())
    f = np.float32([-2.7, -0.5, 0.0, 0.5, 2.7, 1e6])
    _litert_and_fold("CAST", [(f, "float32", None)], f.shape, "int32")
    _litert_and_fold("CAST", [(BIG, "int32", None)], BIG.shape, "float32")


def test_dequantize_constant_weights():
    q = RNG.integers(-127, 128, (3, 5)).astype(np.int8)
    _litert_and_fold("DEQUANTIZE", [(q, "int8", ([0.013, 0.2, 1e-4], [0, 0, 0], 0))], q.shape, "float32", live=())
    _litert_and_fold("DEQUANTIZE", [(q, "int8", (0.05, -3))], q.shape, "float32", live=())
    h = np.float16([0.1, -2.5, 65504.0, 6e-8, -0.0])
    _litert_and_fold("DEQUANTIZE", [(h, "float16", None)], h.shape, "float32", live=())


# -- the importer ---------------------------------------------------------------------------------

def _keras_reshape(mb, x, target):
    """SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, as Keras' Reshape layer converts."""
    shape = mb.tensor((len(mb.shapes[x]),), "int32", name="shape")
    mb.op("SHAPE", [x], [shape], out_type=2)
    batch = mb.tensor((), "int32", name="batch")
    mb.op("STRIDED_SLICE", [shape, mb.const([0]), mb.const([1]), mb.const([1])], [batch], shrink_axis_mask=1)
    packed = mb.tensor((len(target) + 1,), "int32", name="packed")
    mb.op("PACK", [batch] + [mb.const(d, name=f"d{i}") for i, d in enumerate(target)], [packed],
          values_count=len(target) + 1)
    y = mb.tensor((mb.shapes[x][0], *target), mb.dtypes[x], quant=mb.quants[x], name="reshaped")
    mb.op("RESHAPE", [x, packed], [y])
    return y


def test_keras_reshape_chain_folds_away():
    mb = ModelBuilder()
    x = mb.input((1, 128), "int8")
    y = _keras_reshape(mb, x, (16, 8, 1))
    g = tflite.load(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == ["RESHAPE"]
    packed = g.tensors[g.ops[0].inputs[1]]
    assert packed.is_constant and packed.data.tolist() == [1, 16, 8, 1] and packed.data.dtype == np.int32


def test_reshape_shape_only_in_options_and_reshape_of_a_constant():
    mb = ModelBuilder()
    x = mb.input((2, 6), "float32")
    y = mb.tensor((3, 4), "float32")
    mb.op("RESHAPE", [x], [y], new_shape=[3, -1])
    w = mb.tensor((2, 2), "float32", data=[[1, 2], [3, 4]])
    w4 = mb.tensor((4,), "float32", name="w4")
    mb.op("RESHAPE", [w, mb.const([4])], [w4])
    w1 = mb.tensor((1, 4), "float32", name="w1")
    mb.op("EXPAND_DIMS", [w4, mb.const([0])], [w1])
    z = mb.tensor((3, 4), "float32")
    mb.op("ADD", [y, w1], [z])
    g = tflite.load(mb.build([x], [z]))
    assert [op.kind for op in g.ops] == ["RESHAPE", "ADD"]
    assert g.tensors[g.ops[1].inputs[1]].data.tolist() == [[1, 2, 3, 4]]


def test_float16_weights_are_dequantized_at_import():
    mb = ModelBuilder()
    w16 = mb.tensor((2, 4), "float16", data=np.arange(8).reshape(2, 4) / 3)
    w = mb.tensor((2, 4), "float32", name="w32")
    x, y = mb.input((1, 4), "float32"), mb.input((1, 2), "float32")
    mb.op("DEQUANTIZE", [w16], [w])
    mb.op("FULLY_CONNECTED", [x, w, -1], [y])
    g = tflite.load(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == ["FULLY_CONNECTED"]
    np.testing.assert_array_equal(g.tensors[w].data, (np.arange(8).reshape(2, 4) / 3).astype(np.float16)
                                  .astype(np.float32))


def test_folding_errors_are_reported():
    mb = ModelBuilder()
    x = mb.input((1, 4), "float32")
    bad = mb.tensor((2,), "int32", name="gathered")  # (a folding op with no kernel)
    mb.op("RANGE", [mb.const(np.int32(0)), mb.const(np.int32(2)), mb.const(np.int32(0))], [bad])
    y = mb.tensor((1, 4), "float32", name="y")
    mb.op("SIN", [mb.tensor((1, 4), "float32", data=np.ones((1, 4)))], [y])  # no evaluator: today's message
    z = mb.tensor((1, 4), "float32")
    mb.op("ADD", [x, y], [z])
    with pytest.raises(KilnError) as e:
        tflite.load(mb.build([x], [z]))
    msg = str(e.value)
    assert "op 0 RANGE (output 'gathered'): unsupported op RANGE (its inputs are constants, but it cannot be " \
           "evaluated at build time: RANGE(0, 2, 0) is empty or endless)" in msg
    assert "op 1 SIN (output 'y'): unsupported op SIN" in msg


def test_shape_of_a_dynamic_tensor_is_not_folded():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", shape_signature=(1, -1), name="x")
    s = mb.tensor((2,), "int32", name="s")
    mb.op("SHAPE", [x], [s])
    with pytest.raises(KilnError, match="unsupported op SHAPE.*dynamic shape"):
        tflite.load(mb.build([x], [s]))


def test_constant_concatenation_of_differently_quantized_codes_is_not_folded():
    mb = ModelBuilder()
    a = mb.tensor((1, 2), "int8", quant=(0.1, 0), data=[[1, 2]], name="a")
    b = mb.tensor((1, 2), "int8", quant=(0.2, 0), data=[[3, 4]], name="b")
    c = mb.tensor((1, 4), "int8", quant=(0.1, 0), name="c")
    mb.op("CONCATENATION", [a, b], [c], axis=1)
    x = mb.input((1, 4), "int8", quant=(0.1, 0))
    y = mb.tensor((1, 4), "int8", quant=(0.1, 0))
    mb.op("ADD", [x, c], [y])
    with pytest.raises(KilnError, match="int8 input 'b' is quantized differently from the output"):
        tflite.load(mb.build([x], [y]))
    mb.tensors[b].quantization.scale = [0.1]
    g = tflite.load(mb.build([x], [y]))
    assert [op.kind for op in g.ops] == ["ADD"] and g.tensors[c].data.tolist() == [[1, 2, 3, 4]]


@pytest.mark.parametrize("target, options, out_shape, folds", [
    ([3, -1], {}, (3, 2), True),
    (None, {"new_shape": [-1, 3]}, (2, 3), True),
    ([3, 2], {}, (2, 3), False),  # the operand's shape, not the output tensor's: the checker says so
])
def test_reshape_of_a_constant_takes_litert_target(target, options, out_shape, folds):
    mb = ModelBuilder()
    w = mb.tensor((6,), "float32", data=np.arange(6), name="w")
    r = mb.tensor(out_shape, "float32", name="r")
    mb.op("RESHAPE", [w] + ([mb.const(target)] if target is not None else []), [r], **options)
    x = mb.input(out_shape, "float32")
    y = mb.tensor(out_shape, "float32")
    mb.op("ADD", [x, r], [y])
    model = mb.build([x], [y])
    if folds:
        g = tflite.load(model)
        assert [op.kind for op in g.ops] == ["ADD"]
        np.testing.assert_array_equal(g.tensors[r].data, np.arange(6, dtype=np.float32).reshape(out_shape))
    else:
        with pytest.raises(KilnError, match="op 0 RESHAPE \\(output 'r'\\): output 'r' has shape \\[2, 3\\]"):
            tflite.load(model)


def test_rank_tile_broadcast_zeros_like_neg():
    x = (np.arange(6, dtype=np.int32).reshape(2, 3), "int32", None)
    _litert_and_fold("RANK", [(np.zeros((2, 3, 5), np.float32), "float32", None)], (), "int32")
    _litert_and_fold("TILE", [x, (np.int32([2, 1]), "int32", None)], (4, 3), "int32")
    _litert_and_fold("BROADCAST_TO", [(np.int32([[1], [2]]), "int32", None), (np.int32([2, 2, 3]), "int32", None)],
                     (2, 2, 3), "int32", options={"version": 2})  # LiteRT has no version 1
    _litert_and_fold("ZEROS_LIKE", [x], (2, 3), "int32")
    _litert_and_fold("NEG", [(BIG, "int32", None)], BIG.shape, "int32")
    _litert_and_fold("NEG", [(np.float32([0.0, -1.5, 3.0]), "float32", None)], (3,), "float32")
