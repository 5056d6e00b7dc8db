"""float32 on cores with fused multiply-add: the float rule (boards.FLOAT_CFLAGS, -ffp-contract=off)
keeps GCC from fusing a*b+c into VFMA, so a float model computes what LiteRT computes, operation by
operation. The example is a public gesture model whose softmax outputs moved by ~1e-6 on Cortex-M7
before the rule (a correct model failing validation)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "models"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models")
GESTURE = SHARED / "zoo" / "gesture_macro_keyboard.tflite"

needs_model = pytest.mark.skipif(not GESTURE.is_file(), reason=f"{GESTURE} is not there")


def _validates(scons, builddir: Path, board: str) -> dict:
    result = scons(f"board={board}", f"model={GESTURE}", "validate=1", "n=4")
    assert result.returncode == 0, result.output[-3000:]
    assert f"validation PASS: gesture_macro_keyboard on {board}, 4 runs" in result.output
    report = json.loads((builddir / board / "release" / "gesture_macro_keyboard" / "report.json").read_text())
    return report["validation"]


@needs_model
@pytest.mark.slow
def test_float_model_validates_on_cortex_m7(scons, kiln_build_dir):
    validation = _validates(scons, kiln_build_dir, "mps2-an500")
    # with contraction off the kernels round as LiteRT does: nothing left for the tolerance to absorb
    assert validation["passed"] is True and validation["bit_exact"] is True


@needs_model
@pytest.mark.slow
def test_float_model_validates_on_host(scons, kiln_build_dir):
    assert _validates(scons, kiln_build_dir, "host")["passed"] is True
