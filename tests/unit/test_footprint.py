"""optimize=speed|balanced|size (tinykiln/ops/footprint.py): the plan per op, the knobs it gives the
lowering (int8 weights in flash where it says so), the board's region it respects, the option."""
from __future__ import annotations

import numpy as np
import pytest

import modelgen as mg
from tinykiln import KilnError, options
from tinykiln.ops import footprint


def _graph():
    """A conv (many output pixels: a weight reused 64 times), a depthwise and a fully connected layer
    (each weight used once)."""
    from kernelrun import load_graph

    mb = mg.ModelBuilder(4)
    x = mb.input((1, 8, 8, 8), "int8", name="input")
    y = mg.conv2d(mb, x, 16, (3, 3), padding="SAME", activation="RELU", per_channel=True)
    y = mg.depthwise_conv2d(mb, y, (3, 3), padding="SAME", per_channel=True)
    v = mb.input((1, 256), "int8", name="vector")
    z = mg.fully_connected(mb, v, 32, per_channel=True)
    return load_graph(mb.build([x, v], [y, z]), mb, [x, v], [y, z])


def _weights_dtypes(graph, plan):
    from tinykiln.ops import lower

    lowered = lower(graph, plan=plan)
    return {c.spec.family: c.args[1].dtype for c in lowered.calls if c.spec.family.endswith("int8")
            and c.spec.family.split("_")[0] in ("conv2d", "depthwise", "fully")}


def test_size_keeps_every_weight_int8():
    graph = _graph()
    plan = footprint.plan(graph, "size")
    assert all(plan.int8(o.op_index) for o in footprint.weighted_ops(graph))
    dtypes = _weights_dtypes(graph, plan)
    assert set(dtypes) == {"conv2d_int8", "depthwise_conv2d_int8", "fully_connected_int8"}
    assert all(d == np.int8 for d in dtypes.values()), dtypes


def test_speed_with_room_is_every_familys_own_default():
    graph = _graph()
    plan = footprint.plan(graph, "speed", region_bytes=4 << 20)
    assert plan.int16_ops is None and not any(plan.int8(o.op_index) for o in footprint.weighted_ops(graph))
    assert set(_weights_dtypes(graph, plan).values()) == {np.dtype(np.int16)}
    from tinykiln.ops import lower

    # the same kernels as lowering without a plan (today's choices)
    assert [c.spec.knobs for c in lower(graph, plan=plan).calls] == [c.spec.knobs for c in lower(graph).calls]


def test_speed_never_chooses_int16_that_would_not_fit():
    graph = _graph()
    ops = footprint.weighted_ops(graph)
    consts = footprint.constant_bytes(graph)
    fc = next(o for o in ops if graph.ops[o.op_index].kind == "FULLY_CONNECTED")
    # room for every int16 layout but the fully connected layer's
    room = consts + sum(o.extra_bytes for o in ops) - fc.extra_bytes // 2
    plan = footprint.plan(graph, "speed", region_bytes=int(room / footprint.FIT_SHARE) + 1)
    assert plan.int8(fc.op_index)
    from tinykiln.ops import lower

    assert footprint.int16_extra(lower(graph, plan=plan)) <= room - consts
    # no room at all: int8 everywhere, as optimize=size
    tight = footprint.plan(graph, "speed", region_bytes=consts)
    assert all(tight.int8(o.op_index) for o in ops)


def test_balanced_keeps_int16_only_where_it_saves_enough_within_the_growth():
    graph = _graph()
    ops = footprint.weighted_ops(graph)
    plan = footprint.plan(graph, "balanced", region_bytes=4 << 20)
    total = sum(o.weight_bytes for o in ops)
    macs = sum(o.reuse * o.weight_bytes for o in ops)
    kept = [o for o in ops if not plan.int8(o.op_index)]
    assert sum(o.extra_bytes for o in kept) <= footprint.BALANCED_GROWTH * total
    assert all(o.saving >= footprint.BALANCED_MIN_SAVING * macs for o in kept)
    # the fully connected layer (each weight used once) stays int8 here
    fc = next(o for o in ops if graph.ops[o.op_index].kind == "FULLY_CONNECTED")
    assert plan.int8(fc.op_index)


def test_size_wins_over_a_schedule_files_int16_knobs():
    from tinykiln.ops import lower, workload_key

    graph = _graph()
    default = lower(graph)
    knobs = {workload_key(c.spec): {"weights16": True, "weights8": False} for c in default.calls
             if c.spec.family == "fully_connected_int8"}
    fc = lambda lowered: next(c for c in lowered.calls if c.spec.family == "fully_connected_int8")  # noqa: E731
    assert fc(lower(graph, knobs, footprint.plan(graph, "size"))).args[1].dtype == np.int8
    # balanced: the schedule file's choice stands (it was tuned, it builds as it did)
    assert fc(lower(graph, knobs, footprint.plan(graph, "balanced"))).args[1].dtype == np.int16


def test_tune_sees_only_int8_candidates_where_the_plan_keeps_int8():
    from tinykiln.ops import knob_space, lower

    graph = _graph()
    plan = footprint.plan(graph, "size")
    for call in lower(graph, plan=plan).calls:
        space = knob_space(call.spec, plan, call.op_index)
        if call.spec.family == "fully_connected_int8":
            assert space["weights8"] == [True]
        if call.spec.family == "conv2d_int8":
            assert space["weights16"] == [False] and space["weights8"] == [True]


def test_the_option():
    assert options.parse({}).optimize == "speed"  # the default while int8 weights cost instructions (issue 13)
    for mode in ("speed", "balanced", "size"):
        assert options.parse({"optimize": mode}).optimize == mode
    with pytest.raises(KilnError, match="optimize=fast takes one of speed, balanced, size"):
        options.parse({"optimize": "fast"})
