"""AOT code generation: a hand-built LoweredModel with tiny hand-written C kernels (test fixtures
only; the product's kernels come from TVM) is generated, compiled with -Wall -Wextra -Werror, run, and
checked against numpy. Also: weights in .nn_weights, the ai_* API with several instances."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinykiln import KilnError, aot, memplan
from tinykiln.graph import Graph, Op, Quantization, Tensor
from tinykiln.kernel import KernelCall, KernelSpec, LoweredModel, Param

ROOT = Path(__file__).resolve().parents[2]
CFLAGS = ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-Wshadow", "-Wstrict-prototypes",
          "-Wmissing-prototypes"]

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")

W_ADD = np.array([1, -2, 3, -4, 100, -100, 127, -128], np.int8)
BIAS = np.array([10, -20, 2**31 - 1 - 1000, -(2**31)], np.int32)


def fixture_model(name: str = "fixture net"):
    """Two inputs, two outputs, a constant, an alias (reshape), a scratch buffer and mixed dtypes:
        t1 = sat8(t0 + W_ADD)            (kernel fx_addc)
        t2 = reshape(t1) to [2, 4]       (alias of t1)
        t3 = int16(t2 * 3)               (kernel fx_scale, int32 scratch)
        t5 = float(t3[0] + t3[1] + t4 + BIAS) * 0.25   (kernel fx_mix)
    outputs: t5 (float32 [4]), t1 (int8 [1, 8])."""
    q = Quantization((0.5,), (-3,))
    tensors = [
        Tensor(0, "input_a", (1, 8), "int8", q),
        Tensor(1, "added", (1, 8), "int8", q),
        Tensor(2, "reshaped", (2, 4), "int8", q),
        Tensor(3, "scaled", (2, 4), "int16"),
        Tensor(4, "input_b", (4,), "int8", Quantization((0.25,), (7,))),
        Tensor(5, "mixed", (4,), "float32"),
    ]
    ops = [
        Op(0, "ADD", [0], [1]),
        Op(1, "RESHAPE", [1], [2]),
        Op(2, "MUL", [2], [3]),
        Op(3, "CUSTOM_MIX", [3, 4], [5]),
    ]
    addc = KernelSpec("fx_addc", (Param("x", "int8", (8,), "input"), Param("w", "int8", (8,), "const"),
                                  Param("y", "int8", (8,), "output")), {})
    scale = KernelSpec("fx_scale", (Param("x", "int8", (8,), "input"),
                                    Param("tmp", "int32", (8,), "scratch"),
                                    Param("y", "int16", (8,), "output")), {})
    mix = KernelSpec("fx_mix", (Param("a", "int16", (8,), "input"), Param("b", "int8", (4,), "input"),
                                Param("bias", "int32", (4,), "const"), Param("y", "float32", (4,), "output")),
                     {})
    calls = [
        KernelCall(addc, 0, [0, W_ADD, 1]),
        KernelCall(scale, 2, [2, None, 3]),
        KernelCall(mix, 3, [3, 4, BIAS, 5]),
    ]
    graph = Graph(name, tensors, ops, inputs=[0, 4], outputs=[5, 1])
    kernels_c = "\n".join([
        "#include <stdint.h>",
        f"void {addc.function_name}(const int8_t* x, const int8_t* w, int8_t* y);",
        f"void {scale.function_name}(const int8_t* x, int32_t* tmp, int16_t* y);",
        f"void {mix.function_name}(const int16_t* a, const int8_t* b, const int32_t* bias, float* y);",
        f"void {addc.function_name}(const int8_t* x, const int8_t* w, int8_t* y) {{",
        "  for (int i = 0; i < 8; i++) { int v = x[i] + w[i]; y[i] = (int8_t)(v > 127 ? 127 : v < -128 ? -128 : v); }",
        "}",
        f"void {scale.function_name}(const int8_t* x, int32_t* tmp, int16_t* y) {{",
        "  for (int i = 0; i < 8; i++) tmp[i] = x[i] * 3;",
        "  for (int i = 0; i < 8; i++) y[i] = (int16_t)tmp[i];",
        "}",
        f"void {mix.function_name}(const int16_t* a, const int8_t* b, const int32_t* bias, float* y) {{",
        "  for (int j = 0; j < 4; j++) y[j] = (float)((int64_t)a[j] + a[4 + j] + b[j] + bias[j]) * 0.25f;",
        "}",
        "",
    ])
    return graph, LoweredModel(calls, aliases={2: 1}), kernels_c


def fixture_reference(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    added = np.clip(a.astype(np.int32) + W_ADD, -128, 127).astype(np.int8)
    scaled = (added.reshape(2, 4).astype(np.int32) * 3).astype(np.int16)
    mixed = ((scaled[0].astype(np.int64) + scaled[1] + b + BIAS).astype(np.float32) * np.float32(0.25))
    return mixed.astype(np.float32), added


def write_model(out: Path, name: str = "fixture net"):
    """Generate model.h/model.c/weights.c plus the fixture kernels and the registry into `out`."""
    graph, lowered, kernels_c = fixture_model(name)
    plan = memplan.plan(graph, lowered)
    result = aot.generate(graph, lowered, plan, name, source_digest="test")
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.h").write_text(result.model_h)
    (out / "model.c").write_text(result.model_c)
    (out / "weights.c").write_text(result.weights_c)
    (out / "kernels.c").write_text(kernels_c)
    (out / "tk_models.c").write_text(aot.registry_c([name]))
    return graph, lowered, plan, result


def model_sources(out: Path) -> list[str]:
    return [str(out / f) for f in ("model.c", "weights.c", "kernels.c", "tk_models.c")] + [
        str(ROOT / "runtime/ai/ai_runtime.c")]


def includes(out: Path) -> list[str]:
    return [f"-I{out}", f"-I{ROOT / 'runtime/ai'}", f"-I{ROOT / 'runtime/include'}",
            f"-I{ROOT / 'runtime/kernels'}", f"-I{ROOT / 'runtime/protocol'}"]


MAIN_C = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"
#include "ai_runtime.h"

static uint8_t arena2[FIXTURE_NET_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t arena3[FIXTURE_NET_ARENA_SIZE + 1] __attribute__((aligned(16)));

static void print_outputs(const float *f, const int8_t *q)
{
    for (int i = 0; i < 4; i++) printf("%a ", (double)f[i]);
    for (int i = 0; i < 8; i++) printf("%d ", q[i]);
    printf("\n");
}

int main(void)
{
    const int8_t a[8] = {A_VALUES};
    const int8_t b[4] = {B_VALUES};
    float mixed[4];
    int8_t added[8];
    fixture_net_inputs in = {a, b};
    fixture_net_outputs out = {mixed, added};

    /* typed API, own arena */
    if (fixture_net_run(&in, &out, NULL) != TK_OK) return 10;
    print_outputs(mixed, added);
    /* typed API, caller's arena; misaligned arena is refused */
    memset(mixed, 0, sizeof mixed);
    if (fixture_net_run(&in, &out, arena2) != TK_OK) return 11;
    print_outputs(mixed, added);
    if (fixture_net_run(&in, &out, arena3 + 1) != TK_ERR_ALIGNMENT) return 12;

    /* ai API: two instances, the second on a caller buffer; a third on the taken default fails */
    ai_handle h1, h2, h3;
    if (ai_create(&fixture_net_info, NULL, &h1) != AI_STATUS_OK) return 20;
    if (ai_create(&fixture_net_info, arena2, &h2) != AI_STATUS_OK) return 21;
    if (ai_create(&fixture_net_info, NULL, &h3) == AI_STATUS_OK || h3 != NULL) return 22;
    printf("error: %s\n", ai_get_error(NULL));
    if (ai_get_input_size(h1) != 2 || ai_get_output_size(h1) != 2) return 23;
    if (ai_get_activations_size(h1) != FIXTURE_NET_ARENA_SIZE) return 24;
    if (ai_get_params_size(h1) != FIXTURE_NET_WEIGHTS_SIZE) return 25;
    if (strcmp(ai_get_name(h1), "fixture net") != 0) return 26;
    if (ai_get_input(h1, 2) != NULL || ai_get_output(h1, -1) != NULL) return 27;
    ai_handle hs[2] = {h1, h2};
    for (int k = 0; k < 2; k++) {
        ai_tensor *ia = ai_get_input(hs[k], 0), *ib = ai_get_input(hs[k], 1);
        if (ia->size != 8 || ib->size != 4 || ia->info->dtype != TK_DTYPE_INT8) return 28;
        memcpy(ia->data, a, 8);
        memcpy(ib->data, b, 4);
    }
    uint32_t layer_ticks[FIXTURE_NET_LAYER_COUNT];
    static uint32_t fake_clock_now;
    if (ai_run(h1) != AI_STATUS_OK) return 29;
    if (ai_run(h2) != AI_STATUS_OK) return 30;
    for (int k = 0; k < 2; k++)
        print_outputs(ai_get_output(hs[k], 0)->data, ai_get_output(hs[k], 1)->data);
    (void)fake_clock_now;
    (void)layer_ticks;
    if (ai_destroy(h1) != AI_STATUS_OK || ai_destroy(h1) == AI_STATUS_OK) return 31;
    if (ai_create(&fixture_net_info, NULL, &h3) != AI_STATUS_OK) return 32;  /* freed: usable again */
    printf("layers %d %s\n", (int)ai_get_node_size(h3), ai_get_node(h3, 2)->op);
    return 0;
}
"""


def compile_and_run(tmp_path: Path, a: np.ndarray, b: np.ndarray) -> str:
    out = tmp_path / "gen"
    write_model(out)
    main = tmp_path / "main.c"
    main.write_text(MAIN_C.replace("A_VALUES", ", ".join(map(str, a))).replace("B_VALUES", ", ".join(map(str, b))))
    exe = tmp_path / "fixture"
    cmd = ["gcc", *CFLAGS, *includes(out), *model_sources(out), str(main), "-o", str(exe)]
    build = subprocess.run(cmd, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, f"fixture exited {run.returncode}\n{run.stdout}{run.stderr}"
    return run.stdout


def _parse(line: str) -> tuple[np.ndarray, np.ndarray]:
    items = line.split()
    return (np.array([float.fromhex(x) for x in items[:4]], np.float32),
            np.array([int(x) for x in items[4:]], np.int8))


def test_generated_model_runs_and_matches_numpy(tmp_path):
    rng = np.random.default_rng(1)
    a = rng.integers(-128, 128, 8, dtype=np.int8)
    a[4] = 120  # saturates with +100
    b = rng.integers(-128, 128, 4, dtype=np.int8)
    lines = compile_and_run(tmp_path, a, b).splitlines()
    want_mixed, want_added = fixture_reference(a, b)
    results = [lines[0], lines[1], lines[3], lines[4]]  # typed x2, ai instance 1 and 2
    for line in results:
        mixed, added = _parse(line)
        np.testing.assert_array_equal(added, want_added)
        np.testing.assert_array_equal(mixed, want_mixed)
    assert "another instance" in lines[2]
    assert lines[5] == "layers 3 CUSTOM_MIX"


def test_weights_are_const_in_nn_weights_and_arena_in_nn_data_act(tmp_path):
    from elftools.elf.elffile import ELFFile

    out = tmp_path / "gen"
    _, _, plan, result = write_model(out)
    obj_w, obj_m = tmp_path / "weights.o", tmp_path / "model.o"
    for src, obj in ((out / "weights.c", obj_w), (out / "model.c", obj_m)):
        r = subprocess.run(["gcc", *CFLAGS, *includes(out), "-c", str(src), "-o", str(obj)],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    with open(obj_w, "rb") as f:
        elf = ELFFile(f)
        sec = elf.get_section_by_name(".nn_weights")
        assert sec is not None
        assert not sec.header.sh_flags & 0x1  # SHF_WRITE: the weights are read-only
        assert sec.header.sh_addralign >= 16
        assert result.weights_bytes == 8 + 16  # 8 int8 + 4 int32
        assert result.weights_bytes <= sec.data_size < result.weights_bytes + 2 * 16  # + alignment
    with open(obj_m, "rb") as f:
        sec = ELFFile(f).get_section_by_name(".nn_data_act")
        assert sec is not None and sec.data_size == plan.arena_size
    # INT32_MIN is spelled so that C reads it as int32 and without a warning
    assert "(-2147483647 - 1)" in result.weights_c


def test_model_h_has_typed_api_and_io_constants(tmp_path):
    _, _, plan, result = write_model(tmp_path)
    h = result.model_h
    assert f"#define FIXTURE_NET_ARENA_SIZE {plan.arena_size}u" in h
    assert "#define FIXTURE_NET_INPUT0_SHAPE {1, 8}" in h
    assert "#define FIXTURE_NET_INPUT1_ZERO_POINT 7" in h
    assert "#define FIXTURE_NET_OUTPUT0_DTYPE TK_DTYPE_FLOAT32" in h
    assert "int fixture_net_run(const fixture_net_inputs *inputs, fixture_net_outputs *outputs, void *arena);" in h


def test_identical_constants_are_stored_once():
    graph, lowered, _ = fixture_model()
    # a second call with the same weights array (another object with equal bytes)
    extra = KernelCall(lowered.calls[0].spec, 0, [0, W_ADD.copy(), 1])
    lowered.calls.insert(1, extra)
    plan = memplan.plan(graph, lowered)
    result = aot.generate(graph, lowered, plan, "dedupe")
    assert result.weights_c.count("__attribute__") == 2  # W_ADD and BIAS once each


def test_build_id_follows_the_code():
    graph, lowered, _ = fixture_model()
    plan = memplan.plan(graph, lowered)
    one = aot.generate(graph, lowered, plan, "m", source_digest="a")
    again = aot.generate(graph, lowered, plan, "m", source_digest="a")
    other = aot.generate(graph, lowered, plan, "m", source_digest="b")
    assert one.build_id == again.build_id != other.build_id
    assert one.model_c == again.model_c


CONST_OUT = np.array([[5, -7, 127], [-128, 0, 33]], np.int8)

CONST_MAIN_C = r"""
#include <stdio.h>
#include "model.h"

static uint8_t arena2[M_ARENA_SIZE] __attribute__((aligned(16)));

int main(void)
{
    const int8_t a[8] = {0};
    const int8_t b[4] = {0};
    float mixed[4];
    int8_t added[8], anchors[6];
    m_inputs in = {a, b};
    m_outputs out = {mixed, added, anchors};
    for (int k = 0; k < 2; k++) {  /* own arena, then a caller's arena filled with garbage */
        for (unsigned i = 0; i < sizeof arena2; i++) arena2[i] = (uint8_t)(0xA5u + i);
        if (m_run(&in, &out, k ? arena2 : NULL) != TK_OK) return 10 + k;
        for (int i = 0; i < 6; i++) printf("%d ", anchors[i]);
        printf("\n");
    }
    return 0;
}
"""


def test_constant_graph_output_is_copied_into_its_slot(tmp_path):
    """An output folded to a constant at import (an SSD's anchors: DEQUANTIZE of a constant) has an
    arena slot of its own, apart from every other output, and each run writes the constant there."""
    graph, lowered, kernels_c = fixture_model()
    graph.tensors.append(Tensor(6, "anchors", (2, 3), "int8", data=CONST_OUT))
    graph.outputs.append(6)
    plan = memplan.plan(graph, lowered)
    slots = {t: plan.tensor_offsets[t] for t in graph.outputs}
    spans = sorted((off, off + graph.tensor(t).nbytes) for t, off in slots.items())
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans
    result = aot.generate(graph, lowered, plan, "m", source_digest="test")
    out = tmp_path / "gen"
    out.mkdir()
    for name, text in (("model.h", result.model_h), ("model.c", result.model_c), ("weights.c", result.weights_c),
                       ("kernels.c", kernels_c), ("main.c", CONST_MAIN_C)):
        (out / name).write_text(text)
    exe = tmp_path / "const_out"
    build = subprocess.run(["gcc", *CFLAGS, *includes(out), *(str(out / f) for f in
                            ("model.c", "weights.c", "kernels.c", "main.c")), "-o", str(exe)],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    want = " ".join(map(str, CONST_OUT.ravel()))
    assert [line.strip() for line in run.stdout.splitlines()] == [want, want]


def test_constant_graph_input_is_rejected():
    graph, lowered, _ = fixture_model()
    graph.tensors[4].data = np.zeros(4, np.int8)
    plan = memplan.plan(graph, lowered)
    with pytest.raises(KilnError, match="constant"):
        aot.generate(graph, lowered, plan, "m")


def test_c_identifier():
    assert aot.c_identifier("tflm_hello_world_int8") == "tflm_hello_world_int8"
    assert aot.c_identifier("My Model-v2") == "my_model_v2"
    assert aot.c_identifier("8bit") == "m_8bit"


ARM_TARGETS = {
    "cortex-m7": ["-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
    "cortex-m4": ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-a9": ["-mcpu=cortex-a9", "-marm", "-mfloat-abi=hard", "-mfpu=neon"],
}


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")
@pytest.mark.parametrize("core", sorted(ARM_TARGETS))
def test_generated_and_runtime_c_is_warning_free_for_arm(tmp_path, core):
    out = tmp_path / "gen"
    write_model(out)
    sources = model_sources(out) + [str(ROOT / "runtime/protocol/tk_proto.c"),
                                    str(ROOT / "runtime/apps/validation/main.c")]
    for src in sources:
        obj = tmp_path / (Path(src).stem + ".o")
        r = subprocess.run(["arm-none-eabi-gcc", *ARM_TARGETS[core], *CFLAGS, "-O2", *includes(out),
                            "-c", src, "-o", str(obj)], capture_output=True, text=True)
        assert r.returncode == 0, f"{src}:\n{r.stderr}"


TWO_MODELS_MAIN = r"""
#include <stdio.h>
#include <string.h>
#include "ai_runtime.h"

int main(void)
{
    /* both models of this firmware, from the registry; two instances of each */
    static uint8_t extra[2][1024] __attribute__((aligned(16)));
    ai_handle h[4];
    if (tk_model_count != 2) return 1;
    for (unsigned k = 0; k < 4; k++) {
        const tk_model_info *m = tk_models[k % 2];
        if (m->arena_size > sizeof extra[0]) return 2;
        if (ai_create(m, k < 2 ? NULL : extra[k - 2], &h[k]) != AI_STATUS_OK) return 3;
    }
    for (unsigned k = 0; k < 4; k++) {
        int8_t *a = ai_get_input(h[k], 0)->data, *b = ai_get_input(h[k], 1)->data;
        for (int i = 0; i < 8; i++) a[i] = (int8_t)(i * 10 + (int)k);
        for (int i = 0; i < 4; i++) b[i] = (int8_t)(i - (int)k);
    }
    for (unsigned k = 0; k < 4; k++)
        if (ai_run(h[k]) != AI_STATUS_OK) return 4;
    for (unsigned k = 0; k < 4; k++) {
        const float *y = ai_get_output(h[k], 0)->data;
        printf("%s %a %a %a %a\n", ai_get_name(h[k]), (double)y[0], (double)y[1], (double)y[2], (double)y[3]);
    }
    return 0;
}
"""


def test_two_models_and_two_instances_each_in_one_program(tmp_path):
    objs = []
    for name in ("net a", "net b"):
        out = tmp_path / name.replace(" ", "_")
        write_model(out, name)
        for src in ("model.c", "weights.c"):
            obj = out / (src + ".o")
            r = subprocess.run(["gcc", *CFLAGS, *includes(out), "-c", str(out / src), "-o", str(obj)],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
            objs.append(str(obj))
    (tmp_path / "tk_models.c").write_text(aot.registry_c(["net a", "net b"]))
    (tmp_path / "main.c").write_text(TWO_MODELS_MAIN)
    shared = tmp_path / "net_a"  # identical kernels: one copy serves both models
    exe = tmp_path / "two"
    r = subprocess.run(["gcc", *CFLAGS, *includes(shared), *objs, str(shared / "kernels.c"),
                        str(tmp_path / "tk_models.c"), str(ROOT / "runtime/ai/ai_runtime.c"),
                        str(tmp_path / "main.c"), "-o", str(exe)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = run.stdout.splitlines()
    assert [line.split()[0] + " " + line.split()[1] for line in lines] == ["net a", "net b"] * 2
    for k, line in enumerate(lines):
        a = np.array([i * 10 + k for i in range(8)], np.int8)
        b = np.array([i - k for i in range(4)], np.int8)
        want, _ = fixture_reference(a, b)
        got = np.array([float.fromhex(x) for x in line.split()[2:]], np.float32)
        np.testing.assert_array_equal(got, want)
