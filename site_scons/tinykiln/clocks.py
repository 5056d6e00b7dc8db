"""A board's clock tree: board.toml's [clock] table checked against its chip's limits, and the clock a
build runs at (clock=reset|max, or the emulator's).

    spec = load(board_toml_dict, path)        # ClockTree or None (a board with one fixed clock)
    plan(spec, board_facts, mode)             # Plan: core / bus / UART clocks and the TK_CLK_* macros
    mode_for(board, requested, flasher)       # "max", "reset" or "emulated" for a build

The chip facts (the limits of each bus, the PLL's ranges, the flash wait states per frequency, the
voltage scale) live in FAMILIES, one row per reference manual; the board's choices (oscillator, PLL
factors, bus dividers) in its board.toml [clock]. The C that programs them is
boards/common/cortex-m/stm32_clock_<driver>.c; tests/unit/test_clocks.py runs that C against a
register-level model written from the same manuals.

Modes: "max" programs the PLL (the rated clock_hz); "reset" leaves the reset clock (the HSI) alone;
"emulated" is "reset" for a build that runs on QEMU, which ignores the RCC: its clock figures are
the emulator's (board.toml [emulator] clock_hz, else the rated clock), the UART's stays the reset one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tinykiln import KilnError

MODES = ("auto", "reset", "max")
MHZ = 1_000_000


@dataclass(frozen=True)
class Family:
    """One chip family's clock limits (VDD 2.7-3.6 V) from its reference manual and datasheet."""
    manual: str
    reset_hz: int  # the HSI, SYSCLK after reset
    sysclk_max: int
    hclk_max: int
    apb_max: dict  # bus -> Hz
    vco_in: tuple[int, int]  # PLL input (after M) range, Hz
    vco_out: tuple[int, int]
    pll_m: tuple[int, int]
    pll_n: tuple[int, int]
    pll_p: tuple[int, ...]
    ws_step: tuple[int, ...]  # HCLK upper bound for 0, 1, 2 ... wait states
    vos: int  # the voltage-scale field value written (scale 1 / VOS1)
    overdrive_above: int = 0  # SYSCLK above this needs the over-drive (F7)
    buses: tuple[str, ...] = ("apb1", "apb2")


FAMILIES = {
    # RM0385 (STM32F75x/74x): PWR 'Entering Over-drive mode', the FLASH wait-state table (2.7-3.6 V), RCC_PLLCFGR;
    # DS10916: APB1 <= 54 MHz, APB2 <= 108 MHz, over-drive above 180 MHz.
    "f7": Family("RM0385", 16 * MHZ, 216 * MHZ, 216 * MHZ, {"apb1": 54 * MHZ, "apb2": 108 * MHZ},
                 (950_000, 2_100_000), (100 * MHZ, 432 * MHZ), (2, 63), (50, 432), (2, 4, 6, 8),
                 tuple(30 * MHZ * k for k in range(1, 8)) + (216 * MHZ,), vos=3, overdrive_above=180 * MHZ),
    # RM0402 (STM32F412): the FLASH wait-state table (2.7-3.6 V), RCC_PLLCFGR; DS10941: APB1 <= 50, APB2 <= 100.
    "f412": Family("RM0402", 16 * MHZ, 100 * MHZ, 100 * MHZ, {"apb1": 50 * MHZ, "apb2": 100 * MHZ},
                   (950_000, 2_100_000), (100 * MHZ, 432 * MHZ), (2, 63), (50, 432), (2, 4, 6, 8),
                   (30 * MHZ, 64 * MHZ, 90 * MHZ, 100 * MHZ), vos=3),
    # RM0090 (STM32F405/407): Table 10 (wait states, 2.7-3.6 V), RCC_PLLCFGR; DS8626: APB1 <= 42,
    # APB2 <= 84 MHz; PWR_CR VOS is one bit on the F405 (1 = scale 1).
    "f405": Family("RM0090", 16 * MHZ, 168 * MHZ, 168 * MHZ, {"apb1": 42 * MHZ, "apb2": 84 * MHZ},
                   (950_000, 2_100_000), (100 * MHZ, 432 * MHZ), (2, 63), (50, 432), (2, 4, 6, 8),
                   tuple(30 * MHZ * k for k in range(1, 6)) + (168 * MHZ,), vos=1),
    # RM0399 (STM32H745/747): RCC PLLs (ref 8-16 MHz range, wide VCO 192-836 MHz), the FLASH wait-state table
    # (VOS1: 4 wait states cover AXI 200 MHz; ST's own STM32H747I-DISCO examples use 4 at 200 MHz);
    # DS12930: VOS1 -> CPU 400 MHz, HCLK 200 MHz, every APB 100 MHz.
    "h7": Family("RM0399", 64 * MHZ, 400 * MHZ, 200 * MHZ,
                 {"apb1": 100 * MHZ, "apb2": 100 * MHZ, "apb3": 100 * MHZ, "apb4": 100 * MHZ},
                 (8 * MHZ, 16 * MHZ), (192 * MHZ, 836 * MHZ), (1, 63), (4, 512), (2, 4, 6, 8),
                 (70 * MHZ, 140 * MHZ, 185 * MHZ, 210 * MHZ, 225 * MHZ), vos=3,
                 buses=("apb1", "apb2", "apb3", "apb4")),
}
SOURCES = ("hsi", "hse", "hse-bypass")  # the PLL's input: the internal RC, a crystal, an external clock
SUPPLIES = {"direct-smps": 0x04, "ldo": 0x02}  # STM32H7 PWR_CR3 SDEN / LDOEN (RM0399 PWR_CR3)
AHB_DIVS = (1, 2, 4, 8, 16, 64, 128, 256, 512)
APB_DIVS = (1, 2, 4, 8, 16)


@dataclass(frozen=True)
class ClockTree:
    """board.toml [clock]: the chip family and the board's choices, checked."""
    family: str
    source: str
    source_hz: int
    pll_m: int
    pll_n: int
    pll_p: int
    pll_q: int
    ahb_div: int
    apb_div: dict  # bus -> divider
    cpu_div: int = 1  # H7 D1CPRE: SYSCLK -> CPU
    supply: str = ""  # H7 only: the PWR supply configuration the board is wired for
    flash_ws: int = 0  # from FAMILIES (the fewest wait states for HCLK)

    @property
    def chip(self) -> Family:
        return FAMILIES[self.family]

    @property
    def sysclk(self) -> int:
        return self.source_hz * self.pll_n // (self.pll_m * self.pll_p)

    @property
    def cpu_hz(self) -> int:
        return self.sysclk // self.cpu_div

    @property
    def hclk(self) -> int:
        return self.cpu_hz // self.ahb_div

    def bus_hz(self, bus: str) -> int:
        return self.hclk // self.apb_div[bus]


@dataclass(frozen=True)
class Plan:
    """What one build runs at: the core clock (TK_CLOCK_HZ, SysTick), the console UART's clock,
    and the macros the clock C reads (empty unless mode is "max")."""
    mode: str
    core_hz: int
    uart_hz: int | None  # None: the UART runs from the core clock (no macro)
    defines: list[str] = field(default_factory=list)
    source: str = ""  # the clock driver's C file under boards/common/cortex-m/, in mode "max"


def _int(table: dict, key: str, path: Path, default=None) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KilnError(f"{path}: [clock] {key} must be an integer, not {value!r}")
    return value


def load(d: dict, path: Path) -> ClockTree | None:
    """The [clock] table of board.toml `d`, checked against the chip's limits; None if absent."""
    t = d.get("clock")
    if t is None:
        return None
    family = t.get("family")
    if family not in FAMILIES:
        raise KilnError(f"{path}: [clock] family must be one of {', '.join(FAMILIES)}, not {family!r}")
    chip = FAMILIES[family]
    source = t.get("source")
    if source not in SOURCES:
        raise KilnError(f"{path}: [clock] source must be one of {', '.join(SOURCES)}, not {source!r}")
    supply = t.get("supply", "")
    if family == "h7" and supply not in SUPPLIES:
        # The one fact never defaulted: a supply setting the board is not wired for locks the part.
        raise KilnError(f"{path}: [clock] supply is required on an STM32H7 and must be one of "
                        f"{', '.join(SUPPLIES)} (read it from the board's user manual: a wrong value locks "
                        f"the part until it is recovered by hand; tinykiln does not guess it)")
    if family != "h7" and supply:
        raise KilnError(f"{path}: [clock] supply is an STM32H7 setting; {family} has none")
    tree = ClockTree(
        family=family, source=source,
        source_hz=chip.reset_hz if source == "hsi" else _int(t, "source_hz", path),
        pll_m=_int(t, "pll_m", path), pll_n=_int(t, "pll_n", path), pll_p=_int(t, "pll_p", path),
        pll_q=_int(t, "pll_q", path), ahb_div=_int(t, "ahb_div", path, 1),
        apb_div={b: _int(t, f"{b}_div", path, 1) for b in chip.buses},
        cpu_div=_int(t, "cpu_div", path, 1), supply=supply)
    problems = _check(tree, d.get("clock_hz"))
    if problems:
        raise KilnError(f"{path}: [clock] is out of the {chip.manual} limits: " + "; ".join(problems))
    ws = next(k for k, top in enumerate(chip.ws_step) if tree.hclk <= top)
    more = _int(t, "flash_ws", path, ws)  # a board may ask more than the manual's least (H7: ST's 4)
    if more < ws or more > 15:
        raise KilnError(f"{path}: [clock] flash_ws = {more}: HCLK {tree.hclk:,} Hz needs {ws} to 15 ({chip.manual})")
    return ClockTree(**{**tree.__dict__, "flash_ws": more})


def _check(tree: ClockTree, rated) -> list[str]:
    chip = tree.chip
    out = []

    def within(what, value, lo, hi):
        if not lo <= value <= hi:
            out.append(f"{what} {value:,} is not in {lo:,}..{hi:,}")

    within("pll_m", tree.pll_m, *chip.pll_m)
    within("pll_n", tree.pll_n, *chip.pll_n)
    if tree.pll_p not in chip.pll_p:
        out.append(f"pll_p {tree.pll_p} is not one of {chip.pll_p}")
    within("pll_q", tree.pll_q, 2, 15 if tree.family != "h7" else 128)
    if tree.source_hz % tree.pll_m and tree.family != "h7":
        out.append("source_hz / pll_m is not a whole number of Hz")
    ref = tree.source_hz / tree.pll_m
    within("the PLL input (Hz)", round(ref), *chip.vco_in)
    within("the VCO (Hz)", round(ref * tree.pll_n), *chip.vco_out)
    if tree.source_hz * tree.pll_n % (tree.pll_m * tree.pll_p):
        out.append(f"SYSCLK {ref * tree.pll_n / tree.pll_p:,.1f} Hz is not a whole number of Hz")
    if tree.ahb_div not in AHB_DIVS:
        out.append(f"ahb_div {tree.ahb_div} is not one of {AHB_DIVS}")
    for bus, div in tree.apb_div.items():
        if div not in APB_DIVS:
            out.append(f"{bus}_div {div} is not one of {APB_DIVS}")
        elif tree.bus_hz(bus) > chip.apb_max[bus]:
            out.append(f"{bus.upper()} {tree.bus_hz(bus):,} Hz is above its {chip.apb_max[bus]:,} Hz")
    if tree.cpu_hz > chip.sysclk_max:
        out.append(f"the CPU clock {tree.cpu_hz:,} Hz is above {chip.sysclk_max:,} Hz")
    if tree.hclk > chip.hclk_max:
        out.append(f"HCLK {tree.hclk:,} Hz is above {chip.hclk_max:,} Hz")
    if rated != tree.cpu_hz:
        out.append(f"clock_hz = {rated!r} but the PLL gives {tree.cpu_hz:,} Hz (clock_hz is the rated clock)")
    return out


def mode_for(has_tree: bool, emulator: bool, requested: str, method: str) -> str:
    """The clock mode of a build: clock= (auto, reset, max) and where the firmware goes.

    auto is "max" for firmware that goes to hardware and "emulated" for firmware QEMU runs: a board
    with an [emulator] whose flash method (flasher=, else the board's first) is qemu. QEMU does not
    model the STM32 clock trees, so clock=max there is refused (its ready bits would never come)."""
    if requested not in MODES:
        raise KilnError(f"clock={requested} is not one of {', '.join(MODES)}")
    if not has_tree:  # one fixed clock (the MPS2 FPGA, the Zynq's boot loader, the host)
        return "fixed"
    emulated = emulator and method == "qemu"
    if requested == "max" and emulated:
        raise KilnError("clock=max programs the PLL, which QEMU does not model: leave clock= out (or "
                        "clock=reset) for QEMU, or name the board's probe (flasher=openocd) to build for it")
    if emulated:
        return "emulated"
    return "reset" if requested == "reset" else "max"


def plan(tree: ClockTree | None, rated_hz: int, emulator_hz: int | None, uart_bus: str | None,
         mode: str) -> Plan:
    """The clocks of a build in `mode` (mode_for). uart_bus: the console's APB ("apb1"...), None if
    the board types the UART clock itself ([console] clock_hz) or the UART runs from the core."""
    if tree is None or mode == "fixed":
        return Plan(mode="fixed", core_hz=rated_hz, uart_hz=None)
    chip = tree.chip
    if mode in ("reset", "emulated"):
        # After reset every prescaler is 1: the buses run at the HSI.
        core = (emulator_hz or rated_hz) if mode == "emulated" else chip.reset_hz
        return Plan(mode=mode, core_hz=core, uart_hz=chip.reset_hz if uart_bus else None)
    src = {"hsi": "TK_CLK_SRC_HSI", "hse": "TK_CLK_SRC_HSE", "hse-bypass": "TK_CLK_SRC_HSE_BYPASS"}
    defines = ["TK_CLOCK_MAX", f"TK_CLK_FAMILY_{tree.family.upper()}", src[tree.source],
               f"TK_CLK_PLL_M={tree.pll_m}", f"TK_CLK_PLL_N={tree.pll_n}", f"TK_CLK_PLL_P={tree.pll_p}",
               f"TK_CLK_PLL_Q={tree.pll_q}", f"TK_CLK_AHB_DIV={tree.ahb_div}"]
    defines += [f"TK_CLK_{bus.upper()}_DIV={div}" for bus, div in tree.apb_div.items()]
    defines += [f"TK_CLK_FLASH_WS={tree.flash_ws}", f"TK_CLK_VOS={chip.vos}",
                f"TK_CLK_RESET_HZ={chip.reset_hz}u", f"TK_CLK_HCLK_HZ={tree.hclk}u"]
    if chip.overdrive_above and tree.sysclk > chip.overdrive_above:
        defines.append("TK_CLK_OVERDRIVE")
    if tree.family == "h7":
        defines += [f"TK_CLK_CPU_DIV={tree.cpu_div}", f"TK_CLK_H7_SUPPLY=0x{SUPPLIES[tree.supply]:02X}u"]
    driver = "stm32_clock_h7.c" if tree.family == "h7" else "stm32_clock_f4f7.c"
    return Plan(mode="max", core_hz=tree.cpu_hz, uart_hz=tree.bus_hz(uart_bus) if uart_bus else None,
                defines=defines, source=driver)
