"""Schedule files (tinykiln/schedules.py) and the schedule space: every sampled knob combination of
the int8 conv / fully connected families computes LiteRT's bits."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import modelgen as mg

from tinykiln import KilnError, schedules


def test_schedule_file_round_trip(tmp_path):
    path = tmp_path / "schedules" / "mps2-an500.json"
    kernels = {"b" * 16: {"family": "conv2d_int8", "knobs": {"oc_tile": 2, "unroll": True}, "instructions": 5},
               "a" * 16: {"family": "fully_connected_int8", "knobs": {"microkernel": "none"}}}
    schedules.save(path, "m", "mps2-an500", kernels)
    text = path.read_text()
    assert text.index("a" * 16) < text.index("b" * 16)  # sorted: stable diffs
    assert schedules.load(path) == {"a" * 16: {"microkernel": "none"}, "b" * 16: {"oc_tile": 2, "unroll": True}}
    schedules.save(path, "m", "mps2-an500", kernels)
    assert path.read_text() == text


def test_first_format_and_resolution(tmp_path):
    model_dir = tmp_path / "model"
    (model_dir / "schedules").mkdir(parents=True)
    (model_dir / "schedules" / "host.json").write_text(json.dumps({"k1": {"oc_tile": 4}}))
    assert schedules.resolve(model_dir, "host") == (model_dir / "schedules" / "host.json", {"k1": {"oc_tile": 4}})
    assert schedules.resolve(model_dir, "host", use_tuned=False) == (None, {})
    assert schedules.resolve(model_dir, "mps2-an500") == (None, {})
    other = tmp_path / "other.json"
    schedules.save(other, "m", "host", {"k2": {"knobs": {"unroll": True}}})
    assert schedules.resolve(model_dir, "host", schedules=str(other))[1] == {"k2": {"unroll": True}}


@pytest.mark.parametrize("text, words", [
    ("{not json", "not valid JSON"),
    ('{"format": 99, "kernels": {}}', "format 99"),
    ('{"format": 1, "kernels": {"k": {"family": "x"}}}', "no \"knobs\""),
])
def test_bad_schedule_files_are_clear_errors(tmp_path, text, words):
    path = tmp_path / "s.json"
    path.write_text(text)
    with pytest.raises(KilnError, match=words):
        schedules.load(path)
    with pytest.raises(KilnError, match="does not exist"):
        schedules.load(tmp_path / "missing.json")


def _sampled(space, count, seed):
    combos = [dict(zip(space, values)) for values in itertools.product(*space.values())]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(combos), size=min(count, len(combos)), replace=False)
    return [combos[i] for i in sorted(picks)]


def _model():
    mb = mg.ModelBuilder(23)
    x = mb.input((1, 7, 6, 5), "int8", name="input")
    y = mg.conv2d(mb, x, 8, (3, 3), stride=(1, 2), padding="SAME", activation="RELU", per_channel=True)
    y = mg.conv2d(mb, y, 6, (2, 2), padding="VALID", per_channel=False)
    y = mg.depthwise_conv2d(mb, y, (3, 2), depth_multiplier=2, stride=(2, 1), padding="SAME")
    y = mg.fully_connected(mb, y, 12, activation="RELU")
    return mb, x, y


@pytest.mark.parametrize("seed", range(6))
def test_sampled_knob_combinations_are_bit_exact(seed, tmp_path):
    from kernelrun import load_graph, run_lowered

    from tinykiln.ops import knob_space, lower, workload_key

    mb, x, y = _model()
    model = mb.build([x], [y])
    graph = load_graph(model, mb, [x], [y])
    default = lower(graph)
    knobs = {}
    for i, call in enumerate(default.calls):
        space = knob_space(call.spec)
        knobs[workload_key(call.spec)] = _sampled(space, 1, seed * 10 + i)[0]
    tuned = lower(graph, knobs)
    for call in tuned.calls:
        assert call.spec.knobs == knobs[workload_key(call.spec)]
    value = mg.random_input(mb, x, seed=seed)
    want = mg.reference_run(model, [value])[0]
    got = run_lowered(graph, tuned, [value], tmp_path)[0]
    assert np.array_equal(got, want), tuned.calls[0].spec.knobs
