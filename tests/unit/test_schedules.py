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


def _graph():
    from kernelrun import load_graph

    mb, x, y = _model()
    return load_graph(mb.build([x], [y]), mb, [x], [y])


def test_schedule_key_survives_a_generator_edit(monkeypatch):
    """The key names what a kernel computes, not the generator's digest: a compiler edit keeps a
    committed schedule file applying (the function names, which carry the digest, do change)."""
    from tinykiln import sources
    from tinykiln.ops import knob_space, lower, workload_key

    graph = _graph()
    before = lower(graph).calls
    conv = before[0].spec
    space = knob_space(conv)
    knobs = {name: values[-1] for name, values in space.items()}
    digest = sources.generator_digest
    monkeypatch.setattr(sources, "generator_digest", lambda module: "edited" + digest(module)[6:])
    after = lower(graph, {workload_key(conv): knobs})
    assert [workload_key(c.spec) for c in after.calls] == [workload_key(c.spec) for c in before]
    assert after.calls[0].spec.function_name != conv.function_name
    assert after.calls[0].spec.tool_versions != conv.tool_versions
    assert after.calls[0].spec.knobs == knobs and after.warnings == []


def test_a_knob_outside_the_space_falls_back_to_its_default_with_a_warning():
    from tinykiln.ops import knob_space, lower, workload_key

    graph = _graph()
    spec = lower(graph).calls[0].spec
    space = knob_space(spec)
    name, values = next((n, v) for n, v in space.items() if len(v) > 1)
    other, other_values = next((n, v) for n, v in space.items() if n != name and len(v) > 1)
    lowered = lower(graph, {workload_key(spec): {name: "no such value", other: other_values[1],
                                                 "gone_knob": 3}})
    got = lowered.calls[0].spec
    assert got.knobs[name] == values[0]  # the default, not the file's value
    assert got.knobs[other] == other_values[1]  # the valid knob of the entry still applies
    assert "gone_knob" not in got.knobs
    assert len(lowered.warnings) == 2, lowered.warnings
    bad_value, unknown = lowered.warnings
    assert spec.function_name in bad_value and f"{name}='no such value'" in bad_value
    assert "\n" not in bad_value
    assert spec.function_name in unknown and "'gone_knob'" in unknown


def test_stale_entries_are_reported_once_with_their_count():
    from tinykiln.ops import lower, workload_key

    graph = _graph()
    spec = lower(graph).calls[0].spec
    stale = {"0" * 16: {"oc_tile": 2}, "1" * 16: {"unroll": True}}
    lowered = lower(graph, {workload_key(spec): dict(spec.knobs), **stale})
    assert len(lowered.warnings) == 1
    assert "2 schedule entries match no kernel" in lowered.warnings[0]
    assert "0" * 16 in lowered.warnings[0] and "1" * 16 in lowered.warnings[0]
    assert lower(graph, {workload_key(spec): dict(spec.knobs)}).warnings == []
