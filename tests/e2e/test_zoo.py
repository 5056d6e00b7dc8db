"""The public models of ../shared/models/zoo (other projects' models, see its README), as a user
brings them: each either validates against LiteRT (int8 bit-exact) or is refused at import with a
message naming a documented unsupported feature (./kiln ops lists them) — never a traceback or a
compiler error. bench/coverage.py prints the same over any folder of models."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinykiln import KilnError
from tinykiln.tflite import load

ZOO = Path(__file__).resolve().parents[3] / "shared" / "models" / "zoo"
if not ZOO.is_dir():
    ZOO = Path("/work/shared/models/zoo")

pytestmark = pytest.mark.skipif(not ZOO.is_dir(), reason="../shared/models/zoo is not there")

# model -> None (validates) or the words its rejection must contain
EXPECTED = {
    "aed_yamnet_256_64x96_int8": None,
    "fomo_nicla_balloon": None,
    "gesture_macro_keyboard": None,
    "ad_imu_ver2_model1_int8": None,
    "deeplabv3_mnv2_dm05_pascal_quant": None,
    "dtln_noise_suppression": "UNIDIRECTIONAL_SEQUENCE_LSTM (output 'tfl.unidirectional_sequence_lstm'): int8",
    "har_stm32ai_notebook": None,
    "ic_resnet_v1_8_32_cifar10_int8": None,
    "ic_st_efficientnet_lc_v1_128_flowers_int8": None,
    "keyword_scrambled": None,  # SVDF with variable state tensors: validated in sequences
    "seanet_add0": None,
    "seanet_conv10": None,
    "split_concat": None,
}
# the stateful ones among them: bytes of state (their variable tensors)
STATEFUL = {"keyword_scrambled": 10240}
VALIDATING = sorted(m for m, why in EXPECTED.items() if why is None)
REJECTED = sorted(m for m, why in EXPECTED.items() if why is not None)


def test_every_zoo_model_is_listed():
    assert sorted(p.stem for p in ZOO.glob("*.tflite")) == sorted(EXPECTED)


@pytest.mark.parametrize("model", REJECTED)
def test_refused_at_import_naming_the_feature(model):
    with pytest.raises(KilnError) as error:
        load(ZOO / f"{model}.tflite")
    message = str(error.value)
    assert "cannot compile this model" in message and EXPECTED[model] in message, message


def _validate(scons, builddir, model, board):
    result = scons(f"board={board}", f"model={ZOO / model}.tflite", "validate=1", "n=2")
    assert result.returncode == 0, result.output[-3000:]
    assert "Traceback" not in result.output
    report = json.loads((builddir / board / "release" / model / "report.json").read_text())
    assert report["validation"]["passed"] is True
    if model in STATEFUL:
        # state kept across runs: planned beside the arena, validated over a reset sequence
        assert report["memory"]["state_bytes"] == STATEFUL[model]
        assert report["validation"]["sequence_length"] == 10 and report["validation"]["runs"] >= 10
        assert f"state {STATEFUL[model]:,} B" in result.output


@pytest.mark.parametrize("model", VALIDATING)
def test_validates_on_host(scons, kiln_build_dir, model):
    _validate(scons, kiln_build_dir, model, "host")


# too big for mps2-an500's 4 MB of data RAM: the build must say which region and by how much
NO_FIT = {"deeplabv3_mnv2_dm05_pascal_quant": "DATA"}


@pytest.mark.slow
@pytest.mark.parametrize("model", [m for m in VALIDATING if m not in NO_FIT])
def test_validates_on_mps2_an500(scons, kiln_build_dir, model):
    _validate(scons, kiln_build_dir, model, "mps2-an500")


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(NO_FIT))
def test_too_big_for_mps2_an500_says_where_and_by_how_much(scons, kiln_build_dir, model):
    result = scons("board=mps2-an500", f"model={ZOO / model}.tflite")
    assert result.returncode != 0
    assert "does not fit" in result.output and NO_FIT[model] in result.output, result.output[-3000:]
    assert "Traceback" not in result.output
