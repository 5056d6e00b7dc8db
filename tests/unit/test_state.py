"""State that persists across runs: variable tensors planned in their own region (memplan), the static
state buffer and <m>_reset in the generated C (aot), ai_reset / ai_create in the ai_* API, and the
RESET command of the device protocol (the validation app on the host, driven by AiRunner)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from test_aot import CFLAGS, ROOT, fixture_model, includes
from tinykiln import aot, boards, memplan
from tinykiln.graph import Graph, Op, Quantization, Tensor
from tinykiln.kernel import KernelCall, KernelSpec, LoweredModel, Param
from tinykiln.runner.airunner import AiRunner

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")

# y = state + x; the state becomes y (a running sum); a second, int8 state with zero point 5 counts runs
ACC = KernelSpec("fx_acc", (Param("x", "int8", (4,), "input"), Param("state", "int16", (4,), "input"),
                            Param("count", "int8", (1,), "input"), Param("y", "int16", (4,), "output"),
                            Param("state_out", "int16", (4,), "output"),
                            Param("count_out", "int8", (1,), "output")), {})
ACC_C = "\n".join([
    "#include <stdint.h>",
    f"void {ACC.function_name}(const int8_t* x, const int16_t* state, const int8_t* count, int16_t* y,",
    "    int16_t* state_out, int8_t* count_out);",
    f"void {ACC.function_name}(const int8_t* x, const int16_t* state, const int8_t* count, int16_t* y,",
    "    int16_t* state_out, int8_t* count_out) {",
    "  for (int i = 0; i < 4; i++) { y[i] = (int16_t)(state[i] + x[i]); state_out[i] = y[i]; }",
    "  y[0] = (int16_t)(y[0] + 1000 * (count[0] - 5)); count_out[0] = (int8_t)(count[0] + 1);",
    "}", ""])


def stateful_model():
    tensors = [Tensor(0, "x", (4,), "int8", Quantization((1.0,), (0,))),
               Tensor(1, "sum", (4,), "int16", Quantization((1.0,), (0,)), variable=True),
               Tensor(2, "count", (1,), "int8", Quantization((1.0,), (5,)), variable=True),
               Tensor(3, "y", (4,), "int16")]
    graph = Graph("stateful net", tensors, [Op(0, "SVDF", [0, 1, 2], [3])], inputs=[0], outputs=[3])
    return graph, LoweredModel([KernelCall(ACC, 0, [0, 1, 2, 3, 1, 2])])


def write_stateful(out: Path):
    graph, lowered = stateful_model()
    plan = memplan.plan(graph, lowered)
    result = aot.generate(graph, lowered, plan, graph.name, source_digest="test")
    out.mkdir(parents=True, exist_ok=True)
    for name, text in (("model.h", result.model_h), ("model.c", result.model_c), ("weights.c", result.weights_c),
                       ("kernels.c", ACC_C), ("tk_models.c", aot.registry_c([graph.name]))):
        (out / name).write_text(text)
    return [str(out / f) for f in ("model.c", "weights.c", "kernels.c", "tk_models.c")] + [
        str(ROOT / "runtime/ai/ai_runtime.c")]


def test_variables_get_the_state_region_not_the_arena():
    graph, lowered = stateful_model()
    plan = memplan.plan(graph, lowered)
    assert set(plan.state_offsets) == {1, 2} and 1 not in plan.tensor_offsets and 2 not in plan.tensor_offsets
    assert plan.state_offsets[1] == 0 and plan.state_offsets[2] == 16 and plan.state_size == 32
    assert plan.arena_size == 32  # x (4 B) and y (8 B) only, each aligned


def test_generated_c_has_the_state_and_its_reset():
    graph, lowered = stateful_model()
    result = aot.generate(graph, lowered, memplan.plan(graph, lowered), graph.name)
    assert "#define STATEFUL_NET_STATE_SIZE 32u" in result.model_h
    assert "void stateful_net_reset(void);" in result.model_h
    assert "memset(stateful_net_state + 16, 5, 1u)" in result.model_c  # int8: its zero point
    assert "(int16_t *)(stateful_net_state + 0)" in result.model_c
    assert ".reset = stateful_net_reset," in result.model_c


def test_a_stateless_model_has_no_state():
    graph, lowered, _ = fixture_model()
    plan = memplan.plan(graph, lowered)
    assert plan.state_size == 0 and plan.state_offsets == {}
    result = aot.generate(graph, lowered, plan, "fixture net")
    assert "state" not in result.model_c.lower() and "reset" not in result.model_h


MAIN_C = r"""
#include <stdio.h>
#include "model.h"
#include "ai_runtime.h"

int main(void)
{
    ai_handle h, h2;
    if (ai_create(&stateful_net_info, NULL, &h) != AI_STATUS_OK) return 10;
    if (ai_create(&stateful_net_info, NULL, &h2) == AI_STATUS_OK) return 11; /* one instance at a time */
    printf("%s\n", ai_get_error(NULL));
    if (ai_get_state_size(h) != STATEFUL_NET_STATE_SIZE) return 12;
    int8_t *x = ai_get_input(h, 0)->data;
    const int16_t *y = ai_get_output(h, 0)->data;
    for (int seq = 0; seq < 2; seq++) {
        for (int run = 0; run < 3; run++) {
            for (int i = 0; i < 4; i++) x[i] = (int8_t)(i + 1);
            if (ai_run(h) != AI_STATUS_OK) return 13;
            printf("%d %d %d %d\n", y[0], y[1], y[2], y[3]);
        }
        if (ai_reset(h) != AI_STATUS_OK) return 14;
    }
    /* the typed API: <m>_reset, then <m>_run keeps the state between calls */
    ai_destroy(h);
    const int8_t in[4] = {1, 1, 1, 1};
    int16_t out[4];
    stateful_net_inputs ins = {in};
    stateful_net_outputs outs = {out};
    stateful_net_reset();
    stateful_net_run(&ins, &outs, NULL);
    stateful_net_run(&ins, &outs, NULL);
    printf("typed %d %d\n", out[0], out[1]);
    return 0;
}
"""


def test_state_survives_runs_and_reset_clears_it(tmp_path):
    sources = write_stateful(tmp_path / "gen")
    (tmp_path / "main.c").write_text(MAIN_C)
    exe = tmp_path / "stateful"
    build = subprocess.run(["gcc", *CFLAGS, *includes(tmp_path / "gen"), *sources, str(tmp_path / "main.c"),
                            "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert "one instance at a time" in lines[0]
    sequence = ["1 2 3 4", "1002 4 6 8", "2003 6 9 12"]  # a running sum; the count from its zero point
    assert lines[1:4] == sequence and lines[4:7] == sequence  # ai_reset: the same sequence again
    assert lines[7] == "typed 1002 2"


@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("stateful")
    sources = write_stateful(tmp / "gen")
    facts = tmp / "board_facts.c"
    facts.write_text('#include "tk_board.h"\n'
                     'const char *tk_board_name(void) { return "host"; }\n'
                     'const char *tk_core_name(void) { return "host"; }\n'
                     'uint32_t tk_clock_hz(void) { return 1000000000u; }\n')
    host = [str(s) for s in boards.load_board(ROOT, "host").sources]
    exe = tmp / "firmware"
    r = subprocess.run(["gcc", *CFLAGS, *includes(tmp / "gen"), *sources, str(ROOT / "runtime/protocol/tk_proto.c"),
                        str(ROOT / "runtime/apps/validation/main.c"), *host, str(facts), "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe


def test_protocol_reset_clears_the_state_between_sequences(firmware):
    x = np.array([1, 2, 3, 4], np.int8)
    with AiRunner().connect(f"pipe:{firmware}") as runner:
        for _ in range(2):
            assert runner.reset() == 32  # the state's bytes
            got = [runner.invoke([x])[0][0].tolist() for _ in range(3)]
            assert got == [[1, 2, 3, 4], [1002, 4, 6, 8], [2003, 6, 9, 12]]
        runner.exit(0)


class _Counter:
    """A stateful 'device' and 'reference' at once: outputs the running sum of its inputs."""

    def __init__(self, desc):
        self.total = np.zeros(4, np.int16)
        self.resets = []
        self.runs = 0
        self.info = type("Info", (), {"outputs": [desc], "cycle_unit": "ns"})()
        self.outputs = [desc]

    def reset(self):
        self.resets.append(self.runs)
        self.total[...] = 0
        return 32

    def step(self, inputs):
        self.runs += 1
        self.total += inputs[0].astype(np.int16)
        return [self.total.copy()]

    def invoke(self, inputs):
        return self.step(inputs), {"cycles": 1}

    def run(self, inputs):
        return self.step(inputs)


def test_validation_resets_device_and_reference_before_each_sequence():
    from tinykiln.runner import validate as v

    desc = type("Desc", (), {"name": "y", "dtype": "int16"})()
    device, reference = _Counter(desc), _Counter(desc)
    assert v.sequence_runs(12, 32) == 20 and v.sequence_runs(12, 0) == 12
    assert v.sequence_runs(0, 32) == 0 and v.sequence_runs(1, 32) == 10
    sets = [[np.full(4, i, np.int8)] for i in range(23)]  # 20 random runs, then 3 samples
    result = v.validate(device, reference, sets, sample_runs=3, sequence=10)
    assert device.resets == reference.resets == [0, 10, 20]
    assert result.passed and result.to_json()["sequence_length"] == 10
    # a device that forgot its state at a reset (or kept it) would differ from the reference
    device.reset = lambda: 0
    reference.resets.clear()
    assert not v.validate(device, reference, sets, sample_runs=3, sequence=10).passed


def test_resource_variables_are_refused_naming_them():
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    from ai_edge_litert import schema_py_generated as schema
    from modelgen import ModelBuilder, pack

    from tinykiln import KilnError
    from tinykiln.tflite import load

    mb = ModelBuilder(0)
    x = mb.tensor((1, 4), "float32", name="x")
    y = mb.tensor((1, 4), "float32", name="y")
    mb.op("CALL_ONCE", [], [])
    mb.op("RELU", [x], [y])
    model = mb.model([x], [y])
    init = schema.SubGraphT()
    init.tensors, init.inputs, init.outputs, init.operators, init.name = [], [], [], [], "init"
    model.subgraphs.append(init)
    with pytest.raises(KilnError, match=r"resource variables \(CALL_ONCE; CALL_ONCE runs a second subgraph"):
        load(pack(model))
