"""Board and variant files: they load, their memory maps are sane, bad names are clear errors, and each
hardware fact typed once in board.toml becomes the macros, sources and linker script the build uses."""
import shutil
import subprocess
import tomllib

import pytest

from conftest import ROOT
from tinykiln import KilnError, boards

BOARDS = boards.board_names(ROOT)
VARIANTS = boards.variant_names(ROOT)


def applicable(board):
    return [v for v in VARIANTS if boards.load_variant(ROOT, v).applies_to(board)]


@pytest.mark.parametrize("name", BOARDS)
def test_board_loads_with_non_overlapping_regions(name):
    b = boards.load_board(ROOT, name)
    assert b.core and b.clock_hz > 0 and b.flash_methods
    regions = sorted(b.memory, key=lambda r: r.origin)
    for a, c in zip(regions, regions[1:]):
        assert a.end <= c.origin, f"{a.name} overlaps {c.name}"
    for v in applicable(name):
        t = boards.resolve(ROOT, name, v)
        if not b.is_host:
            script = boards.memory_script(t)
            for role in boards.PLACEMENT_ROLES:
                assert t.placement[role] in [r.name for r in b.memory]
            assert "REGION_WEIGHTS" in script and "REGION_ACT" in script


def board_copy(tmp_path, name, edit=lambda text: text):
    """(root, name) of a copy of boards/<name> under tmp_path (sharing boards/common), board.toml edited."""
    (tmp_path / "boards").mkdir()
    (tmp_path / "boards" / "common").symlink_to(ROOT / "boards" / "common")
    shutil.copytree(ROOT / "boards" / name, tmp_path / "boards" / name)
    toml = tmp_path / "boards" / name / "board.toml"
    toml.write_text(edit(toml.read_text()))
    return tmp_path, name


def test_console_pins_and_clocks_become_macros_in_the_typed_order():
    # The order is the command line's: the debug variant (-g3) records it in .debug_macro.
    t = boards.resolve(ROOT, "netduinoplus2", "debug")
    assert t.defines == [
        "TK_UART_BASE=0x40011000u", "TK_UART_CLOCK_HZ=16000000u", "TK_SYSTICK_HZ=168000000u",
        "TK_EXIT_SEMIHOSTING", "TK_CONSOLE_GPIO=0x40020000u", "TK_CONSOLE_GPIO_BIT=0",
        "TK_CONSOLE_TX_PIN=9", "TK_CONSOLE_RX_PIN=10", "TK_CONSOLE_AF=7", "TK_CONSOLE_APB2",
        "TK_CONSOLE_APB_BIT=4", "TK_DEBUG=1", "TK_CLOCK_HZ=168000000u", "TK_CONSOLE_BAUD=115200u"]
    f746 = boards.load_board(ROOT, "nucleo-f746zg")
    assert f746.console["base"] == 0x40004800 and f746.console["apb"] == 1
    assert f746.defines[:4] == ["TK_UART_BASE=0x40004800u", "TK_UART_CLOCK_HZ=54000000u",  # APB1 at 216 MHz
                                "TK_SYSTICK_HZ=216000000u", "TK_M7_CACHES"]
    assert boards.load_board(ROOT, "nucleo-f746zg", "reset").defines[:3] == [
        "TK_UART_BASE=0x40004800u", "TK_UART_CLOCK_HZ=16000000u", "TK_SYSTICK_HZ=16000000u"]
    assert "TK_CONSOLE_APB_BIT=18" in f746.defines and "TK_CONSOLE_APB2" not in f746.defines
    assert boards.load_board(ROOT, "pynq-z1").defines == [
        "TK_UART_BASE=0xE0000000u", "TK_UART_REF_HZ=100000000u", "TK_GTIMER_HZ=100000000u",
        "TK_DDR_END=0x20000000u"]
    assert boards.load_board(ROOT, "host").defines == []


@pytest.mark.parametrize("name", BOARDS)
def test_every_clock_and_base_is_typed_once(name):
    b = boards.load_board(ROOT, name)
    if b.is_host:
        return
    assert f"TK_UART_BASE=0x{b.console['base']:08X}u" in b.defines
    if b.arch == "cortex-m":  # SysTick counts the processor clock
        assert f"TK_SYSTICK_HZ={b.clock_hz}u" in b.defines
    assert ("TK_M7_CACHES" in b.defines) == (b.core == "cortex-m7")
    assert ("TK_EXIT_SEMIHOSTING" in b.defines) == (b.arch == "cortex-m" and b.emulator is not None)
    with open(b.dir / "board.toml", "rb") as f:
        typed = tomllib.load(f)
    assert not [d for d in typed.get("defines", []) if d.startswith(("TK_UART", "TK_SYSTICK", "TK_CONSOLE"))]
    typed_sources = [(b.dir / s).resolve() for s in typed.get("sources", [])]
    assert b.sources[:len(typed_sources)] == typed_sources  # the board's own parts, then
    clock = 1 if b.clock.source else 0  # clock=max (a hardware board's default): its clock driver
    assert len(b.sources) == len(typed_sources) + clock + 3  # the arch's two and the console driver


def test_arch_gives_startup_cycles_and_linker_script_and_console_driver_follows():
    b = boards.load_board(ROOT, "mps2-an500")
    common = ROOT / "boards" / "common" / "cortex-m"
    assert b.sources == [b.dir / "board.c", common / "startup.c", common / "cycles.c", common / "cmsdk_uart.c"]
    assert b.linker_script == common / "link.ld"
    pynq = boards.load_board(ROOT, "pynq-z1")
    assert pynq.linker_script == ROOT / "boards" / "common" / "cortex-a9" / "link.ld"
    assert [s.name for s in pynq.sources] == ["board.c", "startup.S", "a9.c", "cadence_uart.c"]
    host = boards.load_board(ROOT, "host")
    assert host.sources == [ROOT / "boards" / "common" / "host" / "board.c"] and host.linker_script is None


def test_a_board_with_its_own_link_ld_uses_it(tmp_path):
    root, name = board_copy(tmp_path, "mps2-an386")
    assert boards.load_board(root, name).linker_script == root / "boards" / "common" / "cortex-m" / "link.ld"
    own = root / "boards" / name / "link.ld"
    own.write_text("INCLUDE memory.ld\nINCLUDE cortex-m/sections.ld\n")
    assert boards.load_board(root, name).linker_script == own


@pytest.mark.parametrize("name,old,new,missing", [
    ("mps2-an386", "base = 0x40004000\n", "", "[console] base"),
    ("mps2-an386", 'driver = "cmsdk_uart"\n', "", "[console] driver"),
    ("nucleo-f412zg", "tx_pin = 8\n", "", "[console] tx_pin"),
    ("pynq-z1", 'clock_hz = 100_000_000  # the UART reference clock\n', "", "[console] clock_hz"),
    ("pynq-z1", "timer_hz = 100_000_000", "", "[cycles] timer_hz"),
    ("pynq-z1", 'name = "DDR"', 'name = "RAM"', '[[memory]] name = "DDR"'),
    ("host", "clock_hz = 1000000000", "", "'clock_hz'"),
])
def test_missing_key_is_an_error_naming_file_and_key(tmp_path, name, old, new, missing):
    def drop(text):
        assert old in text
        return text.replace(old, new)
    root, name = board_copy(tmp_path, name, drop)
    with pytest.raises(KilnError) as e:
        boards.load_board(root, name)
    assert str(e.value).startswith(f"{root / 'boards' / name / 'board.toml'}: missing key {missing}"), e.value


def test_a_number_typed_as_text_is_an_error(tmp_path):
    root, name = board_copy(tmp_path, "mps2-an386",
                            lambda text: text.replace("base = 0x40004000", 'base = "0x40004000"'))
    with pytest.raises(KilnError, match=r"board.toml: \[console\] base must be an integer, not '0x40004000'"):
        boards.load_board(root, name)


def test_macro_typed_again_in_defines_is_an_error(tmp_path):
    root, name = board_copy(tmp_path, "mps2-an500",
                            lambda text: text.replace('sources = ["board.c"]\n',
                                                      'sources = ["board.c"]\ndefines = ["TK_UART_BASE=0x1u", "X"]\n'))
    with pytest.raises(KilnError, match="defines sets TK_UART_BASE, which board.toml's structured keys"):
        boards.load_board(root, name)


def test_extra_defines_follow_the_facts(tmp_path):
    root, name = board_copy(tmp_path, "mps2-an500",
                            lambda text: text.replace('sources = ["board.c"]\n',
                                                      'sources = ["board.c"]\ndefines = ["TK_EXTRA=1"]\n'))
    assert boards.load_board(root, name).defines[-2:] == ["TK_M7_CACHES", "TK_EXTRA=1"]


def test_unknown_board_suggests_closest():
    with pytest.raises(KilnError) as e:
        boards.resolve(ROOT, "mps2-an50", "release")
    msg = str(e.value)
    assert "unknown board 'mps2-an50'" in msg and "Did you mean 'mps2-an500'" in msg
    assert all(b in msg for b in BOARDS)


def test_unknown_variant_lists_valid_ones():
    with pytest.raises(KilnError) as e:
        boards.resolve(ROOT, "host", "relase")
    assert "Did you mean 'release'" in str(e.value)
    assert all(v in str(e.value) for v in VARIANTS)


def test_scons_reports_unknown_board_and_variant(scons):
    r = scons("board=nucleo-f746", timeout=120)
    assert r.returncode != 0
    assert "kiln: error: unknown board 'nucleo-f746'" in r.output
    assert "Traceback" not in r.output
    r = scons("variant=fastest", timeout=120)
    assert r.returncode != 0 and "unknown variant 'fastest'" in r.output


def test_help_lists_options_boards_and_variants(scons):
    r = scons("-h", timeout=120)
    assert r.returncode == 0, r.output
    for word in ["board=", "variant=", "model=", "run=", "flash=", "flasher=", "port="] + BOARDS + VARIANTS:
        assert word in r.output


def test_f746_code_runs_through_the_itcm_flash_interface_and_is_stored_in_flash():
    t = boards.resolve(ROOT, "nucleo-f746zg", "release")
    assert t.region_of_role("text").origin == 0x00200000 and t.text_load_region.name == "FLASH"
    script = boards.memory_script(t)
    assert 'REGION_ALIAS("REGION_TEXT", FLASH_ITCM);' in script
    assert 'REGION_ALIAS("REGION_TEXT_LOAD", FLASH);' in script  # the flasher writes 0x08000000
    mps2 = boards.memory_script(boards.resolve(ROOT, "mps2-an500", "release"))
    assert 'REGION_ALIAS("REGION_TEXT_LOAD", CODE);' in mps2  # no alias: load = run address


@pytest.mark.parametrize("name", ["nucleo-f746zg", "disco-h747i"])
def test_tcm_variant_puts_the_arena_and_stack_in_dtcm(name):
    t = boards.resolve(ROOT, name, "tcm")
    assert t.placement["activations"] == t.placement["stack"] == t.placement["data"] == "DTCM"


def test_an_alias_must_name_a_region_and_be_read_only(tmp_path):
    root, name = board_copy(tmp_path, "nucleo-f746zg", lambda t: t.replace('alias_of = "FLASH"', 'alias_of = "ROM"'))
    with pytest.raises(KilnError, match="FLASH_ITCM: alias_of must name another region"):
        boards.load_board(root, name)


# a*b+c as a float kernel writes it: GCC fuses it into VFMA unless the float rule forbids it
FMA_C = "float madd(const float *a, const float *b, int n) { float s = 0.0f; " \
        "for (int i = 0; i < n; i++) s += a[i] * b[i]; return s; }\n"


@pytest.mark.parametrize("name", [b for b in boards.board_names(ROOT) if b != "host"])
def test_float_rule_keeps_multiply_adds_apart_on_every_board(tmp_path, name):
    """boards.FLOAT_CFLAGS is in every target's flags, and with it no board's compiler emits a fused
    multiply-add (LiteRT rounds the product and the sum apart); the same C without it does on cores
    with FMA, so the check is not vacuous. (The A9's VFPv3 has no fused multiply-add: its VMLA rounds
    the product, then the sum, as two instructions would.)"""
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc is not installed")
    target = boards.resolve(ROOT, name, "release")
    for flag in boards.FLOAT_CFLAGS:
        assert flag in target.cflags
    src = tmp_path / "madd.c"
    src.write_text(FMA_C)

    def assembly(flags):
        out = tmp_path / "madd.s"
        subprocess.run([gcc, *flags, "-S", "-o", str(out), str(src)], check=True)
        return out.read_text()

    assert not [f for f in ("vfma", "vfms", "vfnma", "vfnms") if f in assembly(target.cflags)]
    contracted = [f for f in target.cflags if f not in boards.FLOAT_CFLAGS]
    if target.board.core in ("cortex-m4", "cortex-m7"):
        assert "vfma" in assembly(contracted)
