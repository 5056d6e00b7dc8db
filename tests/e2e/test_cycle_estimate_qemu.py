"""The cycle estimate end to end: validate=1 profile=1 and app=perf on QEMU mps2-an386 (the
Cortex-M4 table) and mps2-an500 (the Cortex-M7 model) put it in report.json beside the instruction
count; a QEMU without plugin support still validates, saying once that there is no estimate."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from conftest import ROOT

SHARED = ROOT.parent / "shared" / "models"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models")
HELLO = SHARED / "tflm_hello_world_int8.tflite"
needs_shared = pytest.mark.skipif(not HELLO.is_file(), reason="../shared/models is not there")

pytestmark = [needs_shared, pytest.mark.slow]


def _report(builddir, board, name) -> dict:
    return json.loads((Path(builddir) / board / "release" / name / "report.json").read_text())


@pytest.mark.parametrize("board, core", [("mps2-an386", "m4"), ("mps2-an500", "m7")])
def test_validation_reports_the_estimate(scons, kiln_build_dir, board, core):
    r = scons(f"board={board}", f"model={HELLO}", "validate=1", "profile=1", "n=2")
    assert r.returncode == 0, r.output[-3000:]
    m = re.search(r"instructions per inference: ([\d,]+) \(median of \d+ runs\).*; "
                  rf"estimated {core} cycles: ([\d,]+) \(", r.output)
    assert m, r.output[-3000:]
    data = _report(kiln_build_dir, board, "tflm_hello_world_int8")
    assert data["cycles_estimated_core"] == core
    assert data["cycles_estimated_per_inference"] == int(m.group(2).replace(",", ""))
    # plausible against the instruction count: no core takes 0.3 or 4 cycles per instruction here
    assert 0.3 < data["cycles_estimated_per_inference"] / data["instructions_per_inference"] < 4
    layers = data["profile"]["layers"]
    assert all(row["cycles_estimated"] > 0 and row["cycles_estimated_core"] == core for row in layers)
    assert f"est. {core} cycles" in r.output


def test_perf_app_reports_the_estimate(scons, kiln_build_dir):
    r = scons("board=mps2-an500", f"model={HELLO}", "app=perf", "run=1")
    assert r.returncode == 0, r.output[-3000:]
    m = re.search(r"perf: estimated m7 cycles/inference: min (\d+) avg (\d+) max (\d+)", r.output)
    assert m, r.output[-3000:]
    data = _report(kiln_build_dir, "mps2-an500", "tflm_hello_world_int8-perf")
    assert data["cycles_estimated_per_inference"] > 0 and data["cycles_estimated_core"] == "m7"


def test_without_plugin_support_everything_still_runs(scons, tmp_path, monkeypatch):
    """A qemu-system-arm whose -help has no -plugin (as one built without plugins): the validation
    passes, the estimate is absent and said to be, once."""
    real = "/usr/bin/qemu-system-arm"
    fake = tmp_path / "bin" / "qemu-system-arm"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nif [ "$1" = -help ]; then {real} -help | grep -v plugin; exit 0; fi\n'
                    f'exec {real} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{__import__('os').environ['PATH']}")
    build = tmp_path / "build"
    r = scons("board=mps2-an386", f"model={HELLO}", "validate=1", "n=2", builddir=build)
    assert r.returncode == 0, r.output[-3000:]
    assert "validation PASS" in r.output
    assert r.output.count("cycle estimate: none (this qemu-system-arm is built without TCG plugin support)") == 1
    data = _report(build, "mps2-an386", "tflm_hello_world_int8")
    assert "cycles_estimated_per_inference" not in data and data["instructions_per_inference"] > 0
