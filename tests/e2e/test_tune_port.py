"""tune=1 port=: candidates measured on real boards (tinykiln/tune/ports.py) -- flash the bench ELF,
read its TKBENCH line from the console port through pyserial.

No board is attached here, so the one step that needs hardware -- flashing -- is replaced: the fake
flasher boots the ELF in QEMU (mps2-an500) with its console on a TCP port and relays that console to
a TCP server standing in for the board's USB serial adapter (socket://127.0.0.1:P, opened by the
device before it flashes, as a real /dev/ttyACM0 is). Everything else is the real code: opening the
port, the read with its timeout, parsing, the tune loop over several devices. The real flasher is
checked too: without a probe it fails fast with a clear message."""
import json
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, scons_env
from test_tune import _tiny_model

from tinykiln import KilnError, boards, flash, tune
from tinykiln.tune import bench, driver, measure, ports

BOARD = "mps2-an500"


class Adapter:
    """A TCP server playing a board's USB serial adapter: the device connects to `url` first, then
    the (fake) flasher pushes the board's console bytes to that connection."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(10)
        self.url = f"socket://127.0.0.1:{self.server.getsockname()[1]}"
        self.flashed = []

    def accept(self):
        """The device's connection (it opened the port before flashing); connections already
        closed again (the runner's check that the port opens) are skipped."""
        while True:
            conn, _ = self.server.accept()
            conn.settimeout(0.1)
            try:
                if conn.recv(1, socket.MSG_PEEK) == b"":
                    conn.close()
                    continue
            except socket.timeout:
                pass  # open and quiet: the device waiting for the board's output
            conn.settimeout(None)
            return conn

    def close(self):
        self.server.close()


def _qemu_flasher(adapters):
    """flash(board, elf, flasher, port): boot `elf` in QEMU, its console relayed to the port's
    adapter, and return at once (a flashed board runs on its own)."""
    from tinykiln.device import qemu

    def flash(board, elf, flasher, port):
        adapter = adapters[port]
        adapter.flashed.append(elf)
        conn = adapter.accept()
        session = qemu.start(boards.load_board(ROOT, BOARD), elf, serial="tcp")
        host, qport = session.url[len("socket://"):].rsplit(":", 1)
        console = socket.create_connection((host, int(qport)), timeout=60)

        def relay():
            try:
                for chunk in iter(lambda: console.recv(4096), b""):
                    conn.sendall(chunk)
            except OSError:
                pass  # the device closed the port once it had its line
            finally:
                session.wait(60)
                console.close()
                session.kill()
                # The board's serial adapter stays connected after the firmware ends: hang up only
                # when the device closes the port.
                conn.settimeout(60)
                try:
                    while conn.recv(64):
                        pass
                except OSError:
                    pass
                conn.close()

        threading.Thread(target=relay, daemon=True).start()

    return flash


def test_tune_on_two_port_devices_matches_qemu(tmp_path, monkeypatch):
    model = _tiny_model(tmp_path / "fc.tflite", conv=False)
    adapters = [Adapter(), Adapter()]
    monkeypatch.setattr(ports, "flash_elf", _qemu_flasher({a.url: a for a in adapters}))
    # USB enumeration is hardware too: each adapter stands for a probe with its own serial number
    monkeypatch.setattr(flash, "probe_serial", lambda port: f"SN{port.rsplit(':', 1)[1]}")
    sched = tmp_path / "s.json"
    opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / "build"), "model": str(model),
            "trials": "2", "devices": "1", "schedules": str(sched), "timeout": "60",
            "port": ",".join(a.url for a in adapters)}
    try:
        assert tune.main(ROOT, opts) == 0
    finally:
        for a in adapters:
            a.close()
    records = [json.loads(line) for line in
               (tmp_path / "build" / BOARD / "release" / "fc" / "tune" / "log.jsonl").read_text().splitlines()]
    assert len(records) == 4 and all(r["ok"] and r["via"] == "port" for r in records), records
    flashed = [elf for a in adapters for elf in a.flashed]
    assert len(flashed) == 4 and all(a.flashed for a in adapters)  # both boards measured
    # The counts and digests read over the port are the ones QEMU prints on stdout.
    by_elf = {}
    for elf in flashed:
        by_elf[elf] = measure.run_bench(boards.load_board(ROOT, BOARD), elf, 60)
    got = sorted((r["count"], r["unit"], r["digest"]) for r in records)
    assert got == sorted(by_elf.values())
    assert json.loads(sched.read_text())["kernels"]


def _bench_elf(tmp_path) -> Path:
    """One kernel benchmark firmware (the default knobs of the tiny model's first kernel), built
    the way tune.main builds them."""
    from tinykiln import codegen, ops, tflite

    graph = tflite.load(str(_tiny_model(tmp_path / "fc.tflite", conv=False)))
    call = ops.lower(graph).calls[0]
    (tmp_path / "kernel.c").write_text(codegen.kernel_c(call.spec))
    (tmp_path / "bench.c").write_text(bench.bench_c(graph, call))
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps([{"name": "bench", "sources": [str(tmp_path / "kernel.c"),
                                                                   str(tmp_path / "bench.c")]}]))
    opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / "build")}
    assert driver._scons(ROOT, opts, [f"tune_bench={manifest}"], jobs=2) == 0
    return tmp_path / "build" / BOARD / "release" / "bench" / "bench.elf"


def _fake_board_output(adapter, data: bytes):
    def flash(board, elf, flasher, port):
        conn = adapter.accept()
        if data:
            conn.sendall(data)
        threading.Timer(3, conn.close).start()  # the board stays connected for a while
    return flash


def test_a_silent_port_times_out_clearly():
    adapter = Adapter()
    board = boards.load_board(ROOT, BOARD)
    device = ports.PortDevice(board, adapter.url, flash=_fake_board_output(adapter, b""))
    started = time.monotonic()
    with pytest.raises(KilnError, match=r"bench\.elf on socket://.*silent device: nothing arrived "
                                        r"within 1 s"):
        device.run(Path("bench.elf"), timeout=1)
    assert time.monotonic() - started < 5
    adapter.close()


@pytest.mark.parametrize("data, message", [
    (b"tk: boot\r\nTKBENCH cou\x87t=12 unit=cyc\r\n", r"garbled result line .*TKBENCH cou"),
    (b"\x87\xf3\x00\xfe" * 40, r"no TKBENCH line within 1 s\. The bytes are mostly not text: a "
                               r"wrong baud rate"),
    (b"tk: boot\r\ntk: exit 3\r\n", r"exited with status 3 before its result"),
])
def test_a_garbled_or_failing_console_is_a_clear_error(data, message):
    adapter = Adapter()
    board = boards.load_board(ROOT, BOARD)
    device = ports.PortDevice(board, adapter.url, flash=_fake_board_output(adapter, data))
    with pytest.raises(KilnError, match=message):
        device.run(Path("bench.elf"), timeout=1)
    adapter.close()


def test_read_result_skips_a_banner_and_reads_the_line():
    import serial

    conn = serial.serial_for_url("loop://", timeout=0.2)
    conn.write(b"tk: nucleo-f746zg 216 MHz\r\nTKBENCH count=1234 unit=cpu-cycles "
               b"digest=00112233aabbccdd\r\n")
    assert ports.read_result(conn, 2, "x") == (1234, "cpu-cycles", "00112233aabbccdd")


@pytest.mark.parametrize("flasher", ["openocd", "pyocd"])
def test_no_probe_fails_fast_with_the_flashers_message(tmp_path, flasher):
    """The real flash step on a hardware board with nothing attached."""
    import shutil

    elf = tmp_path / "bench.elf"
    shutil.copy("/bin/true", elf)  # any ELF: the flasher stops before reading it (no probe)
    board = boards.load_board(ROOT, "nucleo-f746zg")
    device = ports.PortDevice(board, "loop://", flasher=flasher)
    started = time.monotonic()
    with pytest.raises(KilnError, match=f"flashing nucleo-f746zg with {flasher}: no debug probe found"):
        device.run(elf, timeout=5)
    assert time.monotonic() - started < 60


def test_port_errors_are_clear():
    with pytest.raises(KilnError, match="cannot open the console port /dev/ttyNOPE0"):
        ports.open_port("/dev/ttyNOPE0")
    with pytest.raises(KilnError, match="cannot open the console port /dev/ttyNOPE0"):
        tune.main(ROOT, {"board": "nucleo-f746zg", "variant": "release", "builddir": "build",
                         "model": "cifar10", "port": "/dev/ttyNOPE0"})
    with pytest.raises(KilnError, match="listed twice"):
        ports.parse_ports("/dev/ttyACM0, /dev/ttyACM0")
    assert ports.parse_ports("/dev/ttyACM0,serial:/dev/ttyACM1:921600") == \
        ["/dev/ttyACM0", "serial:/dev/ttyACM1:921600"]
    with pytest.raises(KilnError, match="give its console with port=/dev/ttyACM0"):
        tune.main(ROOT, {"board": "nucleo-f746zg", "variant": "release", "builddir": "build",
                         "model": "cifar10"})


def test_rpc_device_server_with_a_port_flashes_and_reads(tmp_path, monkeypatch):
    """What a `tune_rpc --port URL` server runs per benchmark (tune_rpc.measure): the port device,
    not QEMU's stdout; same result as run_bench."""
    import subprocess

    from tinykiln.tune import rpc as tune_rpc

    elf = _bench_elf(tmp_path)
    adapter = Adapter()
    monkeypatch.setattr(ports, "flash_elf", _qemu_flasher({adapter.url: adapter}))
    monkeypatch.setenv(tune_rpc.CONSOLE_ENV, adapter.url)
    try:
        got = tune_rpc.measure(BOARD, elf, 30)
    finally:
        adapter.close()
    assert adapter.flashed == [elf]
    assert got == measure.run_bench(boards.load_board(ROOT, BOARD), elf, 30)

    def server(*args):
        return subprocess.run([sys.executable, "-m", "tinykiln.tune_rpc", "--tracker",
                               "127.0.0.1:1", *args], capture_output=True, text=True, timeout=60,
                              env=scons_env(), stdin=subprocess.DEVNULL)

    no_port = server("--board", "nucleo-f746zg")
    assert no_port.returncode == 2 and "give the real board's console with --port" in no_port.stderr
    bad_port = server("--board", "nucleo-f746zg", "--port", "/dev/ttyNOPE0")
    assert bad_port.returncode == 2 and "cannot open the console port /dev/ttyNOPE0" in bad_port.stderr


def test_several_ports_need_to_know_their_probes(tmp_path):
    board = boards.load_board(ROOT, "nucleo-f746zg")
    assert flash.probe_serial("socket://127.0.0.1:5") is None
    assert flash.probe_serial("/dev/ttyNOPE0") is None
    with pytest.raises(KilnError, match="cannot tell which debug probe flashes the board of "
                                        "socket://127.0.0.1:5, socket://127.0.0.1:6"):
        ports.runner(board, ["socket://127.0.0.1:5", "socket://127.0.0.1:6"])
    # One port: the first probe found is the board's (nothing to choose from).
    assert callable(ports.runner(board, ["loop://"]))
    elf = tmp_path / "bench.elf"
    import shutil

    shutil.copy("/bin/true", elf)
    openocd = flash.openocd_command(board, elf, "066DFF123")
    assert openocd[-4:-2] == ["-c", "adapter serial 066DFF123"] and openocd[-1].startswith("program ")
    pyocd = flash.pyocd_command(board, elf, "066DFF123")
    assert pyocd[pyocd.index("load") + 1:pyocd.index("load") + 3] == ["-u", "066DFF123"]


@pytest.mark.parametrize("flasher", ["openocd", "pyocd"])
def test_flashing_a_named_probe_that_is_absent_fails_fast(tmp_path, monkeypatch, flasher):
    import shutil

    elf = tmp_path / "bench.elf"
    shutil.copy("/bin/true", elf)
    monkeypatch.setattr(flash, "probe_serial", lambda port: "066DFF123")
    board = boards.load_board(ROOT, "nucleo-f746zg")
    started = time.monotonic()
    with pytest.raises(KilnError, match=f"with {flasher} through the probe with serial 066DFF123 "
                                        f"\\(the one of /dev/ttyACM7\\) failed"):
        ports.flash_elf(board, elf, flasher, "/dev/ttyACM7")
    assert time.monotonic() - started < 60
