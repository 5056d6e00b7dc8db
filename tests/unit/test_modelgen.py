"""modelgen writes models LiteRT's reference interpreter accepts and runs, for every op kind."""
import numpy as np
import pytest

import modelgen  # noqa: E402


@pytest.mark.parametrize("dtype", ["int8", "float32"])
@pytest.mark.parametrize("kind", modelgen.OP_KINDS)
def test_litert_runs_generated_model(kind, dtype):
    distinct = []
    for seed in range(4):
        model, mb, ins = modelgen.example(kind, dtype, seed)
        inputs = [modelgen.random_input(mb, t, seed * 10 + n) for n, t in enumerate(ins)]
        (out,) = modelgen.reference_run(model, inputs)
        assert out.shape == mb.shapes[-1]
        distinct.append(len(np.unique(out)))
    # realistic scales: random inputs do not collapse every output to one value (a fused RELU on a
    # negative-leaning input may, for one seed)
    assert max(distinct) > 4


def test_conv_output_is_not_saturated():
    mb = modelgen.ModelBuilder(seed=3)
    x = mb.input((1, 12, 12, 8))
    y = modelgen.conv2d(mb, x, 16, (3, 3))
    (out,) = modelgen.reference_run(mb.build([x], [y]), [modelgen.random_input(mb, x)])
    saturated = np.mean((out == -128) | (out == 127))
    assert saturated < 0.05 and out.std() > 10


def test_options_reach_the_file():
    mb = modelgen.ModelBuilder()
    x = mb.input((1, 8, 8, 2), "float32")
    y = modelgen.pool2d(mb, "MAX_POOL_2D", x, (3, 3), (2, 2), "SAME", activation="RELU6")
    model = mb.build([x], [y])
    data = np.linspace(-10, 10, 128, dtype=np.float32).reshape(1, 8, 8, 2)
    (out,) = modelgen.reference_run(model, [data])
    assert out.shape == (1, 4, 4, 2) and out.max() == 6.0  # the fused RELU6 was applied
