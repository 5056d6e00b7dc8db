"""Build, boot and size: real toolchains, real QEMU."""
import json
import time

import pytest
import serial

from conftest import ROOT
from tinykiln import boards
from tinykiln.device import qemu

EMULATED = [b for b in boards.board_names(ROOT) if boards.load_board(ROOT, b).emulator]
ALL_BOARDS = boards.board_names(ROOT)


def elf_of(builddir, board, variant="release", target="selftest"):
    return builddir / board / variant / target / f"{target}.elf"


def read_console(board_name, elf, timeout=30.0):
    """Boot in QEMU with the console on a TCP port, read it with pyserial; (text, status)."""
    board = boards.load_board(ROOT, board_name)
    with qemu.start(board, elf, serial="tcp") as session:
        assert session.url.startswith("socket://127.0.0.1:")
        conn = serial.serial_for_url(session.url, timeout=0.2)
        text = b""
        deadline = time.monotonic() + timeout
        with conn:
            # Byte by byte: pyserial's socket:// raises when QEMU exits and closes the port, and a
            # bigger read would lose what it had gathered before the close.
            while time.monotonic() < deadline:
                try:
                    text += conn.read(1)
                except serial.SerialException:
                    break
        status = session.wait(timeout=5)
    return text.decode("utf-8", "replace"), status


@pytest.mark.parametrize("board", ALL_BOARDS)
def test_selftest_builds_warning_free(scons, kiln_build_dir, board):
    r = scons(f"board={board}", "werror=1")
    assert r.returncode == 0, r.output
    assert "warning" not in r.output.lower()
    report = json.loads((kiln_build_dir / board / "release" / "selftest" / "report.json").read_text())
    assert report["board"] == board and report["target"] == "selftest"
    b = boards.load_board(ROOT, board)
    if not b.is_host:
        assert {r["name"] for r in report["regions"]} == {r.name for r in b.memory}
        assert all(r["used"] <= r["size"] for r in report["regions"])
        assert all(r["used"] > 0 for r in report["regions"] if {"text", "stack"} & set(r["holds"]))
        assert "%" in r.output and "[" in r.output  # the per-region bars
    else:
        assert report["totals"]["text"] > 0


@pytest.mark.parametrize("board", EMULATED)
def test_emulated_board_boots_and_prints_banner_over_tcp_serial(scons, kiln_build_dir, board):
    r = scons(f"board={board}", "werror=1")
    assert r.returncode == 0, r.output
    text, status = read_console(board, elf_of(kiln_build_dir, board))
    assert "== tinykiln selftest ==" in text, text
    assert f"board:    {board}" in text
    assert "cycles:   check ok" in text and "selftest: PASS" in text, text
    assert status == 0


def test_qemu_cycle_count_is_exact_instruction_count(scons, kiln_build_dir):
    """With -icount shift=0 the 2-instruction loop reads 2 per iteration, up to one tick (40)."""
    r = scons("board=mps2-an500", "werror=1")
    assert r.returncode == 0, r.output
    text, status = read_console("mps2-an500", elf_of(kiln_build_dir, "mps2-an500"))
    line = next(x for x in text.splitlines() if "iterations of a 2-instruction loop" in x)
    one = int(line.split("loop: ")[1].split()[0])
    assert abs(one - 200000) <= 80, line


def test_host_run_exits_with_status(scons):
    r = scons("board=host", "run=1")
    assert r.returncode == 0, r.output
    assert "selftest: PASS" in r.output


@pytest.mark.parametrize("board,expect", [
    ("mps2-an500", ["FAULT: UsageFault", "CFSR.UNALIGNED", "PC   0x", "LR   0x", "HFSR", "MMFAR", "BFAR"]),
    ("pynq-z1", ["FAULT: data abort", "DFSR 0x00000001 (alignment fault)", "DFAR 0x", "IFSR", "PC   0x"]),
    ("host", ["FAULT: segmentation fault"]),
])
def test_deliberate_fault_is_reported_and_fails_the_run(scons, tmp_path, board, expect):
    flasher = ["flasher=qemu"] if board == "pynq-z1" else []
    r = scons(f"board={board}", "run=1", "defines=TK_SELFTEST_FAULT", *flasher, builddir=tmp_path)
    assert r.returncode == 3, r.output  # TK_EXIT_FAULT, passed through scons
    for word in expect:
        assert word in r.output, r.output
    assert "selftest: PASS" not in r.output


def test_region_overflow_names_region_bytes_and_biggest_sections(scons, tmp_path):
    r = scons("board=nucleo-f412zg", "defines=TK_SELFTEST_BIG_DATA=307200", builddir=tmp_path)
    assert r.returncode != 0
    # 300 KB of .bss + the 16 KB stack in the 256 KB SRAM.
    assert "region SRAM of board nucleo-f412zg overflowed by 61448 bytes" in r.output, r.output
    assert "biggest sections in SRAM: .bss 307208 bytes" in r.output
    assert "big_data (.bss) 307200 bytes" in r.output
    assert "Traceback" not in r.output


@pytest.mark.parametrize("board,variant", [(b, v) for b in ALL_BOARDS for v in boards.variant_names(ROOT)
                                           if v != "release" and boards.load_variant(ROOT, v).applies_to(b)])
def test_every_variant_builds_warning_free(scons, kiln_build_dir, board, variant):
    r = scons(f"board={board}", f"variant={variant}", "werror=1")
    assert r.returncode == 0, r.output
    assert "warning" not in r.output.lower()
    assert (kiln_build_dir / board / variant / "selftest" / "report.json").is_file()


def test_ext_mem_variant_places_weights_in_qspi_and_activations_in_sdram(scons, kiln_build_dir):
    r = scons("board=disco-h747i", "variant=ext-mem", "werror=1")
    assert r.returncode == 0, r.output
    report = json.loads((kiln_build_dir / "disco-h747i" / "ext-mem" / "selftest" / "report.json").read_text())
    holds = {reg["name"]: reg["holds"] for reg in report["regions"]}
    assert holds["QSPI"] == ["weights"] and holds["SDRAM"] == ["activations"]
    assert holds["FLASH"] == ["text"]


def test_noop_rebuild_rebuilds_nothing(scons):
    first = scons("board=mps2-an500")
    assert first.returncode == 0, first.output
    start = time.monotonic()
    again = scons("board=mps2-an500")
    elapsed = time.monotonic() - start
    assert again.returncode == 0, again.output
    assert not [x for x in again.output.splitlines() if x.startswith(("CC ", "AS ", "LD ", "GEN "))], again.output
    assert "is up to date" in again.output
    print(f"no-op rebuild: {elapsed:.2f} s")


def test_flag_change_rebuilds(scons, tmp_path):
    assert scons("board=host", builddir=tmp_path).returncode == 0
    r = scons("board=host", "defines=SOMETHING_NEW", builddir=tmp_path)
    assert r.returncode == 0
    assert "CC  runtime/apps/selftest/main.c" in r.output


def test_kiln_firmware_hook_adds_sources_include_dirs_and_defines(tmp_path):
    """The hook the model pipeline uses: extra (generated) C, its include dirs and macros."""
    from conftest import run_scons

    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "extra.h").write_text("#define EXTRA_SCALE 3\n")
    (tmp_path / "extra.c").write_text(
        '#include "extra.h"\n#include "tk_board.h"\n'
        "#if EXTRA_VALUE != 42\n#error EXTRA_VALUE not passed\n#endif\n"
        "int extra_scaled(int x) { return x * EXTRA_SCALE * EXTRA_VALUE; }\n")
    (tmp_path / "SConstruct").write_text(
        'env = Environment(tools=["kiln"])\n'
        f'fw = env.KilnFirmware("hooked", sources=["{tmp_path}/extra.c"], app="selftest",\n'
        f'                      cpppath=["{tmp_path}/inc"], cppdefines=["EXTRA_VALUE=42"])\n'
        "env.Default(fw)\nenv.KilnDeploy(fw)\n")
    build = tmp_path / "build"
    r = run_scons("-f", str(tmp_path / "SConstruct"), f"--site-dir={ROOT}/site_scons", "board=mps2-an500", "run=1",
                  "werror=1", builddir=build)
    assert r.returncode == 0, r.output
    assert "CC  " in r.output and "extra.c" in r.output
    assert "selftest: PASS" in r.output
    out = build / "mps2-an500" / "release" / "hooked"
    assert (out / "hooked.elf").is_file() and (out / "report.json").is_file()
    assert list(out.glob("obj/**/extra.o"))


def test_unknown_app_is_a_clear_error(tmp_path):
    from conftest import run_scons

    (tmp_path / "SConstruct").write_text(
        'from tinykiln import KilnError\n'
        'env = Environment(tools=["kiln"])\n'
        'try:\n    env.KilnFirmware("x", app="selftes")\n'
        'except KilnError as e:\n    print("ERR", e)\n')
    r = run_scons("-f", str(tmp_path / "SConstruct"), f"--site-dir={ROOT}/site_scons", builddir=tmp_path / "b")
    assert "ERR unknown app 'selftes'. Did you mean 'selftest'?" in r.output, r.output
