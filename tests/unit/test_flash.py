"""flash=1 / run=1: methods per board, and clear, quick errors when no probe is attached."""
import time

import pytest

from conftest import ROOT
from tinykiln import KilnError, boards, device, flash


@pytest.mark.parametrize("board,flasher", [
    ("nucleo-f746zg", "openocd"),
    ("disco-h747i", "openocd"),
    ("nucleo-f412zg", "openocd"),
    ("pynq-z1", "openocd"),
    ("nucleo-f412zg", "pyocd"),
    ("nucleo-f746zg", "pyocd"),
])
def test_flash_without_probe_fails_fast_and_clearly(scons, board, flasher):
    start = time.monotonic()
    r = scons(f"board={board}", "flash=1", f"flasher={flasher}", timeout=120)
    elapsed = time.monotonic() - start
    assert r.returncode != 0
    assert f"flashing {board} with {flasher}: no debug probe found" in r.output, r.output
    assert "Traceback" not in r.output
    assert elapsed < 60
    if board == "nucleo-f746zg" and flasher == "pyocd":
        assert "pyocd pack install stm32f746zg" in r.output


def test_flasher_not_offered_by_board_is_an_error(scons):
    r = scons("board=mps2-an500", "flash=1", "flasher=openocd", timeout=120)
    assert r.returncode != 0
    assert "flasher=openocd is not available for board mps2-an500; it supports: qemu" in r.output


def test_pynq_openocd_loads_the_elf_at_its_entry_with_the_project_cfg(scons, kiln_build_dir):
    assert scons("board=pynq-z1").returncode == 0
    b = boards.load_board(ROOT, "pynq-z1")
    elf = kiln_build_dir / "pynq-z1" / "release" / "selftest" / "selftest.elf"
    cmd = flash.openocd_command(b, elf)
    assert cmd[cmd.index("-f") + 1] == str(b.dir / "openocd.cfg")
    assert "target/zynq_7000.cfg" in (b.dir / "openocd.cfg").read_text()
    assert f"load_image {elf.resolve()} 0 elf; resume 0x{flash.entry_point(elf):08x}" in cmd[-1]
    assert b.region("DDR").origin <= flash.entry_point(elf) < b.region("DDR").end


def test_qemu_flash_runs_and_returns_status(scons):
    r = scons("board=mps2-an386", "flash=1", timeout=120)
    assert r.returncode == 0, r.output
    assert "selftest: PASS" in r.output


def test_qemu_timeout_kills_with_clear_message(scons, kiln_build_dir):
    assert scons("board=mps2-an500").returncode == 0
    from tinykiln.device import qemu

    b = boards.load_board(ROOT, "mps2-an500")
    elf = kiln_build_dir / "mps2-an500" / "release" / "selftest" / "selftest.elf"
    with qemu.start(b, elf, serial="tcp") as session:  # waits for a client that never comes
        with pytest.raises(KilnError, match="did not exit within 0.5 s; QEMU was killed"):
            session.wait(timeout=0.5)
        assert session.proc.poll() is not None


def test_choose_method_defaults_to_first():
    pynq = boards.load_board(ROOT, "pynq-z1")
    assert device.kind(pynq, device.DeviceOptions()) == "openocd"
    assert device.kind(pynq, device.DeviceOptions(flasher="qemu")) == "qemu"


def test_ext_mem_elf_has_qspi_bytes_and_pyocd_refuses_them(scons, kiln_build_dir):
    """disco-h747i ext-mem puts the weights in QSPI NOR: openocd (stmqspi bank) may write them,
    pyocd has no loader for them and must say so instead of flashing half an image."""
    r = scons("board=disco-h747i", "variant=ext-mem", "model=cifar10", timeout=600)
    assert r.returncode == 0, r.output
    b = boards.load_board(ROOT, "disco-h747i")
    elf = kiln_build_dir / "disco-h747i" / "ext-mem" / "cifar10" / "cifar10.elf"
    found = flash.external_bytes(b, elf)
    # cifar10's weights: 89,440 bytes of int8 weights plus the per-channel constants (optimize=balanced)
    assert set(found) == {"QSPI"} and found["QSPI"] > 89_440
    release = kiln_build_dir / "disco-h747i" / "release" / "cifar10" / "cifar10.elf"
    assert scons("board=disco-h747i", "model=cifar10", timeout=600).returncode == 0
    assert flash.external_bytes(b, release) == {}
    r = scons("board=disco-h747i", "variant=ext-mem", "model=cifar10", "flash=1", "flasher=pyocd",
              timeout=120)
    assert r.returncode != 0
    assert "external flash that pyocd cannot program" in r.output, r.output
    assert "flasher=openocd" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("flasher", ["openocd", "pyocd"])
def test_flash_through_a_named_probe_that_is_absent_fails_fast_naming_it(scons, flasher):
    """probe= picks one debug probe among several on the host; an absent one is a clear error."""
    start = time.monotonic()
    r = scons("board=nucleo-f746zg", "flash=1", f"flasher={flasher}", "probe=066DFF123", timeout=120)
    assert r.returncode != 0
    assert (f"flashing nucleo-f746zg with {flasher} through the probe with serial 066DFF123 failed"
            in r.output), r.output
    assert "pyocd list" in r.output and "Traceback" not in r.output
    assert time.monotonic() - start < 60


def test_probe_choice_and_commands(tmp_path):
    b = boards.load_board(ROOT, "nucleo-f746zg")
    elf = tmp_path / "fw.elf"
    elf.write_bytes(open("/bin/true", "rb").read())
    # an explicit serial wins; a port with no USB serial (a URL, an absent device) chooses nothing
    assert flash.choose_probe("066DFF123", "socket://127.0.0.1:5") == "066DFF123"
    assert flash.choose_probe("", "socket://127.0.0.1:5") is None
    assert flash.choose_probe("", "/dev/ttyNOPE0") is None
    assert flash.choose_probe("", "") is None
    with pytest.raises(KilnError, match="probe='a b' is not a USB serial number"):
        flash.choose_probe("a b")
    openocd = flash.openocd_command(b, elf, "066DFF123")
    assert openocd[-4:] == ["-c", "adapter serial 066DFF123", "-c", openocd[-1]]
    assert openocd[-1].startswith("program ")
    assert "adapter serial" not in " ".join(flash.openocd_command(b, elf))
    pyocd = flash.pyocd_command(b, elf, "066DFF123")
    assert pyocd[pyocd.index("load") + 1:pyocd.index("load") + 3] == ["-u", "066DFF123"]
    assert "-u" not in flash.pyocd_command(b, elf)
