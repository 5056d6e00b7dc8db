"""A whole uint8 (TF1-style) model through the real pipeline on board=host: uint8 input and output at
the API, int8 kernels inside (tflite/uint8.py), validated bit-exact against LiteRT's uint8 kernels."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import modelgen as mg  # noqa: E402


def uint8_net(seed: int = 0) -> bytes:
    """uint8 image -> CONV (weights with a zero point) RELU6 -> DEPTHWISE -> CONV -> ADD (skip) ->
    AVERAGE_POOL (even windows) -> RESHAPE -> FULLY_CONNECTED -> SOFTMAX (uint8, 1/256)."""
    mb = mg.ModelBuilder(seed)
    rng = mb.rng

    def act(shape, scale, zp, name=None):
        return mb.tensor(shape, "uint8", quant=(scale, zp), name=name)

    def weights(shape):
        zp = int(rng.integers(60, 196))
        scale = float(rng.uniform(0.004, 0.02))
        data = np.clip(np.rint(rng.normal(zp, 50, size=shape)), 0, 255)
        return mb.tensor(shape, "uint8", quant=(scale, zp), data=data), scale

    def bias(x_scale, w_scale, n):
        return mb.tensor((n,), "int32", quant=(x_scale * w_scale, 0), data=rng.integers(-2000, 2000, n))

    x = act((1, 8, 8, 3), 1 / 128, 128, name="image")
    w, ws = weights((8, 3, 3, 3))
    c1 = act((1, 8, 8, 8), 6 / 255, 0)
    mb.op("CONV_2D", [x, w, bias(1 / 128, ws, 8)], [c1], padding="SAME", stride=(1, 1), activation="RELU6")
    w, ws = weights((1, 3, 3, 8))
    d1 = act((1, 8, 8, 8), 0.05, 110)
    mb.op("DEPTHWISE_CONV_2D", [c1, w, bias(6 / 255, ws, 8)], [d1], padding="SAME", stride=(1, 1), depth_multiplier=1)
    w, ws = weights((8, 1, 1, 8))
    c2 = act((1, 8, 8, 8), 0.08, 125)
    mb.op("CONV_2D", [d1, w, bias(0.05, ws, 8)], [c2], padding="VALID", stride=(1, 1))
    s = act((1, 8, 8, 8), 0.1, 120)
    mb.op("ADD", [c2, d1], [s])
    p = act((1, 4, 4, 8), 0.1, 120)
    mb.op("AVERAGE_POOL_2D", [s], [p], padding="VALID", stride=(2, 2), filter=(2, 2))
    flat = act((1, 128), 0.1, 120)
    mb.op("RESHAPE", [p, mb.const([1, 128])], [flat])
    w, ws = weights((10, 128))
    logits = act((1, 10), 0.15, 128)
    mb.op("FULLY_CONNECTED", [flat, w, bias(0.1, ws, 10)], [logits])
    probs = act((1, 10), 1 / 256, 0, name="probs")
    mb.op("SOFTMAX", [logits], [probs], beta=1.0)
    return mb.build([x], [probs])


@pytest.mark.slow
def test_uint8_model_validates_bit_exact_on_host(scons, kiln_build_dir, tmp_path):
    model = tmp_path / "u8net.tflite"
    model.write_bytes(uint8_net())
    result = scons("board=host", f"model={model}", "validate=1", "n=4")
    assert result.returncode == 0, result.output[-3000:]
    assert "validation PASS: u8net on host, 4 runs" in result.output and "bit-exact" in result.output
    data = json.loads((kiln_build_dir / "host" / "release" / "u8net" / "report.json").read_text())
    assert data["validation"]["bit_exact"] is True
    header = next((kiln_build_dir / "host" / "release" / "u8net").rglob("model.h")).read_text()
    # uint8 at the API: the input and the output keep the file's names and dtype
    assert "'image' uint8 [1, 8, 8, 3]" in header and "'probs' uint8 [1, 10]" in header


@pytest.mark.slow
def test_layer_debug_tool_compares_uint8_layers(tmp_path, capsys):
    from tinykiln.runner import layers

    model = tmp_path / "u8net.tflite"
    model.write_bytes(uint8_net())
    status = layers.main([str(model)])
    out = capsys.readouterr().out
    assert status == 0, out
    # the file's ops, compared on uint8 codes; the edge QUANTIZE ops the importer added are not LiteRT's
    assert [line.split()[2] for line in out.splitlines()[:-1]] == [
        "CONV_2D", "DEPTHWISE_CONV_2D", "CONV_2D", "ADD", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
        "SOFTMAX", "QUANTIZE"]
    assert out.splitlines()[-1] == "all layers match"
