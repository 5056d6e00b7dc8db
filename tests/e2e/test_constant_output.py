"""A model output that import folds to a constant (ST's SSD detectors output their anchors as
DEQUANTIZE(CONCATENATION(TILE(constant)))): the firmware writes the constant into the output's own
arena slot on every run, and the model validates against LiteRT on board=host."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from modelgen import ModelBuilder, binary, dequantize, reference_run  # noqa: E402


def anchors_net() -> bytes:
    mb = ModelBuilder(seed=5)
    x = mb.input((1, 8, 4), name="scores_in")
    scores = binary(mb, "ADD", x, x, name="scores")
    codes = mb.tensor((1, 8, 4), "int8", quant=(0.05, -3), data=mb.rng.integers(-128, 128, (1, 8, 4)),
                      name="anchor_codes")
    anchors = dequantize(mb, codes, name="anchors")
    return mb.build([x], [scores, anchors])


def test_litert_reports_the_constant_output():
    want = reference_run(anchors_net(), [np.zeros((1, 8, 4), np.int8)])
    assert want[1].dtype == np.float32 and want[1].shape == (1, 8, 4) and np.any(want[1] != 0)


@pytest.mark.slow
def test_constant_output_validates_on_host(scons, kiln_build_dir, tmp_path):
    model = tmp_path / "anchors_net.tflite"
    model.write_bytes(anchors_net())
    result = scons("board=host", f"model={model}", "validate=1", "n=2")
    assert result.returncode == 0, result.output[-3000:]
    report = json.loads((kiln_build_dir / "host" / "release" / "anchors_net" / "report.json").read_text())
    assert report["validation"]["passed"] is True
