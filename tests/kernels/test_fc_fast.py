"""FULLY_CONNECTED int8 with int16 weights packed for tk_mk_fc_s8w16 / tk_mk_fc_s16w16 (the input
row widened once by tk_mk_fc_widen; runtime/kernels/tk_mk_fc.h): the packing agrees with the index
the TE compute reads, and every knob combination is bit-exact
with LiteRT on the portable path (host gcc), the DSP path (emulated Cortex-M7 and M4) and the NEON
path (emulated Cortex-A9), for
batches > 1, depths with every tail (k % 4) and odd or even block counts, tiles of 1..8 rows (groups
of 4 and the 1..3 left over), per-tensor and per-channel weights, fused RELU/RELU6, no bias."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

import modelgen as mg

# (units, per_channel, activation, bias) of each layer; the first reads a (3, 37) input: depths
# 37, 30, 8, 7, 6, 5, 12 (tails 1, 2, 0, 3, 2, 1, 0; 9, 7, 2, 1, 1, 1, 3 blocks of four: the DSP
# loop does four at a time after the 1, 2 or 3 left over)
LAYERS = [(30, False, "RELU", True), (8, True, "NONE", True), (7, False, "RELU6", True),
          (6, False, "NONE", False), (5, True, "RELU", True), (12, True, "NONE", True),
          (10, False, "NONE", True)]


def _model():
    mb = mg.ModelBuilder(5)
    x = mb.input((3, 37), "int8", name="input")
    y = x
    for i, (units, per_channel, act, bias) in enumerate(LAYERS):
        y = mg.fully_connected(mb, y, units, activation=act, per_channel=per_channel, bias=bias, name=f"fc{i}")
    return mb, x, y


def _lowered(knobs_of=None):
    """(model bytes, graph, default lowering, lowering with knobs_of(i, spec, space) per layer)."""
    from kernelrun import load_graph

    from tinykiln.ops import knob_space, lower, workload_key

    mb, x, y = _model()
    model = mb.build([x], [y])
    graph = load_graph(model, mb, [x], [y])
    default = lower(graph)
    if knobs_of is None:
        return mb, x, model, graph, default, default
    knobs = {workload_key(c.spec): dict(c.spec.knobs, **knobs_of(i, c.spec, knob_space(c.spec)))
             for i, c in enumerate(default.calls)}
    return mb, x, model, graph, default, lower(graph, knobs)


def test_packing_matches_the_index_the_compute_reads():
    from tvm import tirx
    from tvm.sym.analyzer import Analyzer

    from tinykiln.ops.fully_connected import fc_w16_index, pack_fc_w16

    analyzer = Analyzer()
    rng = np.random.default_rng(0)
    for units, depth, tile in [(8, 13, 8), (7, 6, 7), (6, 5, 3), (12, 37, 6), (5, 4, 5), (2, 1, 1), (3, 3, 3)]:
        w = rng.integers(-128, 128, (units, depth), dtype=np.int8)
        packed = pack_fc_w16(w, tile)
        assert packed.dtype == np.int16 and packed.shape[0] == units // tile
        assert packed.shape[1] % 2 == 0  # every tile (and group) starts on a word
        seen = np.zeros(packed.shape, bool)
        for o, k in itertools.product(range(units), range(depth)):
            index = analyzer.simplify(fc_w16_index(tirx.const(o % tile, "int32"), tirx.const(k, "int32"),
                                                   tile, depth))
            assert packed[o // tile, int(index)] == w[o, k], (units, depth, tile, o, k)
            seen[o // tile, int(index)] = True
        assert np.all(packed[~seen] == 0)  # the rest is padding


def test_int8_packing_matches_the_index_the_compute_reads():
    from tvm import tirx
    from tvm.sym.analyzer import Analyzer

    from tinykiln.ops.fully_connected import fc_w8_index, pack_fc_w8

    analyzer = Analyzer()
    rng = np.random.default_rng(1)
    for units, depth, tile in [(8, 13, 8), (7, 6, 7), (6, 5, 3), (12, 37, 6), (5, 4, 5), (2, 1, 1), (3, 3, 3)]:
        w = rng.integers(-128, 128, (units, depth), dtype=np.int8)
        packed = pack_fc_w8(w, tile)
        assert packed.dtype == np.int8 and packed.shape[0] == units // tile
        assert packed.shape[1] % 4 == 0  # every tile (and group) starts on a word
        assert packed.shape[1] <= tile * depth + 3  # the .tflite's bytes, plus at most 3 a tile
        seen = np.zeros(packed.shape, bool)
        for o, k in itertools.product(range(units), range(depth)):
            index = analyzer.simplify(fc_w8_index(tirx.const(o % tile, "int32"), tirx.const(k, "int32"),
                                                  tile, depth))
            assert packed[o // tile, int(index)] == w[o, k], (units, depth, tile, o, k)
            seen[o // tile, int(index)] = True
        assert np.all(packed[~seen] == 0)  # the rest is padding


def test_weights8_keeps_the_weight_bytes_int8():
    *_, lowered = _lowered(lambda i, spec, space: {"weights8": True})
    for call in lowered.calls:
        w = call.spec.params[1]
        assert w.dtype == "int8" and call.args[1].dtype == np.int8 and call.args[1].shape == w.shape
        units, depth = call.spec.attrs["units"], call.spec.attrs["depth"]
        assert units * depth <= call.args[1].size <= units * depth + 3 * units


def test_weights16_is_the_default_and_doubles_the_weight_bytes():
    *_, default, _ = _lowered()
    for call in default.calls:
        assert call.spec.knobs["weights16"] is True and call.spec.knobs["microkernel"] == "dot_s8"
        w = call.spec.params[1]
        assert w.dtype == "int16" and call.args[1].dtype == np.int16 and call.args[1].shape == w.shape
        units, depth = call.spec.attrs["units"], call.spec.attrs["depth"]
        assert units * depth <= call.args[1].size <= units * depth + units
        # input16 by default at these depths: one row of int16, an even count (alignment)
        scratch = [p for p in call.spec.params if p.role == "scratch"]
        assert call.spec.knobs["input16"] is True
        assert [(p.dtype, p.shape) for p in scratch] == [("int16", (depth + depth % 2,))]


def test_input16_defaults_off_where_its_scratch_would_be_large():
    from tinykiln.kernel import KernelSpec
    from tinykiln.ops import knob_space
    from tinykiln.ops.fully_connected import INPUT16_DEPTH

    for depth, default in [(INPUT16_DEPTH, True), (INPUT16_DEPTH + 1, False), (640, False)]:
        spec = KernelSpec("fully_connected_int8", (), {"batches": 1, "depth": depth, "units": 128})
        assert knob_space(spec)["input16"] == [default, not default]


def _tile_combinations():
    """Knob sets over the seven layers: each oc tile of each layer at least once, int16 or int8
    weights, int16 or int8 input, requantization unrolled or not, with the micro-kernel or TVM's
    loops, OI or IO."""
    cases = []
    for index in range(8):
        for w16, w8, x16 in ((True, False, True), (True, False, False), (False, False, False),
                             (False, True, True), (False, True, False)):
            cases.append(lambda i, spec, space, index=index, w16=w16, w8=w8, x16=x16: {
                "oc_tile": space["oc_tile"][index % len(space["oc_tile"])], "weights16": w16, "weights8": w8,
                "input16": x16, "unroll": index % 2 == 0})
    cases.append(lambda i, spec, space: {"microkernel": "none"})
    cases.append(lambda i, spec, space: {"weight_layout": "IO", "oc_tile": space["oc_tile"][-1]})
    return cases


@pytest.mark.parametrize("case", range(len(_tile_combinations())))
def test_knob_combinations_are_bit_exact_on_the_portable_path(case, tmp_path):
    from kernelrun import run_lowered

    mb, x, model, graph, _, lowered = _lowered(_tile_combinations()[case])
    for seed in range(2):
        value = mg.random_input(mb, x, seed=seed)
        want = mg.reference_run(model, [value])[0]
        got = run_lowered(graph, lowered, [value], tmp_path)[0]
        assert np.array_equal(got, want), [c.spec.knobs for c in lowered.calls]


def _schedule_file(path, pick):
    from tinykiln import schedules
    from tinykiln.ops import knob_space

    *_, default, _ = _lowered()
    kernels = {c.spec.workload_key: {"family": c.spec.family, "knobs": dict(c.spec.knobs, **pick(knob_space(c.spec)))}
               for c in default.calls}
    schedules.save(path, "fc_fast", "any", kernels)
    return path


@pytest.mark.parametrize("board", ["mps2-an500", "mps2-an386", "pynq-z1"])  # DSP: M7, M4; NEON: A9
@pytest.mark.parametrize("tiles", ["default", "largest", "int8 input", "int8", "weights8", "weights8 int8 input"])
def test_device_paths_are_bit_exact(scons, tmp_path, board, tiles):
    """Defaults: tiles of 1..4 rows (one group of 1, 2, 3 or 4), the input widened; largest: 5..8
    rows (a group of four and one of 1..4); int8 input: tk_mk_fc_s8w16 (input16 off); int8: the
    int8 rows of tk_mk_dot_s8 (weights16 off)."""
    mb, x, y = _model()
    model = tmp_path / "fc.tflite"
    model.write_bytes(mb.build([x], [y]))
    args = [f"board={board}", f"model={model}", "validate=1", "n=3", "werror=1", "use_tuned=0"]
    if tiles == "largest":
        args.append(f"schedules={_schedule_file(tmp_path / 's.json', lambda s: {'oc_tile': max(s['oc_tile'])})}")
    elif tiles == "int8 input":
        pick = lambda s: {'oc_tile': max(s['oc_tile']), 'input16': False, 'unroll': False}  # noqa: E731
        args.append(f"schedules={_schedule_file(tmp_path / 's.json', pick)}")
    elif tiles == "int8":
        args.append(f"schedules={_schedule_file(tmp_path / 's.json', lambda s: {'weights16': False})}")
    elif tiles == "weights8":
        pick = lambda s: {'weights8': True, 'oc_tile': s['oc_tile'][len(s['oc_tile']) // 2]}  # noqa: E731
        args.append(f"schedules={_schedule_file(tmp_path / 's.json', pick)}")
    elif tiles == "weights8 int8 input":
        pick = lambda s: {'weights8': True, 'oc_tile': max(s['oc_tile']), 'input16': False}  # noqa: E731
        args.append(f"schedules={_schedule_file(tmp_path / 's.json', pick)}")
    result = scons(*args)
    assert result.returncode == 0, result.output[-3000:]
    assert "validation PASS" in result.output, result.output[-3000:]
