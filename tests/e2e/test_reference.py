"""validate=1 when LiteRT refuses the file: against a corrected copy of what the importer tolerates
(saying what was corrected), or, when no reference can run, saying so and failing the build."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import modelgen


def _fc_model(tmp_path: Path, bias_axis: int = 0, version: int = 1) -> Path:
    path = tmp_path / f"fc_{bias_axis}_{version}.tflite"
    path.write_bytes(modelgen.fc_model_with(bias_axis, version))
    return path


def _validation(builddir: Path, name: str) -> dict:
    return json.loads((builddir / "host" / "release" / name / "report.json").read_text())["validation"]


@pytest.mark.slow
def test_validate_against_a_corrected_copy_on_host(scons, kiln_build_dir, tmp_path):
    model = _fc_model(tmp_path, bias_axis=3)
    r = scons("board=host", f"model={model}", "validate=1", "n=3")
    assert r.returncode == 0, r.output[-3000:]
    assert "LiteRT refuses the file as it is (quantized_dimension must be in range" in r.output
    assert "  - tensor 2 'fc/bias': quantized_dimension 3 -> 0" in r.output
    assert f"validation PASS: {model.stem} on host, 3 runs (3 random, 0 sample), bit-exact vs LiteRT " \
           "reference kernels (a corrected copy: see above)" in r.output
    block = _validation(kiln_build_dir, model.stem)
    assert block["passed"] is True and block["compared"] is True and block["bit_exact"] is True
    assert block["reference"] == "litert (corrected copy)"
    assert block["corrections"][0].startswith("tensor 2 'fc/bias': quantized_dimension 3 -> 0")


@pytest.mark.slow
def test_validate_without_any_reference_fails_saying_nothing_was_compared(scons, kiln_build_dir, tmp_path):
    model = _fc_model(tmp_path, version=99)  # LiteRT has no FULLY_CONNECTED version 99; the importer runs it
    r = scons("board=host", f"model={model}", "validate=1", "n=2")
    assert r.returncode != 0
    assert f"validation NOT COMPARED: {model.stem} on host, 2 runs (2 random, 0 sample) ran on the device, " \
           "none compared with a reference: LiteRT cannot load" in r.output
    assert "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '99'" in r.output
    assert f"validation of {model.stem} on host compared nothing" in r.output
    assert "validation PASS" not in r.output and "Traceback" not in r.output
    block = _validation(kiln_build_dir, model.stem)
    assert block["compared"] is False and block["passed"] is False and block["reference"] == "none"
    assert "version '99'" in block["reference_error"]
