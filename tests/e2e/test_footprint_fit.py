"""optimize= against a board's flash: the issue's 720 KB fully connected model fits the 1 MB
nucleo-f412zg by default (its weights stay int8: with int16 it took 1.4 MB), and where int16 weights
do overflow (a schedule file asking for them) the message names the region, the bytes over, and
says that optimize=size would make it fit."""
from __future__ import annotations

import json
import re

import pytest

import modelgen as mg

pytestmark = pytest.mark.slow  # a model of 720 KB of weights: its weights.c alone takes a while


def _fc_model(path):
    mb = mg.ModelBuilder(8)
    x = mb.input((1, 1024), "int8", name="input")
    y = mg.fully_connected(mb, x, 700, activation="RELU", per_channel=True)
    path.write_bytes(mb.build([x], [y]))
    return path


def test_a_720kb_fully_connected_model_fits_a_1mb_board_by_default(scons, tmp_path):
    r = scons("board=nucleo-f412zg", f"model={_fc_model(tmp_path / 'fc720.tflite')}", builddir=tmp_path / "b")
    assert r.returncode == 0, r.output[-3000:]
    assert "overflowed" not in r.output


def test_int16_weights_that_overflow_say_optimize_size_would_fit(scons, tmp_path):
    from kernelrun import load_graph

    from tinykiln.ops import lower, workload_key

    model = _fc_model(tmp_path / "fc720.tflite")
    (call,) = lower(load_graph(model.read_bytes())).calls
    schedule = tmp_path / "int16.json"
    schedule.write_text(json.dumps({"format": 1, "model": "fc720", "board": "nucleo-f412zg", "kernels": {
        workload_key(call.spec): {"family": call.spec.family, "knobs": {"weights16": True, "weights8": False}}}}))
    r = scons("board=nucleo-f412zg", f"model={model}", f"schedules={schedule}", builddir=tmp_path / "b")
    assert r.returncode != 0
    assert re.search(r"region FLASH of board nucleo-f412zg overflowed by \d+ bytes", r.output), r.output[-3000:]
    assert "optimize=size would make it fit" in r.output, r.output[-3000:]
    assert "Traceback" not in r.output
