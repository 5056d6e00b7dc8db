"""TFLite_Detection_PostProcess end to end: a single-op .tflite (the custom op with FlexBuffer
custom_options) -> import -> lower -> TVM C + tk_mk_detect_nms -> gcc -> compare with LiteRT
(BUILTIN_REF registers the op). float32 and uint8 models (uint8 runs as int8 inside), fast and
regular NMS, scores with many ties; bit-exact on every row LiteRT writes, zero on the others."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, flexbuffer_map, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.detection import KIND, unwritten_rows
from tinykiln.tflite import load

BASE = dict(max_detections=4, max_classes_per_detection=1, detections_per_class=3, use_regular_nms=False,
            nms_score_threshold=0.25, nms_iou_threshold=0.45, num_classes=3, y_scale=10.0, x_scale=10.0,
            h_scale=5.0, w_scale=5.0)


def model(n=12, background=1, dtype="float32", length=4, seed=0, written=None, **options):
    """boxes (1, n, length), scores (1, n, classes + background), anchors (n, 4) clustered so that
    decoded boxes overlap; uint8: boxes, scores and anchors quantized as TF1 SSD models are.
    `written`: attributes written over the ones the tensors are made for (bad files)."""
    attrs = {**BASE, **options}
    rng = np.random.default_rng(seed)
    mb = ModelBuilder(seed)
    quant = dtype == "uint8"
    c1 = attrs["num_classes"] + background
    boxes = mb.tensor((1, n, length), dtype, quant=(0.08, 128) if quant else None, name="boxes")
    scores = mb.tensor((1, n, c1), dtype, quant=(1 / 64, 0) if quant else None, name="scores")
    centers = rng.uniform(0.3, 0.7, (n, 2))
    sizes = rng.uniform(0.1, 0.4, (n, 2))
    anchors = np.concatenate([centers, sizes], 1)
    if quant:
        anchors = mb.tensor((n, 4), "uint8", quant=(1 / 256, 0), data=np.round(anchors * 256), name="anchors")
    else:
        anchors = mb.tensor((n, 4), "float32", data=anchors, name="anchors")
    k = attrs["max_detections"] * attrs["max_classes_per_detection"]
    outs = [mb.tensor((1, k, 4), "float32", name="detection_boxes"),
            mb.tensor((1, k), "float32", name="detection_classes"),
            mb.tensor((1, k), "float32", name="detection_scores"),
            mb.tensor((1,), "float32", name="num_detections")]
    options = flexbuffer_map({**attrs, **(written or {})})
    mb.op("CUSTOM", [boxes, scores, anchors], outs, custom_code=KIND, custom_options=options)
    return mb.build([boxes, scores], outs), (1, n, length), (1, n, c1)


def inputs(dtype, box_shape, score_shape, rng, ties: bool):
    if dtype == "uint8":
        boxes = rng.integers(100, 156, box_shape).astype(np.uint8)
        scores = (rng.integers(14, 20, score_shape) if ties else rng.integers(0, 64, score_shape)).astype(np.uint8)
        return [boxes, scores]
    boxes = rng.normal(0, 1.5, box_shape).astype(np.float32)
    scores = (rng.integers(0, 5, score_shape) / 4 if ties else rng.uniform(0, 1, score_shape)).astype(np.float32)
    return [boxes, scores]


def check_against_litert(data, xs, tmp_path):
    graph = load(data)
    got = kernelrun.run_lowered(graph, ops.lower(graph), xs, tmp_path)
    want = reference_run(data, xs)
    assert got[3].tolist() == want[3].tolist()
    op = next(op for op in graph.ops if op.kind == KIND)
    undefined = unwritten_rows(op.attrs, int(want[3][0]))
    for g, w in zip(got[:3], want[:3]):
        g, w = g.reshape(len(undefined), -1), w.reshape(len(undefined), -1)
        np.testing.assert_array_equal(g[~undefined], w[~undefined])
        assert not g[undefined].any(), "rows LiteRT leaves unwritten must be zero"
    return want


CASES = [
    dict(),
    dict(max_classes_per_detection=2),
    dict(max_classes_per_detection=3, max_detections=3),
    dict(max_classes_per_detection=5, num_classes=3),  # more per detection than classes: gaps
    dict(use_regular_nms=True),
    dict(use_regular_nms=True, detections_per_class=6, max_detections=5),
    dict(use_regular_nms=True, max_classes_per_detection=2),
    dict(nms_iou_threshold=1.0, nms_score_threshold=0.0),
]


# the default suite: fast NMS with one and two classes per detection, regular NMS; the rest is slow
DEFAULT = {(0, "float32"), (1, "float32"), (4, "float32"), (0, "uint8"), (5, "uint8")}


@pytest.mark.parametrize("case, dtype", [
    pytest.param(case, dtype, marks=() if (case, dtype) in DEFAULT else pytest.mark.slow)
    for dtype in ("float32", "uint8") for case in range(len(CASES))])
def test_bit_exact(case, dtype, tmp_path):
    options = CASES[case]
    rng = np.random.default_rng(case)
    data, box_shape, score_shape = model(dtype=dtype, background=case % 2, seed=case, **options)
    detections = 0
    for ties in (True, False):
        want = check_against_litert(data, inputs(dtype, box_shape, score_shape, rng, ties), tmp_path)
        detections += int(want[3][0])
    assert detections > 0  # the case exercises the NMS, not only the empty result


def test_long_encodings_and_many_ties(tmp_path):
    """Keypoint box coders give more than 4 values per box (only the first 4 are decoded); equal
    scores everywhere: the sort order alone decides."""
    data, box_shape, score_shape = model(n=20, length=6, max_classes_per_detection=2, max_detections=6)
    xs = [np.random.default_rng(5).normal(0, 1, box_shape).astype(np.float32), np.full(score_shape, 0.5, np.float32)]
    check_against_litert(data, xs, tmp_path)


def test_other_custom_ops_stay_rejected():
    mb = ModelBuilder()
    x = mb.tensor((1, 4), "float32", name="x")
    y = mb.tensor((1, 4), "float32", name="y")
    mb.op("CUSTOM", [x], [y], custom_code="MyOp")
    with pytest.raises(KilnError, match="custom op 'MyOp' is not supported"):
        load(mb.build([x], [y]))


@pytest.mark.parametrize("options, message", [
    (dict(nms_iou_threshold=0.0), "nms_iou_threshold is 0.0"),
    (dict(max_detections=0), "max_detections is 0"),
    (dict(num_classes=7), "4 classes for num_classes 7"),
    (dict(y_scale=0.0), "divides by zero"),
])
def test_bad_attributes_are_reported(options, message):
    data, _, _ = model(written=options)
    with pytest.raises(KilnError, match=message):
        load(data)


def test_int8_inputs_are_refused_with_the_way_out():
    """LiteRT's kernel reads uint8 or float32: int8 has no reference, a DEQUANTIZE is the way out."""
    mb = ModelBuilder()
    boxes = mb.tensor((1, 4, 4), "int8", quant=(0.1, 0), name="boxes")
    scores = mb.tensor((1, 4, 2), "float32", name="scores")
    anchors = mb.tensor((4, 4), "float32", data=np.full((4, 4), 0.5), name="anchors")
    outs = [mb.tensor(s, "float32") for s in ((1, 4, 4), (1, 4), (1, 4), (1,))]
    mb.op("CUSTOM", [boxes, scores, anchors], outs, custom_code=KIND,
          custom_options=flexbuffer_map({**BASE, "num_classes": 2}))
    with pytest.raises(KilnError, match="box encodings 'boxes' are int8: .* DEQUANTIZE"):
        load(mb.build([boxes, scores], outs))


def test_validation_reference_zeroes_the_rows_litert_leaves_unwritten(tmp_path):
    """runner/reference.py: the kernel's whole outputs equal the reference's, unwritten rows included."""
    from tinykiln.runner.reference import Reference

    data, box_shape, score_shape = model(max_classes_per_detection=5, max_detections=6)
    path = tmp_path / "detect.tflite"
    path.write_bytes(data)
    reference = Reference(path)
    graph = load(data)
    lowered = ops.lower(graph)
    rng = np.random.default_rng(7)
    for ties in (True, False):
        xs = inputs("float32", box_shape, score_shape, rng, ties)
        got = kernelrun.run_lowered(graph, lowered, xs, tmp_path)
        want = reference.run(xs)
        assert want[3][0] > 0  # each detection has 5 rows for 3 classes: LiteRT leaves 2 unwritten
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_corrupt_options_are_reported():
    data, _, _ = model()
    good = flexbuffer_map({**BASE})
    bad = data.replace(good, bytes([0xFF]) * (len(good) - 2) + good[-2:])
    with pytest.raises(KilnError, match="not a readable FlexBuffer map"):
        load(bad)
