"""A register-level model of the STM32 clock trees, written from the reference manuals, to run the
boards' clock C (boards/common/cortex-m/stm32_clock_*.c) on the host: no emulator models them.

    run = clock_run(board)                    # compiles the board's clock=max driver, runs tk_clock_init
    run.fault, run.model.freqs(), run.model.events

The C is compiled with TK_CLOCK_MODEL: its register reads and writes call into the model (ctypes),
which answers the ready bits some reads after their enable bits are set, refuses what the manuals
forbid (a Violation: PLL factors changed while the PLL runs, HSEBYP with the HSE on, SYSCLK on a PLL
that is not locked, fewer flash wait states than HCLK needs, a bus above its limit, the over-drive
missing above 180 MHz, an STM32H7 supply setting the board is not wired for...), logs the steps in
order, and computes SYSCLK, HCLK and the APB clocks from the register values.

Facts, by table and register: RM0385 (F746) the FLASH wait-state table, 'Entering Over-drive mode',
PWR_CR1/CSR1, RCC_CR/PLLCFGR/CFGR; RM0402 (F412) and RM0090 (F405) the same tables and registers;
RM0399 (H747) the FLASH wait-state table, 'Power supply configuration' + PWR_CR3, PWR_D3CR, RCC PLL1.
"""
from __future__ import annotations

import ctypes
import subprocess
from dataclasses import dataclass
from pathlib import Path

from conftest import ROOT
from tinykiln import boards

MHZ = 1_000_000
DELAY = 3  # reads before a ready bit follows its enable bit
COMMON = ROOT / "boards" / "common"


class Violation(AssertionError):
    """The C did what the reference manual forbids."""


def _hpre(code: int) -> int:
    return 1 if code < 8 else (2, 4, 8, 16, 64, 128, 256, 512)[code - 8]


def _ppre(code: int) -> int:
    return 1 if code < 4 else (2, 4, 8, 16)[code - 4]


class Model:
    regs: dict[int, int]

    def __init__(self, never=()):
        self.never = set(never)  # names of ready bits that never come (to test the time-outs)
        self.events: list[str] = []
        self.pending: dict[str, int] = {}  # ready bit -> reads left

    def _arm(self, name: str) -> None:
        if name not in self.never:
            self.pending[name] = DELAY

    def _ready(self, name: str) -> bool:
        """Counts one read of a pending ready bit; True once it is set."""
        left = self.pending.get(name)
        if left is None:
            return False
        if left > 0:
            self.pending[name] = left - 1
            return False
        return True

    def read(self, addr: int) -> int:
        if addr not in self.regs:
            raise Violation(f"read of 0x{addr:08X}: not a register of this model")
        self.on_read(addr)
        return self.regs[addr]

    def write(self, addr: int, value: int) -> None:
        if addr not in self.regs:
            raise Violation(f"write of 0x{addr:08X}: not a register of this model")
        old = self.regs[addr]
        self.regs[addr] = value
        self.on_write(addr, old, value)


# --- STM32F4 / F7 (RCC at 0x40023800) ---------------------------------------------------------------
RCC_CR, RCC_PLLCFGR, RCC_CFGR, RCC_APB1ENR = 0x40023800, 0x40023804, 0x40023808, 0x40023840
PWR_CR, PWR_CSR, FLASH_ACR = 0x40007000, 0x40007004, 0x40023C00
HSEON, HSERDY, HSEBYP, PLLON, PLLRDY = 1 << 16, 1 << 17, 1 << 18, 1 << 24, 1 << 25
F4F7 = {  # family -> (HSI, limits, HCLK top per wait state, VOS field for scale 1, PWR_CR reset)
    "f7": dict(sysclk=216, apb1=54, apb2=108, ws=[30, 60, 90, 120, 150, 180, 210, 216], vos=(3, 3), pwr=0xC000),
    "f412": dict(sysclk=100, apb1=50, apb2=100, ws=[30, 64, 90, 100], vos=(3, 3), pwr=0x8000),
    "f405": dict(sysclk=168, apb1=42, apb2=84, ws=[30, 60, 90, 120, 150, 168], vos=(1, 1), pwr=0x0000),
}


class F4F7Model(Model):
    HSI = 16 * MHZ

    def __init__(self, family: str, hse_hz: int = 0, hse: str = "", never=()):
        super().__init__(never)
        self.family, self.f = family, F4F7[family]
        self.hse_hz, self.hse = hse_hz, hse  # hse: "bypass" (an external clock), "crystal" or ""
        self.regs = {RCC_CR: 0x83, RCC_PLLCFGR: 0x24003010, RCC_CFGR: 0, RCC_APB1ENR: 0,
                     PWR_CR: self.f["pwr"], PWR_CSR: 0, FLASH_ACR: 0}

    # clocks from the register values
    def pll_in(self) -> int:
        return (self.hse_hz if self.regs[RCC_PLLCFGR] & (1 << 22) else self.HSI) // (self.regs[RCC_PLLCFGR] & 0x3F)

    def pll_out(self) -> int:
        cfg = self.regs[RCC_PLLCFGR]
        return self.pll_in() * ((cfg >> 6) & 0x1FF) // (2 * (((cfg >> 16) & 3) + 1))

    def sysclk(self, sw=None) -> int:
        sw = (self.regs[RCC_CFGR] >> 2) & 3 if sw is None else sw
        return {0: self.HSI, 1: self.hse_hz, 2: self.pll_out()}[sw]

    def freqs(self, cfgr=None, sw=None) -> dict:
        cfgr = self.regs[RCC_CFGR] if cfgr is None else cfgr
        hclk = self.sysclk(sw) // _hpre((cfgr >> 4) & 0xF)
        return {"sysclk": self.sysclk(sw), "hclk": hclk, "apb1": hclk // _ppre((cfgr >> 10) & 7),
                "apb2": hclk // _ppre((cfgr >> 13) & 7)}

    def _check_clocks(self, cfgr: int, sw: int) -> None:
        fr = self.freqs(cfgr, sw)
        for key in ("sysclk", "apb1", "apb2"):
            top = self.f["sysclk" if key == "sysclk" else key] * MHZ
            if fr[key] > top:
                raise Violation(f"{key} {fr[key]:,} Hz above its {top:,} Hz limit")
        ws = self.regs[FLASH_ACR] & 0xF
        if ws >= len(self.f["ws"]) or fr["hclk"] > self.f["ws"][ws] * MHZ:
            raise Violation(f"HCLK {fr['hclk']:,} Hz with {ws} flash wait states")
        if sw == 2:
            vos = (self.regs[PWR_CR] >> 14) & (1 if self.family == "f405" else 3)
            if vos != self.f["vos"][0] or not self.regs[PWR_CSR] & (1 << 14):
                raise Violation("SYSCLK on the PLL before voltage scale 1 is ready")
            if self.family == "f7" and fr["sysclk"] > 180 * MHZ and not self.regs[PWR_CSR] & (1 << 17):
                raise Violation("SYSCLK above 180 MHz without the over-drive (RM0385 'Entering Over-drive mode')")

    def _pwr_clocked(self) -> None:
        if not self.regs[RCC_APB1ENR] & (1 << 28):
            raise Violation("PWR accessed with its clock off (RCC_APB1ENR.PWREN)")

    def on_read(self, addr: int) -> None:
        r = self.regs
        if addr == RCC_CR:
            for name, bit in (("HSERDY", HSERDY), ("PLLRDY", PLLRDY)):
                if self._ready(name):
                    r[RCC_CR] |= bit
        elif addr == RCC_CFGR and self._ready("SWS"):
            r[RCC_CFGR] = (r[RCC_CFGR] & ~0xC) | ((r[RCC_CFGR] & 3) << 2)
            self.pending.pop("SWS")
        elif addr == PWR_CSR:
            self._pwr_clocked()
            for name, bit in (("VOSRDY", 1 << 14), ("ODRDY", 1 << 16), ("ODSWRDY", 1 << 17)):
                if self._ready(name):
                    r[PWR_CSR] |= bit

    def on_write(self, addr: int, old: int, new: int) -> None:
        r = self.regs
        if addr == RCC_CR:
            if (old ^ new) & HSEBYP and old & HSEON:
                raise Violation("HSEBYP changed while the HSE is on (RM 'can be written only when HSE is off')")
            if new & HSEON and not old & HSEON:
                self.events.append("hse_on")
                if (self.hse == "bypass") == bool(new & HSEBYP) and self.hse:
                    self._arm("HSERDY")
            if not new & HSEON:
                r[RCC_CR] &= ~HSERDY
                self.pending.pop("HSERDY", None)
            if new & PLLON and not old & PLLON:
                vco_in, vco = self.pll_in(), self.pll_out() * 2 * (((r[RCC_PLLCFGR] >> 16) & 3) + 1)
                if not 950_000 <= vco_in <= 2_100_000 or not 100 * MHZ <= vco <= 432 * MHZ:
                    raise Violation(f"PLL on with input {vco_in:,} Hz, VCO {vco:,} Hz")
                if r[RCC_PLLCFGR] & (1 << 22) and not r[RCC_CR] & HSERDY:
                    raise Violation("PLL on from an HSE that is not ready")
                self.events.append("pll_on")
                self._arm("PLLRDY")
                self._arm("VOSRDY")
            if old & PLLON and not new & PLLON:
                if (r[RCC_CFGR] >> 2) & 3 == 2:
                    raise Violation("PLL switched off while it clocks SYSCLK")
                r[RCC_CR] &= ~PLLRDY
                self.pending.pop("PLLRDY", None)
        elif addr == RCC_PLLCFGR:
            if r[RCC_CR] & PLLON and old != new:
                raise Violation("RCC_PLLCFGR written while the PLL is on")
            self.events.append("pll_config")
        elif addr == PWR_CR:
            self._pwr_clocked()
            if (old ^ new) & 0xC000 and r[RCC_CR] & PLLON:
                raise Violation("voltage scale changed while the PLL is on")
            vos = (new >> 14) & (1 if self.family == "f405" else 3)
            if vos == self.f["vos"][0] and "vos" not in self.events:
                self.events.append("vos")  # scale 1 written (or kept: F7 resets to it)
            if new & (1 << 16) and not old & (1 << 16):
                if not r[RCC_CR] & PLLON:
                    raise Violation("over-drive enabled before the PLL is on (RM0385 'Entering Over-drive mode')")
                self.events.append("oden")
                self._arm("ODRDY")
            if new & (1 << 17) and not old & (1 << 17):
                if not r[PWR_CSR] & (1 << 16):
                    raise Violation("ODSWEN set before ODRDY")
                self.events.append("odswen")
                self._arm("ODSWRDY")
        elif addr == FLASH_ACR:
            self._check_clocks(r[RCC_CFGR], (r[RCC_CFGR] >> 2) & 3)  # fewer wait states than HCLK needs?
            self.events.append(f"latency={new & 0xF}")
        elif addr == RCC_CFGR:
            sw = new & 3
            if (old ^ new) & 0xFCF0:
                self.events.append("dividers")
            self._check_clocks(new, (old >> 2) & 3)  # the dividers now, at the current source
            if sw != (old & 3):
                if sw == 2 and not r[RCC_CR] & PLLRDY:
                    raise Violation("SYSCLK switched to a PLL that is not locked")
                self._check_clocks(new, sw)
                self.events.append({0: "switch_hsi", 1: "switch_hse", 2: "switch_pll"}[sw])
                self._arm("SWS")
        elif addr == PWR_CSR:
            raise Violation("PWR_CSR is read-only here")


# --- STM32H7 (RM0399) -------------------------------------------------------------------------------
H7_RCC = 0x58024400
H_CR, H_CFGR, H_D1CFGR, H_D2CFGR, H_D3CFGR = H7_RCC, H7_RCC + 0x10, H7_RCC + 0x18, H7_RCC + 0x1C, H7_RCC + 0x20
H_PLLCKSELR, H_PLLCFGR, H_PLL1DIVR = H7_RCC + 0x28, H7_RCC + 0x2C, H7_RCC + 0x30
H_PWR_CSR1, H_PWR_CR3, H_PWR_D3CR, H_FLASH_ACR = 0x58024804, 0x5802480C, 0x58024818, 0x52002000
PLL1ON, PLL1RDY = 1 << 24, 1 << 25
H7_SUPPLY = {"direct-smps": 0x04, "ldo": 0x02}
H7_WS_VOS1 = [70, 140, 185, 210, 225]  # RM0399 wait-state table: AXI MHz per wait state, VOS1


class H7Model(Model):
    HSI = 64 * MHZ

    def __init__(self, wired: str = "direct-smps", never=(), cr3=0x06):
        super().__init__(never)
        self.wired = wired  # the supply the board is built for (UM2411: direct SMPS by default)
        self.cr3_written = cr3 != 0x06
        self.regs = {H_CR: 0x25, H_CFGR: 0, H_D1CFGR: 0, H_D2CFGR: 0, H_D3CFGR: 0,
                     H_PLLCKSELR: 0x02020200, H_PLLCFGR: 0x01FF0000, H_PLL1DIVR: 0x01010280,
                     H_PWR_CSR1: (1 << 13) if self.cr3_written else 0, H_PWR_CR3: cr3,
                     H_PWR_D3CR: 0x4000, H_FLASH_ACR: 0x37}

    def pll1(self) -> tuple[float, float, int]:
        m = (self.regs[H_PLLCKSELR] >> 4) & 0x3F
        div = self.regs[H_PLL1DIVR]
        ref = self.HSI / m if m else 0
        vco = ref * ((div & 0x1FF) + 1)
        return ref, vco, int(vco // (((div >> 9) & 0x7F) + 1))

    def freqs(self, sw=None, d1=None, d2=None, d3=None) -> dict:
        sw = (self.regs[H_CFGR] >> 3) & 7 if sw is None else sw
        d1 = self.regs[H_D1CFGR] if d1 is None else d1
        d2 = self.regs[H_D2CFGR] if d2 is None else d2
        d3 = self.regs[H_D3CFGR] if d3 is None else d3
        sysclk = {0: self.HSI, 3: self.pll1()[2]}[sw]
        cpu = sysclk // _hpre((d1 >> 8) & 0xF)
        hclk = cpu // _hpre(d1 & 0xF)
        return {"sysclk": sysclk, "cpu": cpu, "hclk": hclk, "apb3": hclk // _ppre((d1 >> 4) & 7),
                "apb1": hclk // _ppre((d2 >> 4) & 7), "apb2": hclk // _ppre((d2 >> 8) & 7),
                "apb4": hclk // _ppre((d3 >> 4) & 7)}

    def _check(self, **kw) -> None:
        fr = self.freqs(**kw)
        vos1 = (self.regs[H_PWR_D3CR] >> 14) & 3 == 3 and self.regs[H_PWR_D3CR] & (1 << 13)
        cpu_max, hclk_max, apb_max = (400, 200, 100) if vos1 else (64, 64, 64)
        if fr["cpu"] > cpu_max * MHZ or fr["hclk"] > hclk_max * MHZ or \
                max(fr[b] for b in ("apb1", "apb2", "apb3", "apb4")) > apb_max * MHZ:
            raise Violation(f"clocks {fr} above the limits of the current voltage scale")
        ws = self.regs[H_FLASH_ACR] & 0xF
        if fr["hclk"] > 64 * MHZ and (ws >= len(H7_WS_VOS1) or fr["hclk"] > H7_WS_VOS1[ws] * MHZ):
            raise Violation(f"AXI clock {fr['hclk']:,} Hz with {ws} flash wait states")

    def on_read(self, addr: int) -> None:
        r = self.regs
        if addr == H_CR and self._ready("PLL1RDY"):
            r[H_CR] |= PLL1RDY
        elif addr == H_CFGR and self._ready("SWS"):
            r[H_CFGR] = (r[H_CFGR] & ~0x38) | ((r[H_CFGR] & 7) << 3)
            self.pending.pop("SWS")
        elif addr == H_PWR_CSR1 and self._ready("ACTVOSRDY"):
            r[H_PWR_CSR1] |= 1 << 13
        elif addr == H_PWR_D3CR and self._ready("VOSRDY"):
            r[H_PWR_D3CR] |= 1 << 13

    def on_write(self, addr: int, old: int, new: int) -> None:
        r = self.regs
        if addr == H_PWR_CR3:
            if (old ^ new) & 0x3F:
                if self.cr3_written:
                    r[addr] = old  # written once since power-on: the write is ignored
                    self.events.append("supply_ignored")
                    return
                self.cr3_written = True
                if new & 0x3F != H7_SUPPLY[self.wired]:
                    raise Violation(f"PWR_CR3 supply 0x{new & 0x3F:02X} on a board wired for {self.wired}: "
                                    f"the part locks until recovered by hand")
                self.events.append("supply")
                self._arm("ACTVOSRDY")
        elif addr == H_PWR_D3CR:
            if (old ^ new) & 0xC000:
                if not r[H_PWR_CSR1] & (1 << 13):
                    raise Violation("VOS changed before the supply configuration is active (ACTVOSRDY)")
                r[addr] &= ~(1 << 13)
                self.events.append("vos")
                self._arm("VOSRDY")
        elif addr == H_FLASH_ACR:
            self._check()
            self.events.append(f"latency={new & 0xF}")
        elif addr in (H_PLLCKSELR, H_PLLCFGR, H_PLL1DIVR):
            if r[H_CR] & PLL1ON and old != new:
                raise Violation(f"PLL1 setting 0x{addr:08X} written while PLL1 is on")
            self.events.append("pll_config")
        elif addr == H_CR:
            if new & PLL1ON and not old & PLL1ON:
                ref, vco, _ = self.pll1()
                rge = (r[H_PLLCFGR] >> 2) & 3
                lo, hi = ((1, 2), (2, 4), (4, 8), (8, 16))[rge]
                if not lo * MHZ <= ref <= hi * MHZ or r[H_PLLCFGR] & 2 or not 192 * MHZ <= vco <= 836 * MHZ:
                    raise Violation(f"PLL1 on with ref {ref:,.0f} Hz (range {rge}), VCO {vco:,.0f} Hz")
                if (r[H_PLL1DIVR] >> 9) & 1 == 0 and (r[H_PLL1DIVR] >> 9) & 0x7F:
                    raise Violation("PLL1 DIVP must be an even factor")
                if not self.cr3_written:
                    raise Violation("the clock changed before the supply configuration was written (RM0399 PWR_CR3)")
                self.events.append("pll_on")
                self._arm("PLL1RDY")
            if old & PLL1ON and not new & PLL1ON:
                if (r[H_CFGR] >> 3) & 7 == 3:
                    raise Violation("PLL1 switched off while it clocks SYSCLK")
                r[H_CR] &= ~PLL1RDY
                self.pending.pop("PLL1RDY", None)
        elif addr in (H_D1CFGR, H_D2CFGR, H_D3CFGR):
            self._check()
            if old != new:
                self.events.append("dividers")
        elif addr == H_CFGR:
            sw = new & 7
            if sw != old & 7:
                if sw == 3 and not r[H_CR] & PLL1RDY:
                    raise Violation("SYSCLK switched to a PLL1 that is not locked")
                self._check(sw=sw)
                self.events.append({0: "switch_hsi", 3: "switch_pll"}[sw])
                self._arm("SWS")


# --- running the C ----------------------------------------------------------------------------------
READ = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32)
WRITE = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_uint32)
SHIM = """#include <stdint.h>
uint32_t (*tk_model_read)(uint32_t);
void (*tk_model_write)(uint32_t, uint32_t);
void tk_model_set(uint32_t (*r)(uint32_t), void (*w)(uint32_t, uint32_t)) { tk_model_read = r; tk_model_write = w; }
"""


@dataclass
class ClockRun:
    model: Model
    fault: str | None
    target: boards.Target


def hardware_target(board: str, variant: str = "release") -> boards.Target:
    """The board built for the hardware at clock=max (through its probe: not for QEMU)."""
    methods = boards.load_board(ROOT, board, "reset").flash_methods
    probe = next(m for m in methods if m in ("openocd", "pyocd"))
    return boards.resolve(ROOT, board, variant, clock="max", flasher=probe)


def build(board: str, tmp: Path) -> tuple[Path, boards.Target]:
    """The board's clock=max driver compiled for the host against the model (a shared library)."""
    target = hardware_target(board)
    driver = COMMON / "cortex-m" / target.board.clock.source
    shim = tmp / "shim.c"
    shim.write_text(SHIM)
    lib = tmp / f"clock_{board}.so"
    macros = [f"-D{d}" for d in target.defines if d.startswith(("TK_CLK", "TK_CLOCK"))]
    cmd = ["gcc", "-shared", "-fPIC", "-O1", "-std=gnu11", "-Wall", "-Wextra", "-Werror", "-DTK_CLOCK_MODEL",
           "-DTK_CLK_POLLS=200u", *macros, f"-I{COMMON}", str(shim), str(driver), "-o", str(lib)]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return lib, target


def run(lib: Path, target: boards.Target, model: Model) -> ClockRun:
    so = ctypes.CDLL(str(lib))
    errors: list[BaseException] = []

    def guard(fn):
        def call(*args):
            if errors:  # after a violation, stop answering: the C then times out quickly
                return 0
            try:
                return fn(*args)
            except Violation as e:
                errors.append(e)
                return 0
        return call

    read, write = READ(guard(model.read)), WRITE(guard(model.write))
    so.tk_model_set(read, write)
    so.tk_clock_init.restype = ctypes.c_char_p
    out = so.tk_clock_init()
    if errors:
        raise errors[0]
    return ClockRun(model=model, fault=out.decode() if out else None, target=target)
