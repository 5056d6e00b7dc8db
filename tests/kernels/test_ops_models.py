"""Whole models through lowering + generated kernels (ctypes driver) vs LiteRT: every model whose
ops all have kernel families. int8 bit-exact, float32 within 1e-5 relative."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kernelrun import ROOT, run_lowered
from modelgen import reference_run

from tinykiln import KilnError, tflite
from tinykiln.ops import lower

SHARED = Path("/work/shared/models")
MODELS = sorted(ROOT.glob("models/*/*.tflite")) + (sorted(SHARED.glob("*.tflite")) if SHARED.is_dir() else [])


@pytest.mark.parametrize("path", MODELS, ids=lambda p: p.name)
def test_model_matches_litert(path, tmp_path):
    data = path.read_bytes()
    graph = tflite.load(data)
    try:
        lowered = lower(graph)
    except KilnError as error:
        if "no kernel generator" in str(error):
            pytest.skip(str(error))
        raise
    rng = np.random.default_rng(0)
    for _ in range(2):
        inputs = []
        for index in graph.inputs:
            t = graph.tensors[index]
            if t.dtype == "int8":
                inputs.append(rng.integers(-128, 128, t.shape).astype(np.int8))
            else:
                inputs.append(rng.uniform(-1, 1, t.shape).astype(np.float32))
        want = reference_run(data, inputs)
        got = run_lowered(graph, lowered, inputs, tmp_path)
        for w, g in zip(want, got):
            if w.dtype == np.int8:
                assert np.array_equal(w, g.reshape(w.shape)), f"{np.count_nonzero(w != g.reshape(w.shape))} differ"
            else:
                np.testing.assert_allclose(g.reshape(w.shape), w, rtol=1e-5, atol=1e-5)
