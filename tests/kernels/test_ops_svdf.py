"""SVDF (ops/svdf.py): single-op models with a variable state tensor, run through the generated kernel
over sequences of invocations (the state kept from step to step, reset between sequences) and
compared step by step with LiteRT's reference kernels (reset_all_variables between sequences)."""
from __future__ import annotations

import numpy as np
import pytest
from kernelrun import load_graph, reference_sequences, run_sequence
from modelgen import ModelBuilder

from tinykiln import KilnError
from tinykiln.ops import lower
from tinykiln.ops.svdf import svdf_int8_reference

STEPS = 12  # invocations per sequence (>= 10)


def svdf_model(dtype: str, batch: int, depth: int, units: int, rank: int, memory: int, seed: int,
               activation: str = "RELU", bias: bool = True):
    mb = ModelBuilder(seed)
    r = mb.rng
    filters = units * rank
    if dtype == "float32":
        x = mb.tensor((batch, depth), "float32", name="x")
        wf = mb.tensor((filters, depth), "float32", data=r.uniform(-0.5, 0.5, (filters, depth)), name="wf")
        wt = mb.tensor((filters, memory), "float32", data=r.uniform(-0.5, 0.5, (filters, memory)), name="wt")
        b = mb.tensor((units,), "float32", data=r.uniform(-0.2, 0.2, units), name="bias") if bias else -1
        state = mb.tensor((batch, filters * memory), "float32", name="state", variable=True)
        y = mb.tensor((batch, units), "float32", name="y")
    else:
        x_q = (0.05, int(r.integers(-20, 20)))
        wf_data = r.integers(-127, 128, (filters, depth))
        wt_data = r.integers(-20000, 20000, (filters, memory))
        wf_s, wt_s, st_s = 0.01, 1.0 / 20000, 0.5 / 4096
        # an output scale that keeps the outputs mostly in range: numpy over a trial sequence
        trial_out = 0
        st = np.zeros((batch, filters * memory), np.int16)
        from tinykiln.fixedpoint.prepare import quantize_multiplier
        s1 = quantize_multiplier(float(np.float32(np.float32(x_q[0]) * np.float32(wf_s)) / np.float32(st_s)))
        for _ in range(STEPS):
            xin = r.integers(-128, 128, (batch, depth))
            _, st_new = svdf_int8_reference(xin, st, wf_data, wt_data, None, rank, x_q[1], 0, s1, (1 << 30, 1))
            # the state with this step's activation: the old first slot, then the new one unshifted
            full = np.concatenate([st.reshape(batch, filters, memory)[:, :, :1],
                                   st_new.reshape(batch, filters, memory)[:, :, :-1]], -1)
            time = (full.astype(np.int64) * wt_data).sum(-1).reshape(batch, units, rank).sum(-1)
            trial_out = max(trial_out, int(np.abs(time).max()))
            st = st_new
        y_s = max(trial_out, 1) * st_s * wt_s / 100
        x = mb.tensor((batch, depth), "int8", quant=x_q, name="x")
        wf = mb.tensor((filters, depth), "int8", quant=(wf_s, 0), data=wf_data, name="wf")
        wt = mb.tensor((filters, memory), "int16", quant=(wt_s, 0), data=wt_data, name="wt")
        b = (mb.tensor((units,), "int32", quant=(st_s * wt_s, 0), data=r.integers(-2000, 2000, units), name="bias")
             if bias else -1)
        state = mb.tensor((batch, filters * memory), "int16", quant=(st_s, 0), name="state", variable=True)
        y = mb.tensor((batch, units), "int8", quant=(y_s, int(r.integers(-128, 0))), name="y")
    mb.op("SVDF", [x, wf, wt, b, state], [y], rank=rank, activation=activation)
    return mb, x, y


def check_sequences(mb, x, y, tmp_path, sequences=2):
    model = mb.build([x], [y])
    graph = load_graph(model)
    lowered = lower(graph)
    rng = np.random.default_rng(7)
    shape, dtype = mb.shapes[x], mb.dtypes[x]
    seqs = [[[rng.integers(-128, 128, shape).astype(np.int8) if dtype == "int8"
              else rng.uniform(-1, 1, shape).astype(np.float32)] for _ in range(STEPS)] for _ in range(sequences)]
    want = reference_sequences(model, seqs)
    for s, sequence in enumerate(seqs):
        got = run_sequence(graph, lowered, sequence, tmp_path)  # a fresh (reset) state per sequence
        for step, (w, g) in enumerate(zip(want[s], got)):
            if dtype == "int8":
                diff = np.abs(w[0].astype(np.int32) - g[0].astype(np.int32))
                assert diff.max() == 0, f"sequence {s} step {step}: {np.count_nonzero(diff)} values differ"
            else:
                np.testing.assert_allclose(g[0], w[0], rtol=1e-5, atol=1e-6, err_msg=f"sequence {s} step {step}")
    return want


@pytest.mark.parametrize("seed,batch,depth,units,rank,memory,activation", [
    (0, 1, 12, 4, 1, 5, "NONE"), (1, 2, 7, 3, 2, 4, "RELU"), (2, 1, 16, 8, 2, 8, "RELU6")])
def test_svdf_float32_sequences(tmp_path, seed, batch, depth, units, rank, memory, activation):
    mb, x, y = svdf_model("float32", batch, depth, units, rank, memory, seed, activation)
    want = check_sequences(mb, x, y, tmp_path)
    # the state matters: the same inputs later in a sequence give other outputs than at its start
    assert not np.allclose(want[0][0][0], want[0][memory][0])


@pytest.mark.parametrize("seed,batch,depth,units,rank,memory,bias", [
    (0, 1, 24, 8, 1, 8, True), (1, 2, 10, 4, 2, 5, True), (3, 1, 16, 6, 3, 3, False)])
def test_svdf_int8_sequences(tmp_path, seed, batch, depth, units, rank, memory, bias):
    mb, x, y = svdf_model("int8", batch, depth, units, rank, memory, seed, bias=bias)
    want = check_sequences(mb, x, y, tmp_path)
    outs = np.concatenate([step[0].ravel() for step in want[0]])
    assert len(np.unique(outs)) > 4, "the outputs saturate: the test's quantization is off"


def test_svdf_float32_without_bias(tmp_path):
    mb, x, y = svdf_model("float32", 1, 6, 3, 1, 4, 5, "NONE", bias=False)
    check_sequences(mb, x, y, tmp_path, sequences=1)


def test_int8_svdf_needs_relu():
    mb, x, y = svdf_model("int8", 1, 8, 4, 1, 4, 0, activation="NONE")
    with pytest.raises(KilnError, match="only with RELU"):
        load_graph(mb.build([x], [y]))


def test_state_must_be_variable():
    mb = ModelBuilder(0)
    x = mb.tensor((1, 4), "float32")
    wf = mb.tensor((2, 4), "float32", data=np.ones((2, 4)))
    wt = mb.tensor((2, 3), "float32", data=np.ones((2, 3)))
    state = mb.tensor((1, 6), "float32")
    y = mb.tensor((1, 2), "float32")
    mb.op("SVDF", [x, wf, wt, -1, state], [y], rank=1)
    with pytest.raises(KilnError, match="must be a variable tensor"):
        load_graph(mb.build([x], [y]))


def test_variable_read_by_another_op_is_refused():
    mb = ModelBuilder(0)
    x = mb.tensor((1, 4), "float32")
    v = mb.tensor((1, 4), "float32", variable=True, name="v")
    y = mb.tensor((1, 4), "float32")
    mb.op("ADD", [x, v], [y])
    with pytest.raises(KilnError, match="reads variable tensor 'v' as input 1.*SVDF"):
        load_graph(mb.build([x], [y]))
