"""UNIDIRECTIONAL_SEQUENCE_LSTM float32 (ops/lstm.py): single-op models with variable output and cell
states, one time step per invocation, run through the generated kernel over sequences (the state kept
from step to step, reset between sequences) and compared step by step with LiteRT."""
from __future__ import annotations

import numpy as np
import pytest
from kernelrun import load_graph, reference_sequences, run_sequence
from modelgen import ModelBuilder

from tinykiln import KilnError
from tinykiln.ops import lower

STEPS = 10


def lstm_model(batch, depth, cells, seed, time_major=False, cifg=False, peephole=False, projection=0,
               cell_clip=0.0, proj_clip=0.0, layer_norm=False, dtype="float32", steps=1):
    mb = ModelBuilder(seed)
    r = mb.rng
    outputs = projection or cells
    shape = (steps, batch, depth) if time_major else (batch, steps, depth)
    x = mb.tensor(shape, dtype, name="x", quant=(0.05, 0) if dtype == "int8" else None)

    def weights(rows, cols, name):
        return mb.tensor((rows, cols), "float32", data=r.uniform(-0.6, 0.6, (rows, cols)), name=name)

    def vector(n, name, lo=-0.5, hi=0.5):
        return mb.tensor((n,), "float32", data=r.uniform(lo, hi, n), name=name)

    ins = [x]
    ins += [-1 if cifg and g == "i" else weights(cells, depth, f"w_{g}") for g in "ifco"]
    ins += [-1 if cifg and g == "i" else weights(cells, outputs, f"r_{g}") for g in "ifco"]
    ins += [(vector(cells, f"p_{g}") if peephole and not (cifg and g == "i") else -1) for g in "ifo"]
    ins += [-1 if cifg and g == "i" else vector(cells, f"b_{g}", 0.0, 1.0 if g == "f" else 0.3) for g in "ifco"]
    ins += [weights(outputs, cells, "w_proj") if projection else -1, vector(outputs, "b_proj") if projection else -1]
    ins += [mb.tensor((batch, outputs), "float32", name="h", variable=True),
            mb.tensor((batch, cells), "float32", name="c", variable=True)]
    ins += [vector(cells, f"ln_{g}", 0.5, 1.5) if layer_norm else -1 for g in "ifco"]
    y = mb.tensor((steps, batch, outputs) if time_major else (batch, steps, outputs), "float32", name="y")
    mb.op("UNIDIRECTIONAL_SEQUENCE_LSTM", ins, [y], activation="TANH", cell_clip=cell_clip, proj_clip=proj_clip,
          time_major=time_major)
    return mb, x, y


@pytest.mark.parametrize("case", [
    dict(batch=1, depth=5, cells=4, seed=0),
    dict(batch=2, depth=3, cells=6, seed=1, time_major=True),
    dict(batch=1, depth=4, cells=5, seed=2, cifg=True, peephole=True),
    dict(batch=2, depth=6, cells=4, seed=3, peephole=True, projection=3, cell_clip=1.5, proj_clip=0.4),
])
def test_lstm_float32_sequences(tmp_path, case):
    mb, x, y = lstm_model(**case)
    model = mb.build([x], [y])
    graph = load_graph(model)
    lowered = lower(graph)
    rng = np.random.default_rng(case["seed"])
    seqs = [[[rng.uniform(-1, 1, mb.shapes[x]).astype(np.float32)] for _ in range(STEPS)] for _ in range(2)]
    want = reference_sequences(model, seqs)
    for s, sequence in enumerate(seqs):
        got = run_sequence(graph, lowered, sequence, tmp_path)
        for step, (w, g) in enumerate(zip(want[s], got)):
            np.testing.assert_allclose(g[0], w[0], rtol=1e-5, atol=1e-6, err_msg=f"sequence {s} step {step}")
    # the state matters: the same input again later in the sequence gives another output
    again = run_sequence(graph, lowered, [sequence[0]] * 3, tmp_path)
    assert not np.allclose(again[0][0], again[2][0])


@pytest.mark.parametrize("kwargs,message", [
    (dict(layer_norm=True), "layer-normalized LSTM"),
    (dict(steps=3), "3 time steps per invocation"),
    (dict(dtype="int8"), "int8 activations are not supported"),
])
def test_unsupported_lstm_variants_are_refused_clearly(kwargs, message):
    mb, x, y = lstm_model(1, 3, 2, 0, **kwargs)
    with pytest.raises(KilnError, match=message):
        load_graph(mb.build([x], [y]))
