"""Fuzz the importer with mutated real .tflite files: every case ends in a Graph or a KilnError.

Never another exception, a crash or a hang (each case has a time limit). The default suite runs a
short deterministic campaign; the slow suite runs >= 10,000 cases in a child process, so that a crash
in native code would be reported as a failure instead of killing pytest.

Run by hand: python tests/test_fuzz_importer.py 50000
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # when run as a script
import modelgen  # noqa: E402
from tinykiln import KilnError, tflite  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED_MODELS = REPO.parent / "shared" / "models"
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
    def on_alarm(signum, frame):
        raise Hang(f"the importer took more than {seconds} s on one file")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
            pass


CASES_RUN = [0]


def fuzz_test(max_examples: int, derandomize: bool):
    @settings(max_examples=max_examples, derandomize=derandomize, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), print_blob=True)
    @given(st.integers(0, len(CORPUS) - 1), st.lists(mutation, min_size=1, max_size=6))
    def run(seed_index, mutations):
        CASES_RUN[0] += 1
        check_case(seed_index, mutations)

    return run


def test_fuzz_importer_short():
    fuzz_test(200, derandomize=True)()


def test_corpus_is_accepted_unmutated():
    for data in CORPUS:
        tflite.load(data)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_fuzz_importer_10k_in_child_process():
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "site_scons"), os.environ.get("PYTHONPATH", "")]))
    try:
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
    fuzz_test(count, derandomize=False)()
    print(f"fuzzed the importer: cases: {CASES_RUN[0]}, corpus: {len(CORPUS)} files, all ended in a Graph or a KilnError")
