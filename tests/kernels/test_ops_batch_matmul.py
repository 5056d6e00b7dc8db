"""BATCH_MATMUL end to end: single-op .tflite -> import -> lower -> TVM C -> gcc -> compare with
LiteRT (BUILTIN_REF). int8 bit-exact; float32 within 1e-5 relative (LiteRT's k order)."""
from __future__ import annotations

import numpy as np
import pytest

import kernelrun
from modelgen import ModelBuilder, reference_run
from tinykiln import KilnError, ops
from tinykiln.ops.batch_matmul import batch_matmul_float_reference, batch_matmul_int8_reference, matmul_shapes
from tinykiln.tflite import load

# (lhs batch, rhs batch, M, K, N)
CASES = [((), (), 3, 5, 4), ((2,), (2,), 2, 3, 6), ((2, 1), (3,), 4, 2, 3), ((1,), (2, 3), 1, 7, 2),
         ((2, 1, 2), (1, 3, 1), 2, 4, 2), ((3,), (), 5, 8, 8)]


def _stored(batch, rows, cols, adj):
    return tuple(batch) + ((cols, rows) if adj else (rows, cols))


def _model(case, adj_x, adj_y, dtype, qs, rhs_data=None):
    lb, rb, m, k, n = case
    lshape, rshape = _stored(lb, m, k, adj_x), _stored(rb, k, n, adj_y)
    batch, *_ = matmul_shapes(lshape, rshape, adj_x, adj_y)
    lq, rq, oq = qs if dtype == "int8" else (None, None, None)
    mb = ModelBuilder()
    lhs = mb.tensor(lshape, dtype, quant=lq, name="lhs")
    rhs = mb.tensor(rshape, dtype, quant=rq, data=rhs_data, name="rhs")
    y = mb.tensor(batch + (m, n), dtype, quant=oq, name="y")
    mb.op("BATCH_MATMUL", [lhs, rhs], [y], adj_x=adj_x, adj_y=adj_y)
    inputs = [lhs] if rhs_data is not None else [lhs, rhs]
    return mb.build(inputs, [y]), lshape, rshape


def _run(model, inputs, workdir):
    graph = kernelrun.load_graph(model)
    return kernelrun.run_lowered(graph, ops.lower(graph), inputs, workdir)


def _quant(rng, k):
    lq = (float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128)))
    rq = (float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 128)))
    oq = (lq[0] * rq[0] * 74 * np.sqrt(k) * float(rng.uniform(1, 4)), int(rng.integers(-20, 20)))
    return lq, rq, oq


@pytest.mark.parametrize("seed", range(len(CASES)))
def test_int8_bit_exact(seed, tmp_path):
    rng = np.random.default_rng(seed)
    case = CASES[seed]
    adj_x, adj_y = bool(seed % 2), bool(seed // 2 % 2)
    qs = _quant(rng, case[3])
    constant = seed % 3 == 2
    _, lshape, rshape = _model(case, adj_x, adj_y, "int8", qs)
    r = rng.integers(-128, 128, size=rshape).astype(np.int8)
    model, _, _ = _model(case, adj_x, adj_y, "int8", qs, rhs_data=r if constant else None)
    x = rng.integers(-128, 128, size=lshape).astype(np.int8)
    inputs = [x] if constant else [x, r]
    (got,) = _run(model, inputs, tmp_path)
    (want,) = reference_run(model, inputs)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(batch_matmul_int8_reference(x, r, adj_x, adj_y, *qs), want)


@pytest.mark.parametrize("seed", range(4))
def test_float32(seed, tmp_path):
    rng = np.random.default_rng(seed)
    case = CASES[seed + 1]
    adj_x, adj_y = bool(seed % 2), bool(seed // 2)
    _, lshape, rshape = _model(case, adj_x, adj_y, "float32", None)
    r = rng.normal(size=rshape).astype(np.float32)
    model, _, _ = _model(case, adj_x, adj_y, "float32", None, rhs_data=r if seed == 3 else None)
    x = rng.normal(size=lshape).astype(np.float32)
    inputs = [x] if seed == 3 else [x, r]
    (got,) = _run(model, inputs, tmp_path)
    (want,) = reference_run(model, inputs)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(batch_matmul_float_reference(x, r, adj_x, adj_y), want, rtol=1e-6, atol=1e-6)


def test_int8_every_knob_value(tmp_path):
    from tinykiln.ops import knob_space, workload_key

    rng = np.random.default_rng(7)
    case = ((2,), (2,), 3, 5, 8)
    qs = _quant(rng, 5)
    model, lshape, rshape = _model(case, False, True, "int8", qs)
    x, r = (rng.integers(-128, 128, size=s).astype(np.int8) for s in (lshape, rshape))
    (want,) = reference_run(model, [x, r])
    graph = kernelrun.load_graph(model)
    spec = ops.lower(graph).calls[0].spec
    space = knob_space(spec)
    for tile in space["oc_tile"]:
        for unroll in space["unroll"]:
            knobs = {workload_key(spec): {"oc_tile": tile, "unroll": unroll}}
            lowered = ops.lower(graph, knobs)
            got = kernelrun.run_lowered(graph, lowered, [x, r], tmp_path / f"{tile}{unroll}")[0]
            np.testing.assert_array_equal(got, want)


def test_mismatched_contraction_is_rejected():
    mb = ModelBuilder()
    lhs = mb.tensor((2, 3), "float32", name="lhs")
    rhs = mb.tensor((4, 5), "float32", name="rhs")
    y = mb.tensor((2, 5), "float32", name="y")
    mb.op("BATCH_MATMUL", [lhs, rhs], [y])
    with pytest.raises(KilnError, match="contraction"):
        load(mb.build([lhs, rhs], [y]))
