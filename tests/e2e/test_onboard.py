"""Models on the boards, end to end with real QEMU and real serial over TCP: run=1 validates on the
emulated device against LiteRT's reference kernels and counts instructions; validate=1 port= (the
hardware path) validates and profiles layers; app=perf times; the protocol survives garbage, bad
checksums, truncated frames and timeouts, and a fault mid-invoke reaches the user; a model too big for
nucleo-f412zg is the region-overflow error.

The default run keeps to cifar10 (the demo) and small models; every shared model on every board is
`--slow`."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from modelgen import ModelBuilder, binary
from tinykiln import KilnError, boards, cycles
from tinykiln.runner import protocol as p
from tinykiln.device import qemu
from tinykiln.runner.airunner import AiRunner
from tinykiln.runner.transports import open_url

SHARED = ROOT.parent / "shared" / "models"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models")
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/models is not there")

SHARED_INT8 = ["tflm_hello_world_int8", "mlperf_ad_fc_ae_int8", "mlperf_kws_dscnn_int8",
               "mlperf_ic_resnet8_int8", "tflm_simple_add_int8"]
EMULATED = ["mps2-an500", "mps2-an386", "netduinoplus2", "pynq-z1"]
HARDWARE = [("nucleo-f746zg", "release"), ("disco-h747i", "release"), ("disco-h747i", "ext-mem"),
            ("nucleo-f412zg", "release")]


def _report(builddir, board, name, variant="release") -> dict:
    return json.loads((Path(builddir) / board / variant / name / "report.json").read_text())


def _flasher(board):
    return ["flasher=qemu"] if board == "pynq-z1" else []


def test_demo_validates_cifar10_bit_exact_and_counts_instructions(scons, kiln_build_dir):
    r = scons("board=mps2-an500", "model=cifar10", "run=1", "n=2", "werror=1")
    assert r.returncode == 0, r.output[-3000:]
    out = r.output
    assert re.search(r"sample samples/0_airplane\.npy \(labelled airplane\): top classes \w+ [\d.]+%", out)
    assert ("validation PASS: cifar10 on mps2-an500, 12 runs (2 random, 10 sample), bit-exact vs "
            "LiteRT reference kernels") in out
    m = re.search(r"instructions per inference: ([\d,]+) \(median of 12 runs\)", out)
    assert m, out
    count = int(m.group(1).replace(",", ""))
    assert 10_000_000 < count < 1_000_000_000
    assert re.search(r"memory: arena 40,960 B, weights [\d,]+ B, flash \(image\) [\d,]+ B", out)
    data = _report(kiln_build_dir, "mps2-an500", "cifar10")
    assert data["validation"]["bit_exact"] is True and data["validation"]["runs"] == 12
    assert data["validation"]["where"] == "qemu"
    assert data["instructions_per_inference"] == count
    assert "cycles_per_inference" not in {k for k in data if k != "validation"}
    if not cycles.unavailable():  # the cycle estimate, for the same runs (tinykiln.cycles)
        assert data["cycles_estimated_core"] == "m7" and data["cycles_estimated_per_inference"] > 0
        assert f"; estimated m7 cycles: {data['cycles_estimated_per_inference']:,} (" in out


@needs_shared
def test_perf_app_counts_the_same_as_the_validation_runner(scons, kiln_build_dir):
    """app=perf feeds the benchmark LCG bytes; the runner, given the same bytes, must count the same
    instructions up to the SysTick resolution (40 instructions on mps2)."""
    model = SHARED / "tflm_hello_world_int8.tflite"
    r = scons("board=mps2-an500", f"model={model}", "app=perf", "run=1", "werror=1")
    assert r.returncode == 0, r.output[-3000:]
    m = re.search(r"perf: instructions/inference: min (\d+) avg (\d+) max (\d+)", r.output)
    assert m, r.output
    perf_min, _, perf_max = map(int, m.groups())
    assert perf_max - perf_min <= 40
    assert re.search(r"perf: time/inference at 25 MHz: \d+\.\d{3} ms", r.output)

    r = scons("board=mps2-an500", f"model={model}")
    assert r.returncode == 0, r.output[-3000:]
    elf = Path(kiln_build_dir) / "mps2-an500/release/tflm_hello_world_int8/tflm_hello_world_int8.elf"
    board = boards.load_board(ROOT, "mps2-an500")
    x = 12345
    data = bytearray()
    with qemu.start(board, elf, serial="tcp") as session:
        with AiRunner().connect(session.url) as runner:
            for _ in range(runner.info.inputs[0].nbytes):
                x = (x * 1103515245 + 12345) & 0xFFFFFFFF
                data.append((x >> 16) & 0xFF)
            array = np.frombuffer(bytes(data), dtype=np.int8).reshape(runner.info.inputs[0].shape)
            counts = [runner.invoke([array])[1]["cycles"] for _ in range(3)]
            runner.exit(0)
        assert session.wait(10) == 0
    for count in counts:
        assert perf_min - 40 <= count <= perf_max + 40, (counts, perf_min, perf_max)


# --- the protocol over QEMU's TCP serial ------------------------------------------------------


@pytest.fixture(scope="module")
def cifar10_elf(kiln_build_dir):
    from conftest import run_scons

    r = run_scons("board=mps2-an500", "model=cifar10", builddir=kiln_build_dir)
    assert r.returncode == 0, r.output[-3000:]
    return Path(kiln_build_dir) / "mps2-an500/release/cifar10/cifar10.elf"


@pytest.fixture
def device(cifar10_elf):
    board = boards.load_board(ROOT, "mps2-an500")
    with qemu.start(board, cifar10_elf, serial="tcp") as session:
        yield session


def _frame(transport, reader, timeout=5.0):
    return reader.read_frame(time.monotonic() + timeout, "test")


def test_device_on_qemu_skips_garbage_and_rejects_bad_frames(device):
    transport = open_url(device.url)
    reader = p.FrameReader(transport)
    try:
        transport.write(b"\x00\xffT noise T" + p.encode(p.CMD_ECHO, 1, b"abc"))
        frame = _frame(transport, reader)
        assert (frame.cmd, frame.seq, frame.status, frame.payload) == (p.CMD_ECHO | 0x80, 1, p.ST_OK, b"abc")
        bad = bytearray(p.encode(p.CMD_ECHO, 2, b"xyz"))
        bad[9] ^= 0x40  # a flipped payload bit
        transport.write(bytes(bad))
        frame = _frame(transport, reader)
        assert (frame.seq, frame.status) == (2, p.ST_CHECKSUM)
        transport.write(p.encode(p.CMD_INFO, 3, version=7))
        frame = _frame(transport, reader)
        assert frame.status == p.ST_VERSION and frame.payload[0] == p.VERSION
        transport.write(p.encode(p.CMD_ECHO, 4, b"alive"))
        assert _frame(transport, reader).payload == b"alive"
        assert b"tinykiln validation: cifar10" in bytes(reader.garbage)
    finally:
        transport.close()


def test_truncated_frame_is_a_clear_error_within_the_timeout_and_the_link_recovers(device):
    runner = AiRunner(timeout=2.0).connect(device.url)  # (1 s was too short for QEMU on a loaded machine)
    try:
        # A SET_INPUT frame cut after 4 of its 64 payload bytes: the device waits for the rest and
        # takes the next request's bytes for it.
        cut = p.encode(p.CMD_SET_INPUT, 0x70, bytes(64))[:12]
        runner.transport.write(cut)
        start = time.monotonic()
        with pytest.raises(KilnError, match="no reply from the device within the timeout|corrupted frame"):
            runner.echo(b"hello")
        assert time.monotonic() - start < 6.0
        # resync: zeros complete the cut frame (the device answers it with a checksum error) and
        # are skipped after it; the stale replies are dropped, the next request is answered.
        runner.resync()
        assert runner.echo(b"again") == b"again"
    finally:
        runner.close()


def test_invoke_timeout_is_clear_and_the_late_reply_is_skipped(device):
    runner = AiRunner(timeout=5.0, invoke_timeout=0.005).connect(device.url)
    try:
        x = np.zeros(runner.info.inputs[0].shape, dtype=np.int8)
        start = time.monotonic()
        with pytest.raises(KilnError, match="no reply from the device within the timeout while "
                                            "waiting for INVOKE"):
            # Any INVOKE takes longer than 5 ms here: the emulated UART alone moves the 13-byte
            # request and the 16-byte reply at ~0.3 ms a byte, and the model runs in between.
            runner.invoke([x])
        assert time.monotonic() - start < 2.0
        assert runner.echo(b"after") == b"after"  # the INVOKE reply came late and was skipped
    finally:
        runner.close()


def test_fault_mid_invoke_reaches_the_user(scons, tmp_path):
    r = scons("board=mps2-an500", "model=cifar10", "run=1", "defines=TK_VALIDATION_FAULT",
              builddir=tmp_path)
    assert r.returncode != 0
    assert "the device closed the connection while we waited for INVOKE" in r.output, r.output[-3000:]
    for word in ("FAULT: UsageFault", "CFSR.UNALIGNED", "PC   0x", "QEMU exited with status 3"):
        assert word in r.output, r.output[-3000:]
    assert "Traceback" not in r.output


def test_model_too_big_for_nucleo_f412zg_is_the_overflow_error(scons, tmp_path):
    mb = ModelBuilder(seed=3)
    a = mb.input((1, 320, 320, 1), "int8")
    b = mb.input((1, 320, 320, 1), "int8")
    y = binary(mb, "ADD", a, b)
    path = tmp_path / "big_add.tflite"
    path.write_bytes(mb.build([a, b], [y]))
    r = scons("board=nucleo-f412zg", f"model={path}", builddir=tmp_path / "build")
    assert r.returncode != 0
    # three 100 KB tensors live at once: 300 KB of arena in the 256 KB SRAM
    assert re.search(r"region SRAM of board nucleo-f412zg overflowed by \d+ bytes", r.output), r.output
    assert ".nn_data_act" in r.output
    assert "Traceback" not in r.output


def test_validate_and_profile_over_port_on_another_board(scons, kiln_build_dir):
    """flasher=openocd port=URL is how a real board is validated (after flash=1); here the "board" is
    netduinoplus2 in a QEMU this test starts, reached through port= like a serial port. profile=1
    adds the per-layer table, report.json "profile" and profile.png."""
    r = scons("board=netduinoplus2", "model=cifar10", "werror=1")
    assert r.returncode == 0, r.output[-3000:]
    elf = Path(kiln_build_dir) / "netduinoplus2/release/cifar10/cifar10.elf"
    board = boards.load_board(ROOT, "netduinoplus2")
    with qemu.start(board, elf, serial="tcp") as session:
        # clock=reset: the stand-in board is QEMU, which models no PLL (a real board runs at clock=max)
        r = scons("board=netduinoplus2", "model=cifar10", "validate=1", "n=1", "profile=1",
                  "flasher=openocd", "clock=reset", f"port={session.url}", "werror=1")
        assert r.returncode == 0, r.output[-3000:]
        assert session.wait(10) == 0  # the runner ended the app with EXIT 0
    assert f"RUN cifar10 on netduinoplus2 ({session.url})" in r.output
    assert "validation PASS: cifar10 on netduinoplus2, 11 runs (1 random, 10 sample), bit-exact" in r.output
    data = _report(kiln_build_dir, "netduinoplus2", "cifar10")
    assert data["validation"]["where"] == "device"

    prof = data["profile"]
    layers = prof["layers"]
    assert [layer["op"] for layer in layers] == ["CONV_2D", "MAX_POOL_2D", "CONV_2D", "AVERAGE_POOL_2D",
                                                 "CONV_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED"]
    assert layers[0]["shape"] == [1, 32, 32, 32] and layers[-1]["shape"] == [1, 10]
    assert all(layer["cycles"] > 0 and layer["kernel"].startswith("tk_") for layer in layers)
    assert abs(sum(layer["share"] for layer in layers) - 100) < 0.1
    # the layers account for the whole invoke, but for the hooks' and the loop's few instructions
    # (a share, not a count: at clock=reset the counter ticks ~10x per instruction of the QEMU build)
    assert 0 <= prof["invoke_total"] - prof["layers_total"] < prof["invoke_total"] / 10_000, prof
    for layer in layers:  # every row is in the printed table
        assert re.search(rf"{layer['kernel']}\s+{layer['op']} \(op {layer['op_index']}\)\s+"
                         rf"{'x'.join(map(str, layer['shape']))}\s+{layer['cycles']:,}", r.output)
    png = Path(kiln_build_dir) / "netduinoplus2/release/cifar10/profile.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_top_classes_and_profile_table():
    from tinykiln.runner.airunner import TensorDesc
    from tinykiln.runner.model_run import top_classes
    from tinykiln.runner.profile import layer_rows, table

    logits = TensorDesc("y", "int8", (1, 3), 3, 0.5, 10)
    text = top_classes(np.array([[10, 14, 12]], np.int8), logits, ["a", "b"], k=3)
    # dequantized [0, 2, 1] through a softmax: b, class 2, a
    assert text == "b 66.5%, class 2 24.5%, a 9.0%"
    probs = TensorDesc("p", "int8", (1, 2), 2, 1 / 256, -128)
    assert top_classes(np.array([[-128 + 64, -128 + 192]], np.int8), probs, ["x", "y"]) == "y 75.0%, x 25.0%"
    rows = layer_rows([{"kernel": "k0", "op": "CONV_2D", "op_index": 0, "cycles": 300},
                       {"kernel": "k1", "op": "ADD", "op_index": 1, "cycles": 100}])
    assert [r["share"] for r in rows] == [75.0, 25.0]
    text = table(rows, "cycles")
    assert re.search(r"^0  k0 +CONV_2D \(op 0\) +- +300 +75.0%$", text, re.M), text
    assert text.splitlines()[-1].split() == ["total", "400", "100.0%"]


def test_validate_on_hardware_needs_a_port(scons, tmp_path):
    r = scons("board=nucleo-f746zg", "model=cifar10", "validate=1", builddir=tmp_path)
    assert r.returncode != 0
    assert "give port=/dev/ttyACM0" in r.output and "Traceback" not in r.output


# --- every model on every board (slow) --------------------------------------------------------


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("board", EMULATED)
@pytest.mark.parametrize("model", ["cifar10"] + SHARED_INT8)
def test_every_model_is_bit_exact_on_every_emulated_board(scons, kiln_build_dir, board, model):
    spec = model if model == "cifar10" else str(SHARED / f"{model}.tflite")
    r = scons(f"board={board}", f"model={spec}", "run=1", "n=3", "werror=1", "timeout=300",
              *_flasher(board), timeout=1800)
    if "overflowed by" in r.output:
        pytest.skip(f"{model} does not fit {board}")  # the clear error, not a failure
    assert r.returncode == 0, r.output[-3000:]
    assert re.search(rf"validation PASS: {model} on {board}, \d+ runs .*, bit-exact", r.output), \
        r.output[-3000:]
    data = _report(kiln_build_dir, board, model)
    assert data["validation"]["bit_exact"] is True
    assert data["instructions_per_inference"] > 0


@pytest.mark.slow
@needs_shared
@pytest.mark.parametrize("board,variant", HARDWARE)
@pytest.mark.parametrize("model", ["cifar10"] + SHARED_INT8)
def test_every_model_builds_or_overflows_clearly_on_hardware(scons, board, variant, model):
    spec = model if model == "cifar10" else str(SHARED / f"{model}.tflite")
    r = scons(f"board={board}", f"variant={variant}", f"model={spec}", "werror=1", timeout=1800)
    if r.returncode != 0:
        assert re.search(rf"region \w+ of board {board} overflowed by \d+ bytes", r.output), \
            r.output[-3000:]
        assert "Traceback" not in r.output
    else:
        assert f"model {model}: arena" in r.output
