"""Stateful models through the firmware: single-op SVDF and LSTM models (tests/modelgen.py) built with
validate=1, validated against LiteRT in reset sequences over the device protocol (RESET), the state
bytes in the report. Host in the default suite, mps2-an500 in the slow one."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "kernels"))
from test_ops_lstm import lstm_model  # noqa: E402
from test_ops_svdf import svdf_model  # noqa: E402

MODELS = {
    # name -> (builder, bytes of state)
    "svdf_int8": (lambda: svdf_model("int8", 1, 16, 4, 2, 6, seed=4), 8 * 6 * 2),
    "lstm_float": (lambda: lstm_model(1, 6, 5, seed=5, peephole=True), 32 + 32),
}


def _validate(scons, builddir, tmp_path, name, board):
    build, state_bytes = MODELS[name]
    mb, x, y = build()
    path = tmp_path / f"{name}.tflite"
    path.write_bytes(mb.build([x], [y]))
    result = scons(f"board={board}", f"model={path}", "validate=1", "n=12")
    assert result.returncode == 0, result.output[-3000:]
    report = json.loads((builddir / board / "release" / name / "report.json").read_text())
    assert report["memory"]["state_bytes"] == state_bytes
    validation = report["validation"]
    assert validation["passed"] and validation["sequence_length"] == 10 and validation["runs"] == 20
    assert f"state {state_bytes:,} B" in result.output and "validation PASS" in result.output


@pytest.mark.parametrize("name", sorted(MODELS))
def test_stateful_models_validate_on_host(scons, kiln_build_dir, tmp_path, name):
    _validate(scons, kiln_build_dir, tmp_path, name, "host")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MODELS))
def test_stateful_models_validate_on_mps2_an500(scons, kiln_build_dir, tmp_path, name):
    _validate(scons, kiln_build_dir, tmp_path, name, "mps2-an500")
