"""SPLIT, SPLIT_V, UNPACK, PACK, SLICE end to end: single-op .tflite -> import -> lower -> TVM C -> gcc ->
compare with LiteRT (BUILTIN_REF) over seeded shapes and axes; copies, so exact for every dtype. The
numpy models of ops/split.py are held to LiteRT too. Several outputs: one kernel writes them all."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops import split

Q = (0.05, -7)
# (dtype, seed) cases: every dtype, int8 twice
CASES = [("int8", 0), ("float32", 1), ("int32", 2), ("int8", 3)]
BOOL, INT64 = [("bool", 4)], [("int64", 5)]  # where LiteRT takes them


def _data(rng, shape, dtype):
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if dtype in ("int32", "int64"):
        return rng.integers(-1000, 1000, size=shape).astype(dtype)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    return rng.uniform(-5, 5, size=shape).astype(np.float32)


def _shape(rng, rank=None):
    rank = rank or int(rng.integers(1, 5))
    return tuple(int(v) for v in rng.integers(1, 5, size=rank))


def _check(mb, ins, outs, values, tmp_path, kind, consts=(), attrs=None):
    model = mb.build(ins, outs)
    graph = kernelrun.load_graph(model)
    lowered = ops.lower(graph)
    got = kernelrun.run_lowered(graph, lowered, values, tmp_path)
    want = reference_run(model, values)
    assert len(got) == len(want) == len(outs)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    op = graph.ops[0]
    model_in = list(values) if not consts else consts(values)
    for r, w in zip(split.reference(kind, model_in, op.attrs), want):
        np.testing.assert_array_equal(r, w)
    return lowered


@pytest.mark.parametrize("dtype, seed", CASES + INT64)
def test_split(dtype, seed, tmp_path):
    rng = np.random.default_rng(seed)
    shape = list(_shape(rng))
    axis = int(rng.integers(-len(shape), len(shape)))
    count = int(rng.integers(1, 4))
    shape[axis] *= count
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    piece = list(shape)
    piece[axis] //= count
    ys = [mb.tensor(piece, dtype, quant=q) for _ in range(count)]
    axis_t = mb.const(np.int32(axis))
    mb.op("SPLIT", [axis_t, x], ys, num_splits=count)
    v = _data(rng, shape, dtype)
    lowered = _check(mb, [x], ys, [v], tmp_path, "SPLIT", consts=lambda vals: [np.int32(axis), vals[0]])
    assert len(lowered.calls) == 1  # one kernel writes every output


@pytest.mark.parametrize("dtype, seed", CASES + INT64)
def test_split_v(dtype, seed, tmp_path):
    rng = np.random.default_rng(10 + seed)
    shape = list(_shape(rng))
    axis = int(rng.integers(-len(shape), len(shape)))
    sizes = [int(s) for s in rng.integers(1, 4, size=int(rng.integers(1, 4)))]
    shape[axis] = sum(sizes)
    given = list(sizes)
    if seed % 2:
        given[int(rng.integers(len(given)))] = -1
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    ys = []
    for s in sizes:
        piece = list(shape)
        piece[axis] = s
        ys.append(mb.tensor(piece, dtype, quant=q))
    mb.op("SPLIT_V", [x, mb.const(np.asarray(given, np.int32)), mb.const(np.int32(axis))], ys, num_splits=len(sizes))
    _check(mb, [x], ys, [_data(rng, shape, dtype)], tmp_path, "SPLIT_V")


@pytest.mark.parametrize("dtype, seed", CASES + BOOL)
def test_unpack(dtype, seed, tmp_path):
    rng = np.random.default_rng(20 + seed)
    shape = _shape(rng, int(rng.integers(2, 5)))
    axis = int(rng.integers(-len(shape), len(shape)))
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    piece = shape[:axis % len(shape)] + shape[axis % len(shape) + 1:]
    ys = [mb.tensor(piece, dtype, quant=q) for _ in range(shape[axis])]
    mb.op("UNPACK", [x], ys, num=shape[axis], axis=axis)
    _check(mb, [x], ys, [_data(rng, shape, dtype)], tmp_path, "UNPACK")


@pytest.mark.parametrize("dtype, seed", CASES + INT64)
def test_pack(dtype, seed, tmp_path):
    rng = np.random.default_rng(30 + seed)
    shape = _shape(rng)
    count = int(rng.integers(1, 4))
    axis = int(rng.integers(-len(shape) - 1, len(shape) + 1))
    out = list(shape)
    out.insert(axis % (len(shape) + 1), count)
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    xs = [mb.tensor(shape, dtype, quant=q) for _ in range(count)]
    y = mb.tensor(out, dtype, quant=q)
    mb.op("PACK", xs, [y], values_count=count, axis=axis)
    _check(mb, xs, [y], [_data(rng, shape, dtype) for _ in xs], tmp_path, "PACK")


def test_pack_with_a_constant_input(tmp_path):
    """A constant among the packed values (shape arithmetic left after folding) reaches the kernel."""
    mb = ModelBuilder()
    x = mb.tensor((3,), "int32")
    c = mb.const(np.asarray([7, 8, 9], np.int32))
    y = mb.tensor((2, 3), "int32")
    mb.op("PACK", [x, c], [y], values_count=2, axis=0)
    model = mb.build([x], [y])
    graph = kernelrun.load_graph(model)
    v = np.asarray([1, 2, 3], np.int32)
    got = kernelrun.run_lowered(graph, ops.lower(graph), [v], tmp_path)[0]
    np.testing.assert_array_equal(got, reference_run(model, [v])[0])


@pytest.mark.parametrize("dtype, seed", CASES + BOOL + INT64)
def test_slice(dtype, seed, tmp_path):
    rng = np.random.default_rng(40 + seed)
    shape = _shape(rng)
    begin = [int(rng.integers(0, d)) for d in shape]
    size = [int(rng.integers(1, d - b + 1)) if rng.integers(3) else -1 for d, b in zip(shape, begin)]
    out = [d - b if s == -1 else s for d, b, s in zip(shape, begin, size)]
    mb = ModelBuilder()
    q = Q if dtype == "int8" else None
    x = mb.tensor(shape, dtype, quant=q)
    y = mb.tensor(out, dtype, quant=q)
    index_type = "int64" if seed % 2 else "int32"
    mb.op("SLICE", [x, mb.const(np.asarray(begin), index_type), mb.const(np.asarray(size), index_type)], [y])
    _check(mb, [x], [y], [_data(rng, shape, dtype)], tmp_path, "SLICE",
           consts=lambda vals: [vals[0], np.asarray(begin), np.asarray(size)])


def test_split_copies_codes_when_the_output_quantization_differs(tmp_path):
    """LiteRT's SPLIT checks no quantization: the codes are copied."""
    rng = np.random.default_rng(5)
    mb = ModelBuilder()
    x = mb.tensor((2, 4), "int8", quant=Q)
    ys = [mb.tensor((2, 2), "int8", quant=(0.1, 3)) for _ in range(2)]
    mb.op("SPLIT", [mb.const(np.int32(1)), x], ys, num_splits=2)
    _check(mb, [x], ys, [_data(rng, (2, 4), "int8")], tmp_path, "SPLIT",
           consts=lambda vals: [np.int32(1), vals[0]])


def test_pack_with_mixed_quantization_is_rejected():
    mb = ModelBuilder()
    xs = [mb.tensor((2, 3), "int8", quant=Q), mb.tensor((2, 3), "int8", quant=(0.1, 3))]
    y = mb.tensor((2, 2, 3), "int8", quant=Q)
    mb.op("PACK", xs, [y], values_count=2, axis=0)
    with pytest.raises(KilnError, match="quantized differently"):
        kernelrun.load_graph(mb.build(xs, [y]))


def test_split_feeding_concatenation_and_graph_outputs(tmp_path):
    """The zoo's split_concat pattern (int8 here): SPLIT's outputs go to the graph outputs and to a
    CONCATENATION; every output has its own buffer, the kernel writes them in one call."""
    rng = np.random.default_rng(6)
    mb = ModelBuilder()
    x = mb.tensor((1, 4, 4, 6), "int8", quant=Q)
    ys = [mb.tensor((1, 4, 4, 1), "int8", quant=Q) for _ in range(6)]
    mb.op("SPLIT", [mb.const(np.int32(3)), x], ys, num_splits=6)
    z = mb.tensor((1, 4, 4, 2), "int8", quant=Q)
    mb.op("CONCATENATION", [ys[3], ys[5]], [z], axis=3)
    outs = [ys[0], ys[2], ys[4], ys[1], z]
    model = mb.build([x], outs)
    graph = kernelrun.load_graph(model)
    v = _data(rng, (1, 4, 4, 6), "int8")
    got = kernelrun.run_lowered(graph, ops.lower(graph), [v], tmp_path)
    for g, w in zip(got, reference_run(model, [v])):
        np.testing.assert_array_equal(g, w)


def test_several_outputs_through_the_memory_plan_and_aot():
    """An op with several outputs: each output gets its own arena slot (none overlaps another or
    the input while the kernel runs), and model.c passes them to the one call in the op's order."""
    from tinykiln import aot, memplan

    mb = ModelBuilder()
    x = mb.tensor((1, 4, 4, 6), "int8", quant=Q)
    ys = [mb.tensor((1, 4, 4, 2), "int8", quant=Q) for _ in range(3)]
    mb.op("SPLIT", [mb.const(np.int32(3)), x], ys, num_splits=3)
    z = mb.tensor((1, 4, 4, 4), "int8", quant=Q)
    mb.op("CONCATENATION", [ys[2], ys[0]], [z], axis=3)
    graph = kernelrun.load_graph(mb.build([x], [ys[1], z]))
    lowered = ops.lower(graph)
    plan = memplan.plan(graph, lowered)
    spans = sorted((plan.tensor_offsets[t], plan.tensor_offsets[t] + graph.tensor(t).nbytes) for t in [x, *ys])
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))
    model_c = aot.generate(graph, lowered, plan, "split net").model_c
    call = next(line for line in model_c.splitlines() if lowered.calls[0].spec.function_name + "(" in line
                and "arena" in line)
    offsets = [f"arena + {plan.tensor_offsets[t]})" for t in [x, *ys]]
    assert [call.index(o) for o in offsets] == sorted(call.index(o) for o in offsets)


def test_pack_and_unpack_scalars(tmp_path):
    """Shape arithmetic left after folding: scalars (one constant) packed into a vector and back."""
    mb = ModelBuilder()
    xs = [mb.tensor((), "int32"), mb.const(np.int32(16)), mb.tensor((), "int32")]
    y = mb.tensor((3,), "int32")
    mb.op("PACK", xs, [y], values_count=3, axis=0)
    zs = [mb.tensor((), "int32") for _ in range(3)]
    mb.op("UNPACK", [y], zs, num=3, axis=0)
    model = mb.build([xs[0], xs[2]], [*zs, y])
    graph = kernelrun.load_graph(model)
    values = [np.int32(4), np.int32(-2)]
    got = kernelrun.run_lowered(graph, ops.lower(graph), values, tmp_path)
    for g, w in zip(got, reference_run(model, values)):
        np.testing.assert_array_equal(g, w)
