"""A whole uint8 (TF1-style) model through the real pipeline on board=host: uint8 input and output at
the API, int8 kernels inside (tflite/uint8.py), validated bit-exact against LiteRT's uint8 kernels."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import uint8net  # noqa: E402


def uint8_net() -> bytes:
    mb, ins, outs = uint8net.uint8_example()
    return mb.build(ins, outs)


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
