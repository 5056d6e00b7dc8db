"""The TFLite importer: what it produces for each op kind, the real models, and every rejection."""
import copy
import time
from pathlib import Path

import numpy as np
import pytest

import modelgen
from modelgen import ModelBuilder
from tinykiln import KilnError, tflite

SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
needs_shared = pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason=f"{SHARED_MODELS} is absent (public test models)")


def shared(name):
    return SHARED_MODELS / name


# -- real models -----------------------------------------------------------------------------------

@needs_shared
@pytest.mark.parametrize("path", sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else [],
                         ids=lambda p: p.stem)
def test_shared_model_imports(path):
    g = tflite.load(path)
    assert g.name == path.stem
    assert g.ops and g.inputs and g.outputs
    for op in g.ops:
        assert op.kind in tflite.SUPPORTED_OPS
    for t in g.tensors:
        assert all(d >= 1 for d in t.shape)
        if t.dtype == "int8" and not t.is_constant:
            assert t.quant is not None and not t.quant.per_channel and t.quant.axis is None
        if t.is_constant:
            assert t.data.shape == t.shape and t.data.dtype == np.dtype(t.dtype)


@needs_shared
def test_resnet8_int8_details():
    g = tflite.load(shared("mlperf_ic_resnet8_int8.tflite"))
    x = g.tensor(g.inputs[0])
    # shape_signature says batch -1; the IR has batch 1
    assert x.shape == (1, 32, 32, 3) and x.dtype == "int8"
    assert x.quant.scale == (1.0,) and x.quant.zero_point == (-128,)
    kinds = [op.kind for op in g.ops]
    assert kinds.count("CONV_2D") == 9 and kinds.count("ADD") == 3
    conv = g.ops[0]
    assert conv.attrs == {"stride": (1, 1), "dilation": (1, 1), "padding": "SAME", "activation": "RELU"}
    w, b = g.tensor(conv.inputs[1]), g.tensor(conv.inputs[2])
    assert w.shape == (16, 3, 3, 3) and w.dtype == "int8"  # OHWI
    assert w.quant.axis == 0 and len(w.quant.scale) == 16 and set(w.quant.zero_point) == {0}
    assert b.shape == (16,) and b.dtype == "int32" and b.quant.axis == 0
    # the bias scale is input scale x weight scale, per channel
    np.testing.assert_allclose(b.quant.scale, np.array(w.quant.scale) * x.quant.scale[0], rtol=1e-6)
    softmax = g.ops[-1]
    assert softmax.kind == "SOFTMAX" and softmax.attrs == {"beta": 1.0}
    y = g.tensor(softmax.outputs[0])
    assert y.quant.scale == (1 / 256,) and y.quant.zero_point == (-128,)


@needs_shared
def test_kws_depthwise_and_fc():
    g = tflite.load(shared("mlperf_kws_dscnn_int8.tflite"))
    dw = [op for op in g.ops if op.kind == "DEPTHWISE_CONV_2D"]
    assert len(dw) == 4
    w = g.tensor(dw[0].inputs[1])
    assert w.shape[0] == 1 and w.quant.axis == 3  # 1HWC, per channel along C
    assert dw[0].attrs["depth_multiplier"] == 1
    fc = [op for op in g.ops if op.kind == "FULLY_CONNECTED"][0]
    assert fc.attrs == {"activation": "NONE", "keep_num_dims": False}
    assert g.tensor(fc.inputs[1]).shape == (12, 64)  # [out, in]


@needs_shared
def test_float_model_has_no_quantization():
    g = tflite.load(shared("mlperf_ic_resnet8_float.tflite"))
    assert all(t.dtype in ("float32", "int32") for t in g.tensors)
    assert all(t.quant is None for t in g.tensors if t.dtype == "float32")


# -- every op kind, from modelgen ------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("kind", modelgen.OP_KINDS)
def test_every_op_kind_imports(kind, dtype):
    for seed in range(3):
        model, mb, ins = modelgen.example(kind, dtype, seed)
        g = tflite.load(model, name="m")
        assert [op.kind for op in g.ops] == [kind]
        assert g.inputs == ins
        op = g.ops[0]
        y = g.tensor(op.outputs[0])
        assert y.shape == mb.shapes[op.outputs[0]]
        for i in op.inputs:
            if i >= 0 and mb.datas[i] is not None:
                np.testing.assert_array_equal(g.tensor(i).data, mb.datas[i])


def _single(kind, x_shape, y_shape, dtype="float32", extra=(), **options):
    mb = ModelBuilder()
    x = mb.input(x_shape, dtype)
    y = mb.input(y_shape, dtype)
    mb.op(kind, [x, *[mb.const(e) for e in extra]], [y], **options)
    return tflite.load(mb.build([x], [y])).ops[0]


def test_conv_options():
    mb = ModelBuilder(seed=2)
    x = mb.input((1, 11, 13, 3))
    y = modelgen.conv2d(mb, x, 5, (3, 2), stride=(2, 3), dilation=(2, 1), padding="VALID", activation="RELU6")
    op = tflite.load(mb.build([x], [y])).ops[0]
    assert op.attrs == {"stride": (2, 3), "dilation": (2, 1), "padding": "VALID", "activation": "RELU6"}


def test_conv_without_bias_has_minus_one():
    mb = ModelBuilder(seed=2)
    x = mb.input((1, 6, 6, 3))
    y = modelgen.conv2d(mb, x, 4, bias=False)
    op = tflite.load(mb.build([x], [y])).ops[0]
    assert op.inputs[2] == -1


def test_depthwise_multiplier_and_per_tensor_weights():
    mb = ModelBuilder(seed=4)
    x = mb.input((1, 8, 8, 3))
    y = modelgen.depthwise_conv2d(mb, x, (3, 3), depth_multiplier=3, stride=(2, 2), per_channel=False,
                                  activation="RELU_N1_TO_1")
    g = tflite.load(mb.build([x], [y]))
    op = g.ops[0]
    assert op.attrs["depth_multiplier"] == 3 and op.attrs["activation"] == "RELU_N1_TO_1"
    w = g.tensor(op.inputs[1])
    assert w.shape == (1, 3, 3, 9) and w.quant.axis is None and len(w.quant.scale) == 1


def test_fully_connected_keep_num_dims_and_per_channel():
    mb = ModelBuilder(seed=5)
    x = mb.input((1, 4, 6))
    y = modelgen.fully_connected(mb, x, 7, per_channel=True, keep_num_dims=True, activation="RELU")
    g = tflite.load(mb.build([x], [y]))
    op = g.ops[0]
    assert op.attrs == {"activation": "RELU", "keep_num_dims": True}
    assert g.tensor(op.outputs[0]).shape == (1, 4, 7)
    assert g.tensor(op.inputs[1]).quant.axis == 0


def test_pool_fused_activation():
    op = _single("MAX_POOL_2D", (1, 9, 9, 2), (1, 4, 4, 2), "int8", filter=(3, 3), stride=(2, 2),
                 padding="VALID", activation="RELU")
    assert op.attrs == {"filter": (3, 3), "stride": (2, 2), "padding": "VALID", "activation": "RELU"}


def test_misc_op_attrs():
    assert _single("CONCATENATION", (1, 2, 3), (1, 2, 3), axis=-1).attrs == {"axis": 2, "activation": "NONE"}
    assert _single("SQUEEZE", (1, 3, 1), (3,), squeeze_dims=[2, 0]).attrs == {"squeeze_dims": (0, 2)}
    assert _single("SQUEEZE", (1, 3, 1), (3,)).attrs == {"squeeze_dims": ()}
    assert _single("SOFTMAX", (1, 5), (1, 5), beta=0.5).attrs == {"beta": 0.5}
    assert _single("LEAKY_RELU", (1, 5), (1, 5), alpha=0.25).attrs == {"alpha": 0.25}
    assert _single("MEAN", (1, 4, 4, 3), (1, 3), extra=[[1, 2]], keep_dims=False).attrs == {"keep_dims": False}
    op = _single("STRIDED_SLICE", (1, 6, 6, 2), (1, 3, 3), extra=[[0, 0, 1, 1], [1, 6, 6, 2], [1, 2, 2, 1]],
                 begin_mask=1, end_mask=2, shrink_axis_mask=8)
    assert op.attrs == {"begin_mask": 1, "end_mask": 2, "ellipsis_mask": 0, "new_axis_mask": 0,
                        "shrink_axis_mask": 8, "offset": False}


def test_strided_slice_shape_agrees_with_litert():
    """The importer's STRIDED_SLICE output shape (which it checks) is the one LiteRT computes."""
    rng = np.random.default_rng(0)
    checked = 0
    for _ in range(80):
        shape = tuple(int(d) for d in rng.integers(1, 7, 3))
        begin = [int(rng.integers(-d, d)) for d in shape]
        end = [int(rng.integers(-d, d + 1)) for d in shape]
        strides = [int(rng.choice([-2, -1, 1, 2, 3])) for _ in shape]
        masks = {"begin_mask": int(rng.integers(8)), "end_mask": int(rng.integers(8)),
                 "shrink_axis_mask": int(rng.choice([0, 1, 4]))}

        def build(out_shape):
            mb = ModelBuilder()
            x, y = mb.input(shape, "float32"), mb.input(out_shape, "float32")
            mb.op("STRIDED_SLICE", [x, mb.const(begin), mb.const(end), mb.const(strides)], [y], **masks)
            return mb.build([x], [y])

        try:  # LiteRT resizes the output itself: its shape is the truth
            (out,) = modelgen.reference_run(build((1,)), [np.zeros(shape, np.float32)])
        except (RuntimeError, ValueError):
            continue
        if 0 in out.shape:
            continue  # empty slices are rejected on purpose
        tflite.load(build(out.shape))
        checked += 1
    assert checked >= 20


def test_binary_op_with_constant_operand():
    mb = ModelBuilder()
    x = mb.input((1, 4), "float32")
    c = mb.tensor((4,), "float32", data=[1, 2, 3, 4])
    y = mb.input((1, 4), "float32")
    mb.op("MUL", [x, c], [y], activation="RELU")
    g = tflite.load(mb.build([x], [y]))
    assert g.ops[0].attrs == {"activation": "RELU"} and g.tensor(c).data.tolist() == [1, 2, 3, 4]


# -- what real files carry -------------------------------------------------------------------------

def test_batch_minus_one_in_signature_is_batch_one():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", shape_signature=(-1, 4))
    y = mb.tensor((1, 4), "float32", shape_signature=(-1, 4))
    mb.op("RELU", [x], [y])
    g = tflite.load(mb.build([x], [y]))
    assert g.tensor(x).shape == (1, 4)


@pytest.mark.parametrize("scales", [1, 4])
def test_meaningless_quantized_dimension_on_bias(scales):
    mb = ModelBuilder(seed=1)
    x = mb.input((1, 5, 5, 2))
    y = modelgen.conv2d(mb, x, 4, per_channel=scales > 1)
    model = mb.model([x], [y])
    bias = model.subgraphs[0].tensors[model.subgraphs[0].operators[0].inputs[2]]
    bias.quantization.quantizedDimension = 3  # a rank-1 tensor has no axis 3
    g = tflite.load(modelgen.pack(model))
    b = g.tensor(g.ops[0].inputs[2])
    assert b.quant.axis == (0 if scales > 1 else None)


# -- rejections ------------------------------------------------------------------------------------

def _reject(model_bytes) -> str:
    with pytest.raises(KilnError) as err:
        tflite.load(model_bytes, name="bad")
    return str(err.value)


def test_rejects_custom_op():
    mb = ModelBuilder()
    x, y = mb.input((1, 4), "float32"), mb.input((1, 4), "float32", name="custom_out")
    mb.op("CUSTOM", [x], [y], custom_code="MyOp")
    msg = _reject(mb.build([x], [y]))
    assert "op 0 CUSTOM (output 'custom_out')" in msg and "custom op 'MyOp'" in msg


def test_rejects_unsupported_builtin():
    mb = ModelBuilder()
    x, y = mb.input((1, 4), "float32"), mb.input((1, 4), "float32", name="e")
    mb.op("SIN", [x], [y])
    msg = _reject(mb.build([x], [y]))
    assert "op 0 SIN (output 'e'): unsupported op SIN" in msg
    assert "`./kiln ops` lists" in msg  # the way out says where the supported ops are listed


def test_importer_and_lowering_read_one_registry():
    """What the importer accepts is what the lowering lowers: both read tinykiln.ops.registry, so an op
    kind cannot be accepted by one and unknown to the other (RELU_N1_TO_1 once was)."""
    from tinykiln import ops
    from tinykiln.ops.registry import OPS

    assert set(tflite.SUPPORTED_OPS) == set(OPS)
    mb = ModelBuilder()
    x = mb.input((1, 6), "int8", quant=(0.05, 2))
    y = mb.tensor((1, 6), "int8", quant=(0.01, -3), name="clamped")
    mb.op("RELU_N1_TO_1", [x], [y])
    graph = tflite.load(mb.build([x], [y]))
    assert [op.kind for op in graph.ops] == ["RELU_N1_TO_1"]
    assert [c.spec.family for c in ops.lower(graph).calls] == ["lut_int8"]


def test_rejects_a_fused_activation_that_is_no_clamp():
    """Fused activations become the output clamp; TANH and SIGN_BIT are none, so the importer says so
    (the lowering would refuse them too)."""
    mb = ModelBuilder()
    x, y = mb.input((1, 4), "float32"), mb.input((1, 4), "float32")
    z = mb.tensor((1, 4), "float32", name="sum")
    mb.op("ADD", [x, y], [z], activation="TANH")
    msg = _reject(mb.build([x, y], [z]))
    assert "op 0 ADD (output 'sum'): fused activation TANH is not supported" in msg


def test_rejects_hybrid_quantization():
    mb = ModelBuilder()
    x = mb.input((1, 8), "float32")
    w = mb.tensor((3, 8), "int8", quant=(0.02, 0), data=np.ones((3, 8)))
    y = mb.input((1, 3), "float32", name="hybrid_out")
    mb.op("FULLY_CONNECTED", [x, w, -1], [y])
    msg = _reject(mb.build([x], [y]))
    assert "op 0 FULLY_CONNECTED (output 'hybrid_out')" in msg and "dynamic-range (hybrid)" in msg


def test_rejects_dynamic_shape():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", shape_signature=(1, -1))
    y = mb.tensor((1, 4), "float32", shape_signature=(1, -1), name="dyn")
    mb.op("RELU", [x], [y])
    msg = _reject(mb.build([x], [y]))
    assert "op 0 RELU (output 'dyn')" in msg and "dynamic shape [1, -1]" in msg


def test_rejects_several_subgraphs():
    mb = ModelBuilder()
    x, y = mb.input((1, 4), "float32"), mb.input((1, 4), "float32")
    mb.op("RELU", [x], [y])
    model = mb.model([x], [y])
    model.subgraphs.append(copy.deepcopy(model.subgraphs[0]))
    msg = _reject(modelgen.pack(model))
    assert "2 subgraphs" in msg


# (quantized uint8 runs on the int8 kernels, tflite/uint8.py: uint8 without quantization does not;
# int16 RELU is 16x8 quantization, ops/int16.py: RELU_N1_TO_1 has no int16 kernel, in LiteRT neither)
@pytest.mark.parametrize("dtype, quant, kind", [("int16", (0.1, 0), "RELU_N1_TO_1"), ("uint8", None, "RELU")])
def test_rejects_unsupported_activation_dtype(dtype, quant, kind):
    mb = ModelBuilder()
    x = mb.tensor((1, 4), dtype, quant=quant)
    y = mb.tensor((1, 4), dtype, quant=quant, name="wide")
    mb.op(kind, [x], [y])
    msg = _reject(mb.build([x], [y]))
    assert f"op 0 {kind} (output 'wide')" in msg and f"{dtype} activations are not supported" in msg


def test_rejects_float16_activations():
    """float16 constants are DEQUANTIZEd at import (tests/unit/test_fold.py); activations are not."""
    mb = ModelBuilder()
    x16 = mb.tensor((1, 4), "float16", name="x16")
    x = mb.tensor((1, 4), "float32", name="x32")
    mb.op("DEQUANTIZE", [x16], [x])
    msg = _reject(mb.build([x16], [x]))
    assert "op 0 DEQUANTIZE (output 'x32')" in msg and "unsupported dtype float16" in msg


def test_rejects_float16_weights_of_the_wrong_size():
    mb = ModelBuilder()
    w16 = mb.tensor((2, 4), "float16", data=np.ones((2, 4)))
    mb.buffers[-1].data = np.ones(7, np.float16)
    w = mb.tensor((2, 4), "float32", name="w32")
    x, y = mb.input((1, 4), "float32"), mb.input((1, 2), "float32")
    mb.op("DEQUANTIZE", [w16], [w])
    mb.op("FULLY_CONNECTED", [x, w, -1], [y])
    msg = _reject(mb.build([x], [y]))
    assert "op 0 DEQUANTIZE (output 'w32')" in msg and "constant data is 14 bytes" in msg
    assert "before any op writes" not in msg  # the float16 tensor is still known to be a constant


def test_unsupported_op_also_reports_its_tensors():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", shape_signature=(1, -1), name="x")
    y = mb.tensor((1, 4), "float32", name="y")
    mb.op("SIN", [x], [y])
    msg = _reject(mb.build([x], [y]))
    assert "unsupported op SIN" in msg and "tensor 'x' dynamic shape [1, -1]" in msg


def test_one_error_lists_every_offending_op():
    mb = ModelBuilder(seed=3)
    x = mb.input((1, 8, 8, 3), "float32", name="in")
    a = mb.input((1, 8, 8, 3), "float32", name="a")
    mb.op("SIN", [x], [a])                                       # op 0: unsupported
    b = mb.input((1, 8, 8, 3), "float32", name="b")
    mb.op("RELU", [a], [b])                                      # op 1: fine
    c = mb.input((1, 8, 8, 3), "float32", name="c")
    mb.op("CUSTOM", [b], [c], custom_code="Magic")               # op 2: custom
    w = mb.tensor((4, 3), "int8", quant=(0.1, 0), data=np.ones((4, 3)))
    d = mb.input((64, 4), "float32", name="d")
    mb.op("FULLY_CONNECTED", [c, w, -1], [d])                    # op 3: hybrid
    msg = _reject(mb.build([x], [d]))
    assert "3 problems" in msg
    for expected in ("op 0 SIN (output 'a')", "op 2 CUSTOM (output 'c')", "op 3 FULLY_CONNECTED (output 'd')"):
        assert expected in msg
    assert "op 1 " not in msg


def test_rejects_inconsistent_output_shape():
    mb = ModelBuilder()
    x = mb.input((1, 8, 8, 3), "float32")
    y = mb.input((1, 8, 8, 3), "float32", name="pooled")  # a 2x2/2 VALID pool gives 4x4
    mb.op("AVERAGE_POOL_2D", [x], [y], filter=(2, 2), stride=(2, 2), padding="VALID")
    msg = _reject(mb.build([x], [y]))
    assert "op 0 AVERAGE_POOL_2D (output 'pooled')" in msg and "[1, 4, 4, 3]" in msg


def test_rejects_non_constant_weights():
    mb = ModelBuilder()
    x, w = mb.input((1, 4), "float32"), mb.input((2, 4), "float32", name="w")
    y = mb.input((1, 2), "float32")
    mb.op("FULLY_CONNECTED", [x, w, -1], [y])
    assert "weights 'w' must be a constant tensor" in _reject(mb.build([x, w], [y]))


def test_rejects_asymmetric_weights():
    mb = ModelBuilder(seed=1)
    x = mb.input((1, 4, 4, 2))
    y = modelgen.conv2d(mb, x, 3)
    model = mb.model([x], [y])
    sg = model.subgraphs[0]
    sg.tensors[sg.operators[0].inputs[1]].quantization.zeroPoint = [5, 0, 0]
    assert "not symmetrically quantized" in _reject(modelgen.pack(model))


def test_rejects_int8_without_quantization():
    mb = ModelBuilder()
    x, y = mb.tensor((1, 4), "int8"), mb.tensor((1, 4), "int8")
    mb.op("RELU", [x], [y])
    assert "int8 tensor without quantization" in _reject(mb.build([x], [y]))


# -- corrupt files ---------------------------------------------------------------------------------

def _small_model() -> bytes:
    model, _, _ = modelgen.example("CONV_2D", "int8", 0)
    return model


def test_empty_file():
    assert "empty" in _reject(b"")


def test_not_a_tflite_file():
    assert "not a valid TFLite model" in _reject(b"hello, this is a text file, not a model\n" * 10)


def test_truncated_everywhere():
    """Cut at every offset: a KilnError each time (any other exception fails the test)."""
    model = _small_model()
    for end in range(len(model)):
        with pytest.raises(KilnError):
            tflite.load(model[:end])


def test_truncated_is_reported_as_corrupt():
    model = _small_model()
    msg = _reject(model[: len(model) // 2])
    assert "not a valid TFLite model" in msg


def test_wrong_identifier():
    model = bytearray(_small_model())
    model[4:8] = b"XXXX"
    assert "file identifier" in _reject(bytes(model))


def test_hostile_vector_length_does_not_hang():
    """A huge length where the subgraph's tensor vector starts must not make the reader loop."""
    model = bytearray(_small_model())
    # every uint32 that equals the tensor count is a candidate length field: blow each one up
    n_tensors = 4
    hits = [i for i in range(0, len(model) - 4, 4) if int.from_bytes(model[i:i + 4], "little") == n_tensors]
    assert hits
    for i in hits:
        bad = bytearray(model)
        bad[i:i + 4] = (0x7FFFFFF0).to_bytes(4, "little")
        start = time.process_time()
        try:
            tflite.load(bytes(bad))
        except KilnError:
            pass
        assert time.process_time() - start < 2.0


def test_missing_and_unreadable_paths(tmp_path):
    with pytest.raises(KilnError, match="cannot read model file"):
        tflite.load(tmp_path / "nope.tflite")
    with pytest.raises(KilnError, match="cannot read model file"):
        tflite.load(tmp_path)


@pytest.mark.parametrize("kind", ["SOFTMAX", "LOGISTIC", "TANH"])
def test_rejects_int8_output_quantization_litert_refuses(kind):
    mb = ModelBuilder()
    x = mb.input((1, 8), "int8")
    y = mb.tensor((1, 8), "int8", quant=(0.05, 3), name="probs")
    mb.op(kind, [x], [y], **({"beta": 1.0} if kind == "SOFTMAX" else {}))
    msg = _reject(mb.build([x], [y]))
    assert f"op 0 {kind} (output 'probs')" in msg and "must have scale" in msg


def test_rejects_int8_concatenation_with_mixed_quantization():
    mb = ModelBuilder()
    a, b = mb.input((1, 4), "int8", quant=(0.1, 0)), mb.input((1, 4), "int8", quant=(0.2, 0))
    y = mb.tensor((1, 8), "int8", quant=(0.1, 0))
    mb.op("CONCATENATION", [a, b], [y], axis=1)
    assert "quantized differently" in _reject(mb.build([a, b], [y]))


def _reshape_model(out_shape, shape_operand=None, **options):
    mb = ModelBuilder()
    x, y = mb.input((1, 3, 4), "float32"), mb.input(out_shape, "float32", name="r")
    ins = [x] if shape_operand is None else [x, mb.tensor((len(shape_operand),), shape_operand.dtype.name,
                                                          data=shape_operand)]
    mb.op("RESHAPE", ins, [y], **options)
    return mb.build([x], [y])


@pytest.mark.parametrize("out_shape, operand, options", [
    ((2, 6), np.array([2, 6], np.int32), {}),
    ((2, 6), np.array([-1, 6], np.int32), {}),
    ((2, 6), np.array([2, 6], np.int32), {"new_shape": [3, 4]}),   # the operand wins
    ((1, 12), None, {"new_shape": [1, -1]}),                         # no operand: the option
    ((3, 4), np.array([2, 6], np.int64), {"new_shape": [3, 4]}),   # int64 operand: LiteRT uses the option
])
def test_reshape_target_shape_as_litert_computes_it(out_shape, operand, options):
    model = _reshape_model(out_shape, operand, **options)
    (out,) = modelgen.reference_run(model, [np.ones((1, 3, 4), np.float32)])
    assert out.shape == out_shape
    assert tflite.load(model).tensor(1).shape == out_shape


def test_reshape_output_shape_must_match_the_target():
    # LiteRT would resize this output to [2, 6]; an IR saying [1, 12] would be wrong
    msg = _reject(_reshape_model((1, 12), np.array([2, 6], np.int32)))
    assert "op 0 RESHAPE (output 'r')" in msg and "[2, 6]" in msg


def _with_empty_buffers(model, tensors):
    for t in tensors:
        empty = modelgen._AlignedBufferT()
        empty.data = np.zeros(0, np.uint8)
        model.buffers.append(empty)
        model.subgraphs[0].tensors[t].buffer = len(model.buffers) - 1
    return modelgen.pack(model)


def test_empty_data_vectors_are_not_constants():
    """PyTorch -> TFLite exporters give activations buffers with an empty data vector: no data, so
    no constant (as TFLite Micro reads them; LiteRT 2.3 refuses them, so the reference runs a copy
    without the empty vectors: modelgen.normalize_for_litert)."""
    mb = ModelBuilder()
    x, y = mb.input((1, 4), "float32", name="x"), mb.input((1, 4), "float32", name="y")
    mb.op("RELU", [x], [y])
    model = _with_empty_buffers(mb.model([x], [y]), [x, y])
    g = tflite.load(model)
    assert g.inputs == [x] and not g.tensor(x).is_constant and not g.tensor(y).is_constant
    data = np.float32([[-1, 2, -3, 4]])
    np.testing.assert_array_equal(modelgen.reference_run(model, [data])[0], np.maximum(data, 0))


def test_a_buffer_of_the_wrong_size_is_still_refused():
    mb = ModelBuilder()
    x, y = mb.input((1, 4), "float32"), mb.input((1, 4), "float32", name="y")
    mb.op("RELU", [x], [y])
    model = mb.model([x], [y])
    short = modelgen._AlignedBufferT()
    short.data = np.zeros(3, np.uint8)
    model.buffers.append(short)
    model.subgraphs[0].tensors[y].buffer = len(model.buffers) - 1
    assert "constant data is 3 bytes" in _reject(modelgen.pack(model))


def test_reference_run_tolerates_meaningless_bias_quantized_dimension():
    """LiteRT refuses what the importer tolerates; modelgen.reference_run repairs it first."""
    mb = ModelBuilder(seed=1)
    x = mb.input((1, 5, 5, 2))
    y = modelgen.conv2d(mb, x, 4)
    model = mb.model([x], [y])
    sg = model.subgraphs[0]
    sg.tensors[sg.operators[0].inputs[2]].quantization.quantizedDimension = 3
    odd, clean = modelgen.pack(model), mb.build([x], [y])
    data = modelgen.random_input(mb, x)
    np.testing.assert_array_equal(modelgen.reference_run(odd, [data])[0], modelgen.reference_run(clean, [data])[0])
    tflite.load(odd)


def test_rejects_quantized_dimension_outside_a_weight_tensor():
    mb = ModelBuilder(seed=1)
    x = mb.input((1, 5, 5, 2))
    y = modelgen.conv2d(mb, x, 4)
    model = mb.model([x], [y])
    sg = model.subgraphs[0]
    sg.tensors[sg.operators[0].inputs[1]].quantization.quantizedDimension = 7
    assert "quantized_dimension 7 is not an axis" in _reject(modelgen.pack(model))
