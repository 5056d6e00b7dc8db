"""The device protocol and AiRunner over a pipe: the real validation app built for the host with the
fixture model of test_aot, and fake devices that misbehave (silence, garbage, bad checksums, wrong
version, a crash mid-reply). Every failure must be a clear error within the timeout, never a hang."""
from __future__ import annotations

import shutil
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from test_aot import CFLAGS, ROOT, fixture_reference, includes, model_sources, write_model
from tinykiln import KilnError, boards
from tinykiln.runner import protocol as p
from tinykiln.runner.airunner import AiRunner
from tinykiln.runner.transports import open_url

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="host gcc not installed")

HOST_SOURCES = [str(p) for p in boards.load_board(ROOT, "host").sources]  # tinykiln.boards owns the list


@pytest.fixture(scope="module")
def firmware(tmp_path_factory) -> Path:
    """The validation app + fixture model + host board, as a host program."""
    tmp = tmp_path_factory.mktemp("validation")
    out = tmp / "gen"
    write_model(out)
    exe = tmp / "firmware"
    # Board facts the build generates (board_info.c) in the product; weak, so a board that defines
    # them wins.
    facts = tmp / "board_facts.c"
    facts.write_text(
        '#include "tk_board.h"\n'
        '__attribute__((weak)) const char *tk_board_name(void) { return "host"; }\n'
        '__attribute__((weak)) const char *tk_core_name(void) { return "host"; }\n'
        '__attribute__((weak)) uint32_t tk_clock_hz(void) { return 1000000000u; }\n'
    )
    sources = model_sources(out) + [str(ROOT / "runtime/protocol/tk_proto.c"),
                                    str(ROOT / "runtime/apps/validation/main.c"), *HOST_SOURCES,
                                    str(facts)]
    r = subprocess.run(["gcc", *CFLAGS, *includes(out), *sources, "-o", str(exe)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return exe


def _inputs(seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(-128, 128, (1, 8), dtype=np.int8), rng.integers(-128, 128, (4,), dtype=np.int8)]


def test_info_describes_the_model(firmware):
    with AiRunner().connect(f"pipe:{firmware}") as runner:
        info = runner.info
        assert info.model == "fixture net"
        assert info.board == "host" and info.cycle_unit == "ns"
        assert info.protocol_version == p.VERSION
        assert [(t.name, t.dtype, t.shape) for t in info.inputs] == [
            ("input_a", "int8", (1, 8)), ("input_b", "int8", (4,))]
        assert [(t.name, t.dtype, t.shape) for t in info.outputs] == [
            ("mixed", "float32", (4,)), ("added", "int8", (1, 8))]
        assert info.inputs[0].scale == 0.5 and info.inputs[0].zero_point == -3
        assert [layer["op"] for layer in info.layers] == ["ADD", "MUL", "CUSTOM_MIX"]
        assert info.arena_size > 0 and info.weights_size == 24


def test_invoke_matches_numpy_over_several_runs(firmware):
    with AiRunner().connect(f"pipe:{firmware}") as runner:
        for seed in range(5):
            a, b = _inputs(seed)
            outputs, profile = runner.invoke([a, b])
            mixed, added = fixture_reference(a.ravel(), b)
            np.testing.assert_array_equal(outputs[0], mixed)
            np.testing.assert_array_equal(outputs[1], added.reshape(1, 8))
            assert profile["unit"] == "ns" and "layers" not in profile
        outputs, profile = runner.invoke([a, b], profile=True)
        assert [layer["op"] for layer in profile["layers"]] == ["ADD", "MUL", "CUSTOM_MIX"]
        assert all(layer["cycles"] >= 0 for layer in profile["layers"])
        runner.exit(0)


def test_exit_ends_the_program_with_the_status(firmware):
    runner = AiRunner().connect(f"pipe:{firmware}")
    proc = runner.transport.proc
    runner.exit(7)
    assert proc.wait(timeout=5) == 7


def test_wrong_inputs_are_clear_errors(firmware):
    with AiRunner().connect(f"pipe:{firmware}") as runner:
        a, b = _inputs(0)
        with pytest.raises(KilnError, match="takes 2 input"):
            runner.invoke([a])
        with pytest.raises(KilnError, match="is int8, got float32"):
            runner.invoke([a.astype(np.float32), b])
        with pytest.raises(KilnError, match="shape"):
            runner.invoke([a, np.zeros(5, np.int8)])


def _raw(firmware):
    """The app's transport and reader without AiRunner, to send broken frames."""
    transport = open_url(f"pipe:{firmware}")
    return transport, p.FrameReader(transport)


def _reply(reader, timeout=5.0):
    return reader.read_frame(time.monotonic() + timeout, "test")


def test_device_skips_garbage_and_answers_bad_frames(firmware):
    transport, reader = _raw(firmware)
    try:
        # noise, including a lone magic byte, before a good frame: the device resyncs
        transport.write(b"\x00\xffT hello T" + p.encode(p.CMD_ECHO, 1, b"abc"))
        frame = _reply(reader)
        assert (frame.cmd, frame.seq, frame.status, frame.payload) == (p.CMD_ECHO | 0x80, 1, p.ST_OK, b"abc")
        # a corrupted checksum
        bad = bytearray(p.encode(p.CMD_ECHO, 2, b"xyz"))
        bad[-1] ^= 0xFF
        transport.write(bytes(bad))
        assert _reply(reader).status == p.ST_CHECKSUM
        # another protocol version
        transport.write(p.encode(p.CMD_INFO, 3, version=9))
        frame = _reply(reader)
        assert frame.status == p.ST_VERSION and frame.payload[0] == p.VERSION
        # longer than the device's buffer: skipped whole, the link stays usable
        transport.write(p.encode(p.CMD_ECHO, 4, bytes(3000)))
        assert _reply(reader).status == p.ST_TOO_LONG
        transport.write(p.encode(0x55, 5))
        assert _reply(reader).status == p.ST_UNKNOWN
        transport.write(p.encode(p.CMD_SET_INPUT, 6, struct.pack("<BI", 0, 6) + b"abc"))
        assert _reply(reader).status == p.ST_ARGUMENT  # 6 + 3 > 8 bytes of input 0
        transport.write(p.encode(p.CMD_GET_PROFILE, 7, struct.pack("<HH", 0, 1)))
        assert _reply(reader).status == p.ST_ARGUMENT  # no profiled run yet
        transport.write(p.encode(p.CMD_ECHO, 8, b"still alive"))
        assert _reply(reader).payload == b"still alive"
        assert b"tinykiln validation" in bytes(reader.garbage)  # the banner was kept aside
    finally:
        transport.close()


# --- fake devices ---------------------------------------------------------------------------

FAKE = textwrap.dedent(
    """
    import struct, sys, time, zlib
    mode = sys.argv[1]
    out = sys.stdout.buffer
    def frame(cmd, seq, payload=b"", status=0, version=1, corrupt=False):
        head = struct.pack("<2sBBBBH", b"TK", version, cmd | 0x80, seq, status, len(payload))
        crc = zlib.crc32(head[2:] + payload) ^ (1 if corrupt else 0)
        return head + payload + struct.pack("<I", crc)
    req = sys.stdin.buffer.read(12)  # INFO request: 8 header + 0 payload + 4 crc
    seq = req[4]
    if mode == "silent":
        time.sleep(60)
    elif mode == "garbage":
        for _ in range(40):
            out.write(b"Hello from the bootloader, no frames here\\n"); out.flush(); time.sleep(0.01)
        time.sleep(60)
    elif mode == "checksum":
        out.write(frame(1, seq, b"x" * 20, corrupt=True)); out.flush(); time.sleep(60)
    elif mode == "version":
        out.write(frame(1, seq, b"\\x02", version=2)); out.flush(); time.sleep(60)
    elif mode == "truncated":
        out.write(frame(1, seq, b"y" * 40)[:20]); out.flush(); time.sleep(60)
    elif mode == "crash":
        out.write(b"\\n*** FAULT: HardFault PC=0x00001234 LR=0x00005679\\n"); out.flush(); sys.exit(3)
    """
)


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    path = tmp_path_factory.mktemp("fake") / "fake_device.py"
    path.write_text(FAKE)
    return lambda mode: f"pipe:{sys.executable} {path} {mode}"


@pytest.mark.parametrize(
    "mode, message",
    [
        ("silent", "no reply from the device within the timeout.*sent nothing"),
        ("garbage", "no reply.*Hello from the bootloader"),
        ("checksum", "bad checksum"),
        ("version", "protocol version 2, this runner version 1"),
        ("truncated", "no reply from the device within the timeout"),
        ("crash", "closed the connection.*status 3.*FAULT: HardFault PC=0x00001234"),
    ],
)
def test_misbehaving_devices_give_clear_errors_quickly(fake, mode, message):
    start = time.monotonic()
    runner = AiRunner(timeout=1.0)
    with pytest.raises(KilnError, match=f"(?s){message}"):
        runner.connect(fake(mode), timeout=1.0)
    assert time.monotonic() - start < 5.0
    assert runner.transport is None  # connect cleaned up after itself


def test_unknown_url_and_missing_program_are_clear_errors(tmp_path):
    with pytest.raises(KilnError, match="don't know how to reach"):
        open_url("ftp:somewhere")
    with pytest.raises(KilnError, match="cannot start the host firmware"):
        open_url(f"pipe:{tmp_path / 'nope'}")
    with pytest.raises(KilnError, match="cannot open"):
        open_url("/dev/tinykiln-no-such-port")


def test_frames_round_trip_and_checksum_covers_header():
    data = p.encode(p.CMD_GET_OUTPUT, 200, b"\x01\x02")

    class Bytes:
        def __init__(self, chunks):
            self.chunks = list(chunks)

        def read(self, n, timeout):
            return self.chunks.pop(0) if self.chunks else None

        def exit_note(self):
            return ""

    # split at every position: the reader reassembles
    for cut in range(1, len(data)):
        frame = p.FrameReader(Bytes([b"junk" + data[:cut], data[cut:]])).read_frame(time.monotonic() + 1, "t")
        assert (frame.cmd, frame.seq, frame.payload) == (p.CMD_GET_OUTPUT, 200, b"\x01\x02")
    flipped = bytearray(data)
    flipped[4] ^= 1  # the sequence number is covered by the CRC
    with pytest.raises(p.ProtocolError, match="bad checksum"):
        p.FrameReader(Bytes([bytes(flipped)])).read_frame(time.monotonic() + 1, "t")
