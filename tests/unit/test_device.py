"""tinykiln.device: the one decision where firmware runs (every case, errors included), and a
Device owning its processes: QEMU stops when the `with` block is left by an exception, and dies
with the process that started it even when that one is killed with SIGKILL."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from types import SimpleNamespace

import pytest
from conftest import ROOT, run_scons, scons_env

from tinykiln import KilnError, boards, device
from tinykiln.device import DeviceOptions

RUN, SESSION, BENCH = device.RUN, device.SESSION, device.BENCH


def board(name):
    return boards.load_board(ROOT, name)


def stub(methods, emulator=None, is_host=False):
    """A board with the facts the decision reads (the real boards do not cover every case)."""
    return SimpleNamespace(name="stub", flash_methods=methods, emulator=emulator, is_host=is_host)


@pytest.mark.parametrize("name, options, purpose, expected", [
    # run=1 / flash=1 of an app: flasher=, else the board's first method
    ("mps2-an500", DeviceOptions(), RUN, "qemu"),
    ("netduinoplus2", DeviceOptions(), RUN, "qemu"),
    ("netduinoplus2", DeviceOptions(flasher="openocd"), RUN, "openocd"),
    ("pynq-z1", DeviceOptions(), RUN, "openocd"),  # hardware first
    ("pynq-z1", DeviceOptions(flasher="qemu"), RUN, "qemu"),
    ("host", DeviceOptions(), RUN, "host"),
    ("nucleo-f746zg", DeviceOptions(), RUN, "openocd"),
    ("nucleo-f746zg", DeviceOptions(flasher="pyocd", flash=True), RUN, "pyocd"),
    # a model session: QEMU unless port=, flash=1 or flasher= name hardware
    ("pynq-z1", DeviceOptions(), SESSION, "qemu"),
    ("pynq-z1", DeviceOptions(port="/dev/ttyACM0"), SESSION, "openocd"),
    ("pynq-z1", DeviceOptions(port="/dev/ttyACM0", flash=True), SESSION, "openocd"),
    ("netduinoplus2", DeviceOptions(flasher="openocd", port="socket://127.0.0.1:5"), SESSION, "openocd"),
    ("mps2-an500", DeviceOptions(port="/dev/ttyACM0"), SESSION, "qemu"),  # its only method
    ("mps2-an500", DeviceOptions(flash=True), SESSION, "qemu"),
    ("host", DeviceOptions(), SESSION, "host"),
    ("host", DeviceOptions(port="/dev/ttyACM0"), SESSION, "host"),
    ("nucleo-f746zg", DeviceOptions(port="/dev/ttyACM0"), SESSION, "openocd"),
    ("nucleo-f746zg", DeviceOptions(port="/dev/ttyACM0", flasher="pyocd"), SESSION, "pyocd"),
    # a tune=1 benchmark: tracker= an RPC device, port= the real board, else here
    ("mps2-an500", DeviceOptions(), BENCH, "qemu"),
    ("pynq-z1", DeviceOptions(), BENCH, "qemu"),
    ("host", DeviceOptions(), BENCH, "host"),
    ("nucleo-f746zg", DeviceOptions(port="/dev/ttyACM0"), BENCH, "openocd"),
    ("nucleo-f746zg", DeviceOptions(port="/dev/ttyACM0", flasher="pyocd"), BENCH, "pyocd"),
    ("netduinoplus2", DeviceOptions(port="/dev/ttyACM0"), BENCH, "openocd"),  # its first probe
    ("nucleo-f746zg", DeviceOptions(tracker="127.0.0.1:9190"), BENCH, "rpc"),
    ("mps2-an500", DeviceOptions(tracker="127.0.0.1:9190", port="/dev/ttyACM0"), BENCH, "rpc"),
])
def test_the_kind_of_device(name, options, purpose, expected):
    assert device.kind(board(name), options, purpose) == expected


@pytest.mark.parametrize("the_board, options, purpose, message", [
    ("mps2-an500", DeviceOptions(flasher="openocd"), RUN,
     "flasher=openocd is not available for board mps2-an500; it supports: qemu"),
    ("mps2-an500", DeviceOptions(flasher="openocd"), SESSION,
     "flasher=openocd is not available for board mps2-an500; it supports: qemu"),
    ("nucleo-f746zg", DeviceOptions(), SESSION,
     "board nucleo-f746zg is hardware: validation talks to it over its console; give port=/dev/ttyACM0"),
    ("nucleo-f746zg", DeviceOptions(flash=True), SESSION, "is hardware: .* give port="),
    ("pynq-z1", DeviceOptions(flasher="openocd"), SESSION, "board pynq-z1 is hardware"),
    ("nucleo-f746zg", DeviceOptions(), BENCH,
     "tune=1 on nucleo-f746zg \\(no emulator\\) measures on the board itself: give its console with port="),
    ("mps2-an500", DeviceOptions(port="/dev/ttyACM0"), BENCH,
     "board mps2-an500 has no flash method for a real board .*: tune=1 port= cannot program it"),
    ("netduinoplus2", DeviceOptions(port="/dev/ttyACM0", flasher="qemu"), BENCH,
     "flasher=qemu does not program a board: with port= pick one of openocd"),
    ("nucleo-f746zg", DeviceOptions(port="/dev/ttyACM0", flasher="qemu"), BENCH,
     "flasher=qemu is not available for board nucleo-f746zg; it supports: openocd, pyocd"),
    (stub([]), DeviceOptions(), RUN, "board stub has no flash method in board.toml"),
    (stub(["qemu"]), DeviceOptions(), RUN, "board stub has no emulator"),
    (stub(["qemu"]), DeviceOptions(flash=True), SESSION, "board stub has no emulator"),
])
def test_a_wrong_combination_is_a_clear_error(the_board, options, purpose, message):
    b = board(the_board) if isinstance(the_board, str) else the_board
    with pytest.raises(KilnError, match=message):
        device.kind(b, options, purpose)
    with pytest.raises(KilnError, match=message):
        device.open(b, options, purpose)  # open decides the same way


def test_an_unknown_purpose_is_a_programming_error():
    with pytest.raises(ValueError, match="purpose"):
        device.kind(board("mps2-an500"), DeviceOptions(), "flash")


def test_local_kind_is_where_a_model_runs_without_options():
    assert [device.local_kind(board(n)) for n in ("mps2-an500", "pynq-z1", "host", "nucleo-f746zg")] == \
        ["qemu", "qemu", "host", None]
    assert device.local_kind(stub([])) is None


def test_open_gives_the_device_of_the_kind():
    assert isinstance(device.open(board("mps2-an500"), DeviceOptions()), device.QemuDevice)
    assert isinstance(device.open(board("host"), DeviceOptions()), device.HostDevice)
    probe = device.open(board("nucleo-f746zg"), DeviceOptions(flasher="pyocd", port="loop://"))
    assert isinstance(probe, device.ProbeDevice) and probe.kind == "pyocd" and probe.serial == "loop://"
    from tinykiln.device.rpc import RpcDevice

    assert isinstance(device.open(board("mps2-an500"), DeviceOptions(tracker="h:1"), BENCH), RpcDevice)


def test_options_from_the_scons_dict():
    opts = {"flasher": "pyocd", "port": "/dev/ttyACM1", "probe": "066DFF", "flash": True, "timeout": "30",
            "tracker": "", "run": True, "n": "10"}
    assert DeviceOptions.from_opts(opts) == DeviceOptions(flasher="pyocd", port="/dev/ttyACM1", probe="066DFF",
                                                          flash=True, timeout=30.0)
    assert DeviceOptions.from_opts({}) == DeviceOptions()
    with pytest.raises(KilnError, match="timeout=soon takes a number"):
        DeviceOptions.from_opts({"timeout": "soon"})


@pytest.fixture(scope="module")
def selftest_elf(tmp_path_factory):
    """mps2-an500's self-test, built in a folder of its own (the session's build folder is left to
    the tests that check what a first build prints)."""
    build = tmp_path_factory.mktemp("device-build")
    assert run_scons("board=mps2-an500", builddir=build).returncode == 0
    return build / "mps2-an500" / "release" / "selftest" / "selftest.elf"


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie waits for a parent's wait: it runs no more)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _qemus_of(elf) -> list[int]:
    """Running QEMUs whose command line names `elf`."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
        except OSError:
            continue
        if argv and b"qemu-system" in argv[0] and str(elf).encode() in argv and _running(int(entry)):
            pids.append(int(entry))
    return pids


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_device_stops_its_qemu_when_the_block_raises(selftest_elf, error):
    with pytest.raises(error):
        with device.open(board("mps2-an500"), DeviceOptions(), SESSION) as dev:
            dev.start(selftest_elf, device.SERIAL)  # QEMU waits for a console client: it runs on
            pid = dev.session.proc.pid
            assert _running(pid) and dev.serial.startswith("socket://127.0.0.1:")
            raise error("in the middle of a session")
    assert not _running(pid)
    assert _qemus_of(selftest_elf) == []


def test_qemu_dies_with_the_process_that_started_it(selftest_elf, tmp_path):
    """A process holding a running QEMU is killed with SIGKILL (no cleanup runs in it): the kernel
    kills its QEMU too (PR_SET_PDEATHSIG), no orphan remains."""
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        from tinykiln import boards, device
        board = boards.load_board({str(ROOT)!r}, "mps2-an500")
        dev = device.open(board, device.DeviceOptions(), device.SESSION)
        dev.start({str(selftest_elf)!r}, device.SERIAL)
        print(dev.session.proc.pid, flush=True)
        time.sleep(600)
    """))
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env=scons_env(), stdin=subprocess.DEVNULL)
    try:
        qemu_pid = int(holder.stdout.readline())
        assert _running(qemu_pid) and qemu_pid in _qemus_of(selftest_elf)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(qemu_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(qemu_pid), "QEMU outlived the process that started it"
        assert _qemus_of(selftest_elf) == []
    finally:
        if holder.poll() is None:
            holder.kill()


def _sleeper(tmp_path):
    """A stand-in for a host build that never ends by itself."""
    prog = tmp_path / "firmware"
    prog.write_text("#!/bin/sh\nexec sleep 600\n")
    prog.chmod(0o755)
    return prog


@pytest.mark.parametrize("console", [device.TERMINAL, device.CAPTURE, device.SERIAL])
def test_a_host_device_stops_its_process_when_the_block_raises(tmp_path, console):
    with pytest.raises(KeyboardInterrupt):
        with device.open(board("host"), DeviceOptions(), SESSION) as dev:
            dev.start(_sleeper(tmp_path), console)
            pid = dev.proc.pid
            assert _running(pid)
            raise KeyboardInterrupt
    assert not _running(pid)


def test_a_host_run_past_its_timeout_is_killed_with_a_clear_error(tmp_path):
    with device.open(board("host"), DeviceOptions(), RUN) as dev:
        dev.start(_sleeper(tmp_path), device.CAPTURE)
        with pytest.raises(KilnError, match="host: the program did not exit within 0.2 s and was killed"):
            dev.wait(0.2)
        assert not _running(dev.proc.pid)


def test_a_host_process_dies_with_the_process_that_started_it(tmp_path):
    script = tmp_path / "holder.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from tinykiln import boards, device
        dev = device.open(boards.load_board({str(ROOT)!r}, "host"), device.DeviceOptions())
        dev.start({str(_sleeper(tmp_path))!r}, device.CAPTURE)
        print(dev.proc.pid, flush=True)
        time.sleep(600)
    """))
    holder = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                              env=scons_env(), stdin=subprocess.DEVNULL)
    try:
        pid = int(holder.stdout.readline())
        assert _running(pid)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(pid), "the host process outlived the process that started it"
    finally:
        if holder.poll() is None:
            holder.kill()


def test_a_missing_emulator_or_flasher_names_its_package(selftest_elf, monkeypatch):
    """Without qemu-system-arm or openocd on PATH the error names the Debian package (not "run
    ./kiln once", which the user may just have done)."""
    from tinykiln import flash

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(KilnError, match="qemu-system-arm, the emulator, is not on PATH: install the Debian "
                                        "package qemu-system-arm"):
        with device.open(board("mps2-an500"), DeviceOptions(), device.SESSION) as dev:
            dev.start(selftest_elf, device.SERIAL)
    with pytest.raises(KilnError, match="openocd, the tool for flashing nucleo-f746zg, is not on PATH: install "
                                        "the Debian package openocd"):
        flash.flash_openocd(board("nucleo-f746zg"), selftest_elf)
