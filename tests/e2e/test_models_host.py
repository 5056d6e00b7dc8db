"""Whole models on board=host through the real pipeline: `./kiln board=host model=X validate=1`
(TFLite -> TVM kernels -> AOT -> host gcc -> validation app on a pipe -> LiteRT BUILTIN_REF)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[3] / "shared" / "models"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models")

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/models is not there")


def _report(builddir: Path, model: str) -> dict:
    return json.loads((builddir / "host" / "release" / model / "report.json").read_text())


@needs_shared
def test_hello_world_int8_is_bit_exact_on_host(scons, kiln_build_dir):
    model = SHARED / "tflm_hello_world_int8.tflite"
    result = scons("board=host", f"model={model}", "validate=1", "n=5")
    assert result.returncode == 0, result.output
    verdicts = [line for line in result.output.splitlines() if line.startswith("validation ")]
    assert verdicts == [verdicts[0]] and verdicts[0].startswith(
        "validation PASS: tflm_hello_world_int8 on host, 5 runs (5 random, 0 sample), bit-exact")
    data = _report(kiln_build_dir, "tflm_hello_world_int8")
    assert data["validation"]["bit_exact"] is True and data["validation"]["runs"] == 5
    memory = data["memory"]
    assert memory["arena_bytes"] >= memory["arena_lower_bound"] > 0
    assert memory["weights_bytes"] > 0 and memory["code_bytes"] > 0
    assert "regions" in data  # the link step's blocks are still there

    # no-op rebuild: nothing compiled, linked or generated again
    again = scons("board=host", f"model={model}")
    assert again.returncode == 0, again.output
    assert not [line for line in again.output.splitlines()
                if line.startswith(("CC ", "LD ", "TVM ", "AOT "))], again.output


@pytest.mark.parametrize("spec, name", [("cifar10", "cifar10"), ("cifar10:float", "cifar10_float")])
def test_cifar10_validates_on_host_with_its_samples(scons, kiln_build_dir, spec, name):
    result = scons("board=host", f"model={spec}", "validate=1", "n=2")
    assert result.returncode == 0, result.output[-3000:]
    assert f"validation PASS: {name} on host, 12 runs (2 random, 10 sample)" in result.output
    data = _report(kiln_build_dir, name)
    assert data["validation"]["passed"] is True
    if name == "cifar10":
        assert data["validation"]["bit_exact"] is True


def test_unknown_model_is_a_clear_error(scons):
    result = scons("board=host", "model=no_such_model_here")
    assert result.returncode != 0
    assert "unknown model 'no_such_model_here'" in result.output
    assert "Traceback" not in result.output


# Done when every one of these passes (the kernels of some op families are still being written).
ALL_SHARED = ["tflm_hello_world_int8", "tflm_hello_world_float", "tflm_simple_add_int8",
              "mlperf_ad_fc_ae_int8", "mlperf_kws_dscnn_int8", "mlperf_ic_resnet8_int8",
              "mlperf_ic_resnet8_float"]


@needs_shared
@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_SHARED)
def test_shared_model_validates_on_host(scons, kiln_build_dir, name):
    result = scons("board=host", f"model={SHARED / (name + '.tflite')}", "validate=1", timeout=1800)
    assert result.returncode == 0, result.output[-3000:]
    assert f"validation PASS: {name} on host" in result.output
    data = _report(kiln_build_dir, name)
    if name.endswith("_int8"):
        assert data["validation"]["bit_exact"] is True


@needs_shared
def test_layer_debug_tool_compares_every_op(capsys):
    from tinykiln.runner import layers

    status = layers.main([str(SHARED / "tflm_hello_world_int8.tflite"), "--runs", "2"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert [line.split()[2] for line in out.splitlines()[:3]] == ["FULLY_CONNECTED"] * 3
    assert out.splitlines()[-1] == "all layers match"
