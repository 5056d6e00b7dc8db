"""The cycle estimate: a QEMU TCG plugin (tools/qemu-cycles/) charges every executed instruction
its cost on the board's core (the Cortex-M4 TRM's timing table, or a Cortex-M7 dual-issue model)
and records its running totals each time the firmware reads its counter (enters tk_cycles). The
difference of two records covers exactly the window whose instruction count the firmware reports.

    core = cycles.core_of(board)                     # "m4", "m7" or None (no estimate for it)
    cmd = cycles.compile_command(so)                 # the host gcc line (the SCons tool runs it)
    args = cycles.qemu_args(so, core, out, elf)      # -plugin ... for qemu-system-arm
    marks = cycles.read_marks(out)                   # after the run
    wins = cycles.windows(marks)                     # one per counter difference the firmware took

Which board has which model is board.toml's [emulator] `cycle_estimate` (the emulated mps2 boards:
their code and data are zero-wait SSRAM, so no wait states are charged). A QEMU without plugin
support, or a missing host gcc, leaves the estimate out: `unavailable()` says why, once.

How far off it can be. Cortex-M4: every figure the TRM's Table 3-1 states is charged exactly (the
micro-benchmarks of tests/unit/test_cycle_estimate.py); what the TRM leaves open is bounded:
SDIV/UDIV +-5 cycles each (counted: Window.bounds), the refill P of a taken branch +-1 (on the
project's unrolled kernels taken branches cost 0.3% of the cycles), IT folding and skipped IT
instructions a cycle each, no interrupt entry or bus contention: within a few percent on the
project's kernels, if the silicon runs from zero-wait memory. Cortex-M7: a model, not a table
(tools/qemu-cycles/m7.c names its sources and assumptions): expect tens of percent on one loop;
use it to rank code, not to quote.
"""
from __future__ import annotations

import functools
import re
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tinykiln import KilnError, paths

PLUGIN_DIR = paths.ROOT / "tools" / "qemu-cycles"
SOURCES = ("plugin.c", "thumb.c", "m4.c", "m7.c")
HEADERS = ("qemu_plugin_api.h", "thumb.h", "timing.h")
CFLAGS = ["-std=c11", "-O2", "-fPIC", "-shared", "-fvisibility=hidden", "-Wall", "-Wextra", "-Werror"]
CORES = {"m4": "Cortex-M4 (TRM timing table)", "m7": "Cortex-M7 (dual-issue model)"}
MARK_SYMBOL = "tk_cycles"  # the firmware's counter read (boards/common/cortex-m/cycles.c)
# A divide costs a fixed estimate (the plugin cannot see operand values): +-5 cycles each on the
# M4 (its TRM: 2-12); tools/qemu-cycles/timing.h.
DIVIDE_ERROR = 5


def source_paths() -> list[Path]:
    return [PLUGIN_DIR / name for name in SOURCES]


def header_paths() -> list[Path]:
    return [PLUGIN_DIR / name for name in HEADERS]


def compile_command(out, sources=None) -> list[str]:
    """The host gcc command building the plugin at `out` (warnings are errors)."""
    return ["gcc", *CFLAGS, "-o", str(out), *[str(s) for s in (sources or source_paths())]]


def build(out) -> Path:
    """Build the plugin at `out` now (tests, tools); KilnError with gcc's message if it fails."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(compile_command(out), capture_output=True, text=True)
    if proc.returncode != 0:
        raise KilnError(f"the cycle-estimate plugin does not build:\n{proc.stderr.strip()}")
    return out


def core_of(board) -> str | None:
    """The timing model of `board`'s core under QEMU ("m4", "m7"), None if it has none."""
    core = (board.emulator or {}).get("cycle_estimate")
    if core is not None and core not in CORES:
        raise KilnError(f"board {board.name}: [emulator] cycle_estimate = {core!r}; known: "
                        f"{', '.join(CORES)}")
    return core


@functools.lru_cache(maxsize=None)
def unavailable() -> str:
    """Why no estimate can be made on this machine ('' when it can): QEMU and gcc are asked once."""
    if shutil.which("gcc") is None:
        return "no host gcc to build the QEMU plugin (Debian package gcc)"
    qemu = shutil.which("qemu-system-arm")
    if qemu is None:
        return "no qemu-system-arm"
    try:
        text = subprocess.run([qemu, "-help"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"qemu-system-arm -help failed: {e}"
    if "-plugin" not in text:
        return "this qemu-system-arm is built without TCG plugin support"
    return ""


def mark_address(elf) -> int | None:
    """The address of the firmware's counter read (tk_cycles), None if the ELF has none."""
    from elftools.elf.elffile import ELFFile

    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        if symtab is None:
            return None
        for sym in symtab.get_symbol_by_name(MARK_SYMBOL) or []:
            if sym["st_info"]["type"] == "STT_FUNC":
                return sym["st_value"] & ~1
    return None


def qemu_args(plugin, core: str, out, elf) -> list[str]:
    """-plugin arguments recording `elf`'s counter reads into `out` ([] if it has no tk_cycles)."""
    mark = mark_address(elf)
    if mark is None:
        return []
    for path in (plugin, out):
        if "," in str(path):
            raise KilnError(f"{path}: QEMU cannot take a plugin path with a comma in it")
    return ["-plugin", f"{plugin},core={core},out={out},mark={mark:#x}"]


@dataclass(frozen=True)
class Mark:
    """The plugin's running totals when the firmware entered tk_cycles."""
    instructions: int
    cycles: int
    divides: int


@dataclass(frozen=True)
class Window:
    """The difference of two marks: what one counter difference of the firmware covers."""
    instructions: int
    cycles: int
    divides: int

    @property
    def bounds(self) -> tuple[int, int]:
        """The estimate's range over the divides' unknown operand values."""
        return (self.cycles - DIVIDE_ERROR * self.divides, self.cycles + DIVIDE_ERROR * self.divides)


def read_marks(path) -> list[Mark]:
    marks = []
    try:
        text = Path(path).read_text()
    except OSError:
        return []
    for line in text.splitlines():
        words = line.split()
        if len(words) == 4 and words[0] == "mark":
            marks.append(Mark(*map(int, words[1:])))
    return marks


def window(a: Mark, b: Mark) -> Window:
    return Window(b.instructions - a.instructions, b.cycles - a.cycles, b.divides - a.divides)


def windows(marks: list[Mark]) -> list[Window]:
    """The windows of runs measured as tk_cycles() - tk_cycles(): marks taken in pairs."""
    return [window(marks[i], marks[i + 1]) for i in range(0, len(marks) - 1, 2)]


def matches(window: Window, instructions: int) -> bool:
    """Whether the plugin's window is the one the firmware counted `instructions` over: equal to
    SysTick's resolution (40 instructions at 25 MHz) and tk_cycles's own few instructions."""
    return abs(window.instructions - instructions) <= 100 + instructions // 10_000


def median(values: list[int]) -> int | None:
    """As runner.validate takes the instruction counts' median (the middle two averaged)."""
    return int(statistics.median(values)) if values else None


@dataclass
class Estimate:
    """The estimate for a session's counted runs (aligned with the firmware's counts) and, when one
    run was profiled, its layers."""
    core: str
    runs: list[Window]
    layers: list[Window] | None = None

    @property
    def per_inference(self) -> int | None:
        return median([w.cycles for w in self.runs])

    @property
    def divides(self) -> int | None:
        return median([w.divides for w in self.runs])

    def report(self) -> dict:
        """report.json's fields."""
        return {"cycles_estimated_per_inference": self.per_inference, "cycles_estimated_core": self.core,
                "cycles_estimated_divides_per_inference": self.divides}

    def note(self) -> str:
        """'estimated m7 cycles: 1,234 (Cortex-M7 (dual-issue model); 12 divides at 7 +-5)'."""
        text = f"estimated {self.core} cycles: {self.per_inference:,} ({CORES[self.core]}"
        if self.divides:
            text += f"; {self.divides:,} divides, +-{DIVIDE_ERROR} cycles each"
        return text + ")"


def session_estimate(core: str, marks: list[Mark], counts: list[int],
                     layer_counts: list[int] | None = None) -> Estimate:
    """Align a session's marks with what the firmware counted: `counts`, the instruction counts of
    its last runs measured as tk_cycles() - tk_cycles() (two marks each), in order; with
    `layer_counts`, one profiled run after them (its marks: start, before the first layer, after
    each layer, end). Earlier marks (runs the counts leave out) are skipped. KilnError if the
    windows are not the ones the firmware counted."""
    layers = None
    if layer_counts is not None:
        k = len(layer_counts) + 3
        if len(marks) < k:
            raise KilnError(f"the plugin recorded {len(marks)} counter reads, fewer than the profiled run's {k}")
        profiled, marks = marks[-k:], marks[:-k]
        layers = [window(profiled[i], profiled[i + 1]) for i in range(1, len(layer_counts) + 1)]
        for i, (w, c) in enumerate(zip(layers, layer_counts)):
            if not matches(w, c):
                raise KilnError(f"layer {i}: the plugin counted {w.instructions:,} instructions, the "
                                f"firmware {c:,}")
    runs = windows(marks)
    if len(runs) < len(counts):
        raise KilnError(f"the plugin recorded {len(runs)} runs, the firmware counted {len(counts)}")
    runs = runs[len(runs) - len(counts):]
    for i, (w, c) in enumerate(zip(runs, counts)):
        if not matches(w, c):
            raise KilnError(f"run {i}: the plugin counted {w.instructions:,} instructions, the "
                            f"firmware {c:,}")
    return Estimate(core, runs, layers)


_PERF_RUNS = re.compile(r"perf: .*; (\d+) warm-up, (\d+) timed runs")
_PERF_COUNTS = re.compile(r"perf: instructions/inference: min (\d+) avg (\d+) max (\d+)")


def perf_estimate(core: str, marks: list[Mark], output: str) -> Estimate | None:
    """The estimate of the perf app's timed runs (runtime/apps/perf: warm-up runs, then timed runs,
    each measured as tk_cycles() - tk_cycles()) from what it printed; None if `output` is not the
    perf app's. KilnError if the plugin's windows are not the ones it counted."""
    runs, counts = _PERF_RUNS.search(output), _PERF_COUNTS.search(output)
    if not (runs and counts):
        return None
    warmup, timed = map(int, runs.groups())
    wins = windows(marks)
    if len(wins) != warmup + timed:
        raise KilnError(f"the plugin recorded {len(wins)} runs, the perf app made {warmup + timed}")
    wins = wins[warmup:]
    lo, avg, hi = map(int, counts.groups())
    got = sorted(w.instructions for w in wins)
    mean = sum(got) // len(got)
    if not (matches(Window(got[0], 0, 0), lo) and matches(Window(mean, 0, 0), avg)
            and matches(Window(got[-1], 0, 0), hi)):
        raise KilnError(f"the plugin counted {got[0]}..{got[-1]} instructions per run, the perf app {lo}..{hi}")
    return Estimate(core, wins)


def perf_line(estimate: Estimate) -> str:
    """The perf app's summary line for the estimate, beside its own instruction line."""
    values = [w.cycles for w in estimate.runs]
    return (f"perf: estimated {estimate.core} cycles/inference: min {min(values)} avg "
            f"{sum(values) // len(values)} max {max(values)} ({CORES[estimate.core]}; "
            f"{estimate.divides or 0} divides, +-{DIVIDE_ERROR} cycles each)")
