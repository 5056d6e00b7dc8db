"""A small SSD-like detector through the real pipeline on board=host: a conv head (box encodings and
class scores per cell) ending in TFLite_Detection_PostProcess, validated against LiteRT (validate=1):
the int8 head dequantized into the op (how TF2 int8 SSD exports end), and a float32 one."""
from __future__ import annotations

import json

import numpy as np
import pytest

from modelgen import ModelBuilder, conv2d, dequantize, flexbuffer_map, unary
from tinykiln.ops.detection import KIND

CLASSES = 3


def detector(dtype: str, seed: int = 0) -> bytes:
    mb = ModelBuilder(seed)
    x = mb.input((1, 6, 6, 3), dtype, name="image")
    y = conv2d(mb, x, 8, (3, 3), activation="RELU", name="body")
    n = 6 * 6
    heads = []
    for name, depth in (("box", 4), ("cls", CLASSES + 1)):
        h = conv2d(mb, y, depth, (1, 1), name=name)
        if name == "cls":
            h = unary(mb, "LOGISTIC", h, name="scores")
        if dtype == "int8":
            h = dequantize(mb, h, name=f"{name}_float")
        heads.append(unary(mb, "RESHAPE", h, out_shape=(1, n, depth), extra_inputs=[mb.const([1, n, depth])]))
    boxes, scores = heads
    rng = np.random.default_rng(seed)
    cells = (np.stack(np.meshgrid(np.arange(6), np.arange(6), indexing="ij"), -1).reshape(-1, 2) + 0.5) / 6
    anchors = np.concatenate([cells, rng.uniform(0.2, 0.4, (n, 2))], 1).astype(np.float32)
    anchors = mb.tensor((n, 4), "float32", data=anchors, name="anchors")
    k = 5
    outs = [mb.tensor((1, k, 4), "float32", name="detection_boxes"),
            mb.tensor((1, k), "float32", name="detection_classes"),
            mb.tensor((1, k), "float32", name="detection_scores"),
            mb.tensor((1,), "float32", name="num_detections")]
    options = flexbuffer_map(dict(max_detections=k, max_classes_per_detection=1, detections_per_class=10,
                                  use_regular_nms=False, nms_score_threshold=0.3, nms_iou_threshold=0.5,
                                  num_classes=CLASSES, y_scale=10.0, x_scale=10.0, h_scale=5.0, w_scale=5.0))
    mb.op("CUSTOM", [boxes, scores, anchors], outs, custom_code=KIND, custom_options=options)
    return mb.build([x], outs)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_detector_validates_on_host(dtype, scons, kiln_build_dir, tmp_path):
    name = f"ssd_{dtype}"
    model = tmp_path / f"{name}.tflite"
    model.write_bytes(detector(dtype))
    result = scons("board=host", f"model={model}", "validate=1", "n=6")
    assert result.returncode == 0, result.output[-3000:]
    assert f"validation PASS: {name} on host, 6 runs" in result.output and "bit-exact" in result.output
    data = json.loads((kiln_build_dir / "host" / "release" / name / "report.json").read_text())
    assert data["validation"]["bit_exact"] is True


@pytest.mark.slow
def test_layer_debug_tool_compares_the_detector(tmp_path, capsys):
    from tinykiln.runner import layers

    model = tmp_path / "ssd.tflite"
    model.write_bytes(detector("float32"))
    status = layers.main([str(model)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert KIND in out and out.splitlines()[-1] == "all layers match"
