"""The hardware boards' rated clocks: board.toml [clock] checked against the chip limits
(tinykiln/clocks.py), the clock C run against a register-level model of the reference manual
(tests/stm32_clock_model.py): the frequencies it ends at, the order of its steps, its time-outs;
and the console's baud rate from the bus clock it really gets."""
import subprocess

import pytest

import stm32_clock_model as scm
from conftest import ROOT
from tinykiln import KilnError, boards, clocks

MHZ = 1_000_000

# board -> model, the frequencies the manuals' clock tree gives (Hz)
EXPECTED = {
    "nucleo-f746zg": (lambda **kw: scm.F4F7Model("f7", 8 * MHZ, "bypass", **kw),
                      {"sysclk": 216 * MHZ, "hclk": 216 * MHZ, "apb1": 54 * MHZ, "apb2": 108 * MHZ}),
    "nucleo-f412zg": (lambda **kw: scm.F4F7Model("f412", 8 * MHZ, "bypass", **kw),
                      {"sysclk": 100 * MHZ, "hclk": 100 * MHZ, "apb1": 50 * MHZ, "apb2": 100 * MHZ}),
    "netduinoplus2": (lambda **kw: scm.F4F7Model("f405", 25 * MHZ, "crystal", **kw),
                      {"sysclk": 168 * MHZ, "hclk": 168 * MHZ, "apb1": 42 * MHZ, "apb2": 84 * MHZ}),
    "disco-h747i": (lambda **kw: scm.H7Model("direct-smps", **kw),
                    {"sysclk": 400 * MHZ, "cpu": 400 * MHZ, "hclk": 200 * MHZ, "apb1": 100 * MHZ,
                     "apb2": 100 * MHZ, "apb3": 100 * MHZ, "apb4": 100 * MHZ}),
}


def steps(events, names):
    """The events among `names`, in order, repeats in a row counted once."""
    out = []
    for e in events:
        if e in names and (not out or out[-1] != e):
            out.append(e)
    return out


H7_RESET = {"sysclk": 64 * MHZ, "cpu": 64 * MHZ, "hclk": 64 * MHZ, "apb1": 64 * MHZ, "apb2": 64 * MHZ,
            "apb3": 64 * MHZ, "apb4": 64 * MHZ}


@pytest.fixture(scope="module")
def libs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clocks")
    return {name: scm.build(name, tmp) for name in EXPECTED}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_clock_c_reaches_the_rated_clock_in_the_manuals_order(libs, name):
    make, freqs = EXPECTED[name]
    result = scm.run(*libs[name], make())
    assert result.fault is None
    assert result.model.freqs() == freqs
    assert freqs["sysclk"] == result.target.board.clock_hz == result.target.board.core_hz  # the rated clock
    ev = result.model.events
    assert ev[-1] == "switch_pll" and ev.count("switch_pll") == 1
    before = ev[:ev.index("switch_pll")]
    assert "pll_on" in before and [e for e in before if e.startswith("latency=")]
    assert before.index("pll_config") < before.index("pll_on")  # configured while off
    assert before.index("dividers") > before.index("pll_on")


@pytest.fixture()
def f746(libs):
    return libs["nucleo-f746zg"]


def test_f746_order_and_flash(f746):
    result = scm.run(*f746, scm.F4F7Model("f7", 8 * MHZ, "bypass"))
    ev = result.model.events
    order = ["vos", "hse_on", "pll_config", "pll_on", "oden", "odswen", "latency=7", "dividers", "switch_pll"]
    assert steps(ev, order) == order
    acr = result.model.regs[scm.FLASH_ACR]
    assert acr & 0xF == 7 and acr & (1 << 8) and acr & (1 << 9)  # 7 WS, prefetch, ART
    assert result.model.regs[scm.RCC_CR] & scm.HSEBYP  # the ST-LINK MCO is a clock, not a crystal


@pytest.mark.parametrize("bit", ["HSERDY", "PLLRDY", "ODRDY", "ODSWRDY", "SWS", "VOSRDY"])
def test_a_ready_bit_that_never_comes_is_a_fault_at_the_reset_clock(f746, bit):
    result = scm.run(*f746, scm.F4F7Model("f7", 8 * MHZ, "bypass", never={bit}))
    assert result.fault and bit in result.fault, result.fault
    # back on the HSI with every divider at 1: the console reports it at the reset clock
    assert result.model.freqs() == {"sysclk": 16 * MHZ, "hclk": 16 * MHZ, "apb1": 16 * MHZ, "apb2": 16 * MHZ}


def test_a_crystal_setting_on_the_mco_board_never_starts(f746):
    result = scm.run(*f746, scm.F4F7Model("f7", 8 * MHZ, "crystal"))
    assert result.fault and "HSERDY" in result.fault


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_console_divider_gives_the_baud_rate_from_the_bus_clock(tmp_path, name):
    """Compiles the board's USART driver for the host (its registers in an array) and reads BRR."""
    target = scm.hardware_target(name)
    b = target.board
    driver = next(s for s in b.sources if s.name.startswith("stm32_usart"))
    uart_hz = int(next(d for d in target.defines if d.startswith("TK_UART_CLOCK_HZ=")).split("=")[1].rstrip("u"))
    bus = f"apb{b.console['apb']}"
    assert uart_hz == EXPECTED[name][1][bus]  # the console's APB clock in the model
    brr_offset = 0x0C if driver.name.endswith("f7.c") else 0x08
    (tmp_path / "fake.h").write_text("#include <stdint.h>\nextern uint32_t tk_fake_uart[16];\n")
    (tmp_path / "main.c").write_text(
        '#include <stdio.h>\n#include "tk_uart.h"\nuint32_t tk_fake_uart[16];\n'
        'int tk_printf(const char *f, ...) { (void)f; return 0; }\n'
        f'int main(void) {{ tk_uart_init({uart_hz}u, {b.baud}u);\n'
        f'printf("%u\\n", (unsigned)tk_fake_uart[{brr_offset // 4}]); return 0; }}\n')
    exe = tmp_path / "brr"
    subprocess.run(["gcc", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-include", str(tmp_path / "fake.h"),
                    "-DTK_UART_BASE=((uintptr_t)tk_fake_uart)", f"-I{ROOT / 'boards' / 'common'}",
                    f"-I{ROOT / 'runtime' / 'include'}", str(tmp_path / "main.c"), str(driver), "-o", str(exe)],
                   check=True, capture_output=True, text=True)
    brr = int(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
    assert brr == round(uart_hz / b.baud)  # the nearest divider: no better one exists
    assert abs(uart_hz / brr - b.baud) / b.baud < 0.001  # within 0.1 % (a UART takes about 2 %)


def test_f4_boards_set_scale_1_and_their_wait_states(libs):
    for name, family, ws, vos in (("nucleo-f412zg", "f412", 3, 3 << 14), ("netduinoplus2", "f405", 5, 1 << 14)):
        model = EXPECTED[name][0]()
        result = scm.run(*libs[name], model)
        ev = result.model.events
        order = ["vos", "hse_on", "pll_config", "pll_on", f"latency={ws}", "dividers", "switch_pll"]
        assert steps(ev, order) == order and "oden" not in ev, (name, ev)
        assert model.regs[scm.PWR_CR] & (3 << 14) == vos
        acr = model.regs[scm.FLASH_ACR]
        assert acr & 0xF == ws and acr & (7 << 8) == 7 << 8  # prefetch, I-cache, D-cache
        assert bool(model.regs[scm.RCC_CR] & scm.HSEBYP) == (family == "f412")  # MCO vs crystal


def test_netduinoplus2_keeps_the_reset_clock_for_qemu():
    qemu = boards.resolve(ROOT, "netduinoplus2", "release")  # flasher=qemu, the board's first
    assert qemu.board.clock.mode == "emulated" and "TK_CLOCK_MAX" not in qemu.defines
    assert "TK_SYSTICK_HZ=168000000u" in qemu.defines and "TK_UART_CLOCK_HZ=16000000u" in qemu.defines
    with pytest.raises(KilnError, match="clock=max programs the PLL, which QEMU does not model"):
        boards.resolve(ROOT, "netduinoplus2", "release", clock="max")
    board = boards.resolve(ROOT, "netduinoplus2", "release", flasher="openocd")
    assert board.board.clock.mode == "max" and "TK_UART_CLOCK_HZ=84000000u" in board.defines


def test_modes_reset_max_and_qemu():
    f746 = boards.load_board(ROOT, "nucleo-f746zg")
    assert f746.clock.mode == "max" and f746.core_hz == 216 * MHZ  # hardware: max by default
    reset = boards.load_board(ROOT, "nucleo-f746zg", "reset")
    assert reset.clock.mode == "reset" and reset.core_hz == 16 * MHZ and "TK_CLOCK_MAX" not in reset.defines
    assert "TK_UART_CLOCK_HZ=16000000u" in reset.defines
    assert not any(s.name.startswith("stm32_clock") for s in reset.sources)
    with pytest.raises(KilnError, match="clock=fast is not one of auto, reset, max"):
        boards.load_board(ROOT, "nucleo-f746zg", "fast")
    mps2 = boards.load_board(ROOT, "mps2-an500", "max")  # one fixed clock: nothing to program
    assert mps2.clock.mode == "fixed" and mps2.core_hz == 25 * MHZ


def test_out_of_limit_clock_trees_are_refused(tmp_path):
    from test_boards import board_copy
    root, name = board_copy(tmp_path, "nucleo-f746zg", lambda t: t.replace("apb1_div = 4", "apb1_div = 2"))
    with pytest.raises(KilnError, match=r"out of the RM0385 limits: APB1 108,000,000 Hz is above its 54,000,000"):
        boards.load_board(root, name)


def test_families_cover_what_the_boards_name():
    for name in boards.board_names(ROOT):
        b = boards.load_board(ROOT, name)
        if b.clock_tree:
            assert b.clock_tree.family in clocks.FAMILIES
            assert b.clock_tree.cpu_hz == b.clock_hz


def test_h747_writes_direct_smps_first_then_vos1_wait_states_pll_dividers(libs):
    model = scm.H7Model("direct-smps")
    result = scm.run(*libs["disco-h747i"], model)
    assert result.fault is None
    order = ["supply", "vos", "latency=4", "pll_config", "pll_on", "dividers", "switch_pll"]
    assert steps(model.events, order) == order
    assert model.regs[scm.H_PWR_CR3] & 0x3F == 0x04  # SDEN = 1, LDOEN = 0, BYPASS = 0: direct SMPS
    assert (model.regs[scm.H_PWR_D3CR] >> 14) & 3 == 3  # VOS1


def test_h747_on_an_ldo_wired_board_the_model_would_lock(libs):
    # The model of a board rewired for the LDO: writing direct SMPS there is the lock-up the
    # manual warns of; the board file is what prevents it, so it must say what the board is.
    with pytest.raises(scm.Violation, match="locks until recovered by hand"):
        scm.run(*libs["disco-h747i"], scm.H7Model("ldo"))


@pytest.mark.parametrize("cr3,fault", [(0x04, False), (0x02, True), (0x01, True)])
def test_h747_never_rewrites_a_supply_written_since_power_on(libs, cr3, fault):
    model = scm.H7Model("direct-smps", cr3=cr3)
    result = scm.run(*libs["disco-h747i"], model)
    assert "supply" not in model.events and "supply_ignored" not in model.events
    assert bool(result.fault) == fault
    if fault:
        assert "refusing" in result.fault and "pll_on" not in model.events
        assert model.freqs() == H7_RESET
    else:  # ours already (a reset without power cycle): go on
        assert model.freqs() == EXPECTED["disco-h747i"][1]


@pytest.mark.parametrize("bit", ["ACTVOSRDY", "VOSRDY", "PLL1RDY", "SWS"])
def test_h747_time_outs_end_at_the_reset_clock(libs, bit):
    model = scm.H7Model("direct-smps", never={bit})
    result = scm.run(*libs["disco-h747i"], model)
    assert result.fault and bit in result.fault
    assert model.freqs() == H7_RESET


def test_h747_supply_is_required_and_never_defaulted(tmp_path):
    from test_boards import board_copy
    root, name = board_copy(tmp_path, "disco-h747i", lambda t: t.replace('supply = "direct-smps"\n', ""))
    with pytest.raises(KilnError, match="supply is required on an STM32H7.*tinykiln does not guess it"):
        boards.load_board(root, name)
    # ... and the C refuses to compile without it
    target = scm.hardware_target("disco-h747i")
    macros = [f"-D{d}" for d in target.defines if d.startswith("TK_CLK") and "SUPPLY" not in d]
    r = subprocess.run(["gcc", "-fsyntax-only", "-DTK_CLOCK_MODEL", *macros, f"-I{ROOT / 'boards' / 'common'}",
                        str(ROOT / "boards" / "common" / "cortex-m" / "stm32_clock_h7.c")],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "TK_CLK_H7_SUPPLY" in r.stderr


def test_report_json_says_which_clock_the_firmware_runs_at(tmp_path):
    from tinykiln import sizes
    target = boards.resolve(ROOT, "nucleo-f746zg", "release")
    elf = tmp_path / "empty.elf"
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-nostdlib", "-x", "c", "-", "-o", str(elf),
                    "-Wl,-e,0"], input="int x;\n", text=True, check=True, capture_output=True)
    data, _ = sizes.build_report(target, elf, "empty")
    assert data["clock"] == {"mode": "max", "core_hz": 216 * MHZ, "rated_hz": 216 * MHZ, "reset_hz": 16 * MHZ}
