"""Boards (boards/<name>/board.toml) and variants (variants/<name>.toml): loading and validation.

A board says what the hardware is: CPU flags, memory regions, console, cycle counter, flash methods,
the emulator that runs it, and its own C sources. A variant layers build choices over a board: the
optimisation level and extra flags, and which memory region gets code, weights, activations and the
stack (its "placement"). `resolve(root, board, variant)` returns both, checked against each other.

Each hardware fact is typed once in board.toml; this module turns the facts into what the C and the
linker read: the TK_* macros (`_fact_defines`), the sources the arch and the console driver add
(`ARCHES`, [console] driver), the linker script (the arch's unless the board has its own link.ld),
memory.ld and board_info.c. A board is loaded at a clock (clock=, flasher=): [clock] and the clock
mode a build runs at are tinykiln.clocks'; the clock macros and the clock driver follow from it.

Plain Python (no SCons): the build, the tests and the runners all use it.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tinykiln import KilnError, clocks

DEFAULT_BOARD = "mps2-an500"
DEFAULT_VARIANT = "release"

# Placement roles a variant or board may assign to a memory region, and the output sections of the
# linker scripts (boards/common/*/sections.ld) that each role holds.
PLACEMENT_ROLES = {
    "text": (".isr_vector", ".vectors", ".text", ".rodata", ".ARM.extab", ".ARM.exidx",
             ".init_array", ".fini_array", ".preinit_array"),
    "data": (".data", ".bss", ".heap", ".mmu_table"),
    "weights": (".nn_weights",),
    "activations": (".nn_data_act",),
    "stack": (".stack",),
}
FLASHERS = ("qemu", "openocd", "pyocd", "host")

# The float32 rule: C compiles every float operation as written. GCC's default for GNU C is
# -ffp-contract=fast, which fuses a*b+c into one VFMA (one rounding instead of two) wherever the FPU
# has it (Cortex-M4F, M7, M33): float kernels then differ from LiteRT's reference kernels, which
# round the product and the sum apart (~1e-5 relative on long reductions). With contraction off the
# kernels compute LiteRT's operations one by one, and validation keeps its one float tolerance
# (runner/validate.py FLOAT_RTOL). Integer code has nothing to contract: int8 firmware is unchanged.
FLOAT_CFLAGS = ["-ffp-contract=off"]
DEFAULT_BAUD = 115200


@dataclass(frozen=True)
class Arch:
    """What an arch gives each of its boards, from boards/common/<dir>/."""
    dir: str
    sources: tuple[str, ...]  # start-up, cycle counter, exit: compiled after the board's own sources
    uart_clock_macro: str = ""  # the macro its C reads for [console] clock_hz (the UART's own clock)


ARCHES = {
    "cortex-m": Arch("cortex-m", ("startup.c", "cycles.c"), uart_clock_macro="TK_UART_CLOCK_HZ"),
    # The one Cortex-A is the Zynq-7000's A9: its start-up programs the A9's MMU and SCU timer.
    "cortex-a": Arch("cortex-a9", ("startup.S", "a9.c"), uart_clock_macro="TK_UART_REF_HZ"),
    "host": Arch("host", ("board.c",)),  # console, counter and exit of a host process
}

# [console] keys a shared C part reads (beyond base), by its path under boards/common/.
CONSOLE_NEEDS = {
    "cortex-m/stm32_console.c": ("gpio", "gpio_bit", "tx_pin", "rx_pin", "af", "apb", "apb_bit"),
    "cortex-a9/cadence_uart.c": ("clock_hz",),
}


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    size: int
    access: str  # "rx" for flash-like (loaded by the flasher), "rwx" for RAM
    note: str = ""
    alias_of: str = ""  # the same cells seen through another bus (the F7's flash on ITCM): the flasher
    #                      writes the other region's addresses, so what runs here is loaded there

    @property
    def end(self) -> int:
        return self.origin + self.size

    @property
    def writable(self) -> bool:
        return "w" in self.access


@dataclass
class Board:
    name: str
    dir: Path
    description: str
    core: str
    arch: str  # a key of ARCHES: "cortex-m", "cortex-a" or "host"
    cpu_flags: list[str]
    clock_hz: int  # the rated clock (board.toml clock_hz): what clock=max runs at
    sources: list[Path]  # the board's own, then the arch's, then the console driver
    defines: list[str]  # from the facts (_fact_defines), then board.toml's extra `defines`
    memory: list[Region]
    placement: dict[str, str]
    stack_size: int
    heap_size: int
    console: dict
    emulator: dict | None
    flash: dict  # method -> its settings; "methods" lists them in preference order
    linker_script: Path | None  # None on the host
    clock_tree: clocks.ClockTree | None = None  # board.toml [clock]; None: one fixed clock
    clock: clocks.Plan | None = None  # the clock this build runs at (clock=, tinykiln.clocks)

    @property
    def core_hz(self) -> int:
        """The core clock of this build: TK_CLOCK_HZ, SysTick's clock, tk_clock_hz()."""
        return self.clock.core_hz if self.clock else self.clock_hz

    @property
    def reset_hz(self) -> int:
        """The core clock after reset (the rated one on a board with one fixed clock)."""
        return self.clock_tree.chip.reset_hz if self.clock_tree else self.clock_hz

    @property
    def baud(self) -> int:
        return int(self.console.get("baud", DEFAULT_BAUD))

    @property
    def is_host(self) -> bool:
        return self.arch == "host"

    @property
    def flash_methods(self) -> list[str]:
        return list(self.flash.get("methods", []))

    def region(self, name: str) -> Region:
        for r in self.memory:
            if r.name == name:
                return r
        raise KilnError(f"board {self.name}: no memory region {name!r} "
                        f"(regions: {', '.join(r.name for r in self.memory)})")


@dataclass
class Variant:
    name: str
    path: Path
    description: str
    boards: list[str]  # ["*"] = every board
    cflags: list[str]
    ldflags: list[str]
    defines: list[str]
    placement: dict[str, str]
    stack_size: int | None
    heap_size: int | None

    def applies_to(self, board: str) -> bool:
        return "*" in self.boards or board in self.boards


def board_names(root: Path) -> list[str]:
    return sorted(p.parent.name for p in (Path(root) / "boards").glob("*/board.toml"))


def variant_names(root: Path) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "variants").glob("*.toml"))


def unknown_name_error(kind: str, name: str, valid: list[str]) -> KilnError:
    """'unknown board 'x'; did you mean 'y'? valid boards: ...' as a KilnError."""
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return KilnError(f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(valid)}.")


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise KilnError(f"{path}: invalid TOML: {e}") from None


def _require(data: dict, key: str, where: Path, table: str = "", why: str = ""):
    if key not in data:
        what = f"[{table}] {key}" if table else repr(key)
        raise KilnError(f"{where}: missing key {what}" + (f" ({why})" if why else ""))
    return data[key]


def _number(data: dict, key: str, where: Path, table: str = "", why: str = "") -> int:
    value = _require(data, key, where, table, why)
    if not isinstance(value, int) or isinstance(value, bool):
        what = f"[{table}] {key}" if table else key
        raise KilnError(f"{where}: {what} must be an integer, not {value!r}")
    return value


def _hex(value: int) -> str:
    return f"0x{value:08X}u"


def _fact_defines(d: dict, path: Path, memory: list[Region], sources: list[Path],
                  clock: clocks.Plan) -> list[str]:
    """The TK_* macros that board.toml's facts give to the board's C, checked to be there.

    The order is fixed (it is the one the boards typed by hand before): the debug variant's -g3
    records the command-line macros, in order, in the ELF's .debug_macro.
    """
    arch = d["arch"]
    if arch == "host":
        return []
    console = d.get("console", {})
    common = (path.parent.parent / "common").resolve()
    for src in sources:
        part = src.relative_to(common).as_posix() if src.is_relative_to(common) else ""
        for key in CONSOLE_NEEDS.get(part, ()):
            _require(console, key, path, "console", f"{part} reads it")

    def number(key, why=""):
        return _number(console, key, path, "console", why)

    out = [f"TK_UART_BASE={_hex(number('base', 'the console UART'))}"]
    if "clock_hz" in console:  # the UART's own clock, when it is not the core clock
        out.append(f"{ARCHES[arch].uart_clock_macro}={number('clock_hz')}u")
    elif clock.uart_hz is not None:  # the console's bus clock in this clock mode
        out.append(f"{ARCHES[arch].uart_clock_macro}={clock.uart_hz}u")
    if arch == "cortex-m":
        out.append(f"TK_SYSTICK_HZ={clock.core_hz}u")  # cycles.c clocks SysTick from the core
    else:
        timer = _number(d.get("cycles", {}), "timer_hz", path, "cycles", "the A9 global timer's clock")
        out.append(f"TK_GTIMER_HZ={timer}u")
        ddr = [r for r in memory if r.name == "DDR"]
        if not ddr:
            raise KilnError(f"{path}: missing key [[memory]] name = \"DDR\" (a9.c maps it cacheable)")
        out.append(f"TK_DDR_END={_hex(ddr[0].end)}")
    if arch == "cortex-m" and "emulator" in d:
        out.append("TK_EXIT_SEMIHOSTING")  # startup.c: a run under QEMU ends with a semihosting exit
    if d["core"] == "cortex-m7":
        out.append("TK_M7_CACHES")
    if "gpio" in console:  # an STM32 console's port, pins and bus (stm32_console.c)
        why = "the STM32 console pins"
        out += [f"TK_CONSOLE_GPIO={_hex(number('gpio', why))}", f"TK_CONSOLE_GPIO_BIT={number('gpio_bit', why)}",
                f"TK_CONSOLE_TX_PIN={number('tx_pin', why)}", f"TK_CONSOLE_RX_PIN={number('rx_pin', why)}",
                f"TK_CONSOLE_AF={number('af', why)}"]
        if number("apb", why) not in (1, 2):
            raise KilnError(f"{path}: [console] apb must be 1 or 2, not {console['apb']!r}")
        if console["apb"] == 2:
            out.append("TK_CONSOLE_APB2")
        out.append(f"TK_CONSOLE_APB_BIT={number('apb_bit', why)}")
    return out + clock.defines


def _extra_defines(d: dict, path: Path, generated: list[str]) -> list[str]:
    """board.toml's `defines`: what no fact gives. A macro a fact gives may not be typed again."""
    extra = list(d.get("defines", []))
    given = {m.split("=")[0] for m in generated} | {"TK_CLOCK_HZ", "TK_CONSOLE_BAUD", "TK_CLOCK_MAX"}
    for macro in extra:
        if macro.split("=")[0] in given:
            raise KilnError(f"{path}: defines sets {macro.split('=')[0]}, which board.toml's structured "
                            f"keys already give: drop it from defines")
    return extra


def _sources(d: dict, path: Path, arch: Arch) -> list[Path]:
    """The board's own sources, then its arch's, then its console driver: the link order."""
    common = path.parent.parent / "common" / arch.dir
    sources = [(path.parent / s).resolve() for s in d.get("sources", [])]
    sources += [(common / s).resolve() for s in arch.sources]
    if d["arch"] != "host":
        driver = _require(d.get("console", {}), "driver", path, "console",
                          f"the UART's C driver, boards/common/{arch.dir}/<driver>.c")
        sources.append((common / f"{driver}.c").resolve())
    for s in sources:
        if not s.is_file():
            raise KilnError(f"{path}: source {s} does not exist")
    return sources


def _clock_plan(d: dict, tree, clock: str, flasher: str) -> clocks.Plan:
    """The clock a build of this board runs at: clock= (auto/reset/max) and where it goes."""
    methods = list(d.get("flash", {}).get("methods", []))
    emulator = d.get("emulator")
    mode = clocks.mode_for(tree is not None, emulator is not None, clock, flasher or (methods or [""])[0])
    console = d.get("console", {})
    bus = f"apb{console['apb']}" if tree is not None and "apb" in console and "clock_hz" not in console \
        else None
    return clocks.plan(tree, d["clock_hz"], (emulator or {}).get("clock_hz"), bus, mode)


def load_board(root: Path, name: str, clock: str = "auto", flasher: str = "") -> Board:
    """boards/<name>/board.toml, at the clock clock= and flasher= mean (tinykiln.clocks.mode_for)."""
    root = Path(root)
    names = board_names(root)
    if name not in names:
        raise unknown_name_error("board", name, names)
    bdir = root / "boards" / name
    path = bdir / "board.toml"
    d = _read_toml(path)
    arch = _require(d, "arch", path)
    if arch not in ARCHES:
        raise KilnError(f"{path}: arch must be {', '.join(ARCHES)}, not {arch!r}")
    _require(d, "core", path)
    _number(d, "clock_hz", path)
    memory = [Region(m["name"], int(m["origin"]), int(m["size"]), m.get("access", "rwx"),
                     m.get("note", ""), m.get("alias_of", "")) for m in d.get("memory", [])]
    for r in memory:
        if r.alias_of and (r.alias_of not in [m.name for m in memory] or r.writable):
            raise KilnError(f"{path}: [[memory]] {r.name}: alias_of must name another region of the board "
                            f"and the alias be read-only (access = \"rx\"), not {r.alias_of!r}")
    sources = _sources(d, path, ARCHES[arch])
    tree = clocks.load(d, path)
    plan = _clock_plan(d, tree, clock, flasher)
    if plan.source:  # clock=max: the clock driver, after the board's own sources
        driver = (root / "boards" / "common" / "cortex-m" / plan.source).resolve()
        sources.insert(len(d.get("sources", [])), driver)
    defines = _fact_defines(d, path, memory, sources, plan)
    defines += _extra_defines(d, path, defines)
    placement = dict(d.get("placement", {}))
    stack_size = int(placement.pop("stack_size", 0x2000))
    heap_size = int(placement.pop("heap_size", 0))
    linker_script = None
    if arch != "host":  # the board's own link.ld if it has one, else its arch's
        own = bdir / "link.ld"
        linker_script = own if own.is_file() else root / "boards" / "common" / ARCHES[arch].dir / "link.ld"
    board = Board(
        name=name, dir=bdir, description=d.get("description", ""),
        core=d["core"], arch=arch, cpu_flags=list(d.get("cpu_flags", [])),
        clock_hz=d["clock_hz"], sources=sources, defines=defines, memory=memory,
        placement=placement, stack_size=stack_size, heap_size=heap_size,
        console=dict(d.get("console", {})), emulator=d.get("emulator"),
        flash=dict(d.get("flash", {})), linker_script=linker_script, clock_tree=tree, clock=plan)
    for m in board.flash_methods:
        if m not in FLASHERS:
            raise KilnError(f"{path}: unknown flash method {m!r} (known: {', '.join(FLASHERS)})")
    if not board.is_host:
        if not linker_script.is_file():
            raise KilnError(f"{path}: no linker script: neither {bdir / 'link.ld'} nor {linker_script}")
        _check_placement(board, placement, path)
    return board


def load_variant(root: Path, name: str) -> Variant:
    root = Path(root)
    names = variant_names(root)
    if name not in names:
        raise unknown_name_error("variant", name, names)
    path = root / "variants" / f"{name}.toml"
    d = _read_toml(path)
    boards = d.get("boards", ["*"])
    if isinstance(boards, str):
        boards = [boards]
    placement = dict(d.get("placement", {}))
    stack = placement.pop("stack_size", None)
    heap = placement.pop("heap_size", None)
    return Variant(
        name=name, path=path, description=d.get("description", ""), boards=list(boards),
        cflags=list(d.get("cflags", [])), ldflags=list(d.get("ldflags", [])),
        defines=list(d.get("defines", [])), placement=placement,
        stack_size=None if stack is None else int(stack),
        heap_size=None if heap is None else int(heap))


def _check_placement(board: Board, placement: dict, where) -> None:
    names = [r.name for r in board.memory]
    for role, region in placement.items():
        if role not in PLACEMENT_ROLES:
            raise KilnError(f"{where}: unknown placement role {role!r} "
                            f"(roles: {', '.join(PLACEMENT_ROLES)})")
        if region not in names:
            raise KilnError(f"{where}: placement {role} = {region!r} is not a memory region of "
                            f"board {board.name} (regions: {', '.join(names)})")


@dataclass
class Target:
    """A board with a variant applied: what the build needs."""
    board: Board
    variant: Variant
    placement: dict[str, str]
    stack_size: int
    heap_size: int

    @property
    def cflags(self) -> list[str]:
        """The board's CPU flags, the float32 rule (FLOAT_CFLAGS), then the variant's."""
        return self.board.cpu_flags + FLOAT_CFLAGS + self.variant.cflags

    @property
    def defines(self) -> list[str]:
        """Every macro of the build but defines=: the board's, the variant's, the core clock and baud
        (in this order, which the debug variant records: see _fact_defines)."""
        return self.board.defines + self.variant.defines + [f"TK_CLOCK_HZ={self.board.core_hz}u",
                                                            f"TK_CONSOLE_BAUD={self.board.baud}u"]

    def region_of_role(self, role: str) -> Region:
        return self.board.region(self.placement[role])

    @property
    def text_load_region(self) -> Region | None:
        """Where the flasher writes the code (and .data's initial values): the text region, or the
        region it is an alias of (code run through the F7's ITCM flash interface is written to FLASH);
        None for a board without memory regions (host)."""
        if "text" not in self.placement:
            return None
        text = self.region_of_role("text")
        return self.board.region(text.alias_of) if text.alias_of else text


def resolve(root: Path, board_name: str, variant_name: str, clock: str = "auto", flasher: str = "") -> Target:
    board = load_board(root, board_name, clock, flasher)
    variant = load_variant(root, variant_name)
    if not variant.applies_to(board.name):
        fits = [v for v in variant_names(root) if load_variant(root, v).applies_to(board.name)]
        raise KilnError(f"variant {variant.name!r} does not apply to board {board.name!r} (it is "
                        f"for {', '.join(variant.boards)}). Variants for {board.name}: "
                        f"{', '.join(fits)}.")
    placement = dict(board.placement)
    if not board.is_host:
        _check_placement(board, variant.placement, variant.path)
        placement.update(variant.placement)
        missing = [r for r in PLACEMENT_ROLES if r not in placement]
        if missing:
            raise KilnError(f"board {board.name}: placement has no region for {', '.join(missing)}")
    return Target(board=board, variant=variant, placement=placement,
                  stack_size=variant.stack_size or board.stack_size,
                  heap_size=board.heap_size if variant.heap_size is None else variant.heap_size)


def memory_script(target: Target) -> str:
    """The generated part of the linker script: MEMORY from board.toml, REGION_ALIAS per role.

    The linker script (boards/common/<arch>/link.ld, or the board's own link.ld) INCLUDEs this, then
    the arch's sections script, whose output sections go to the aliased regions (REGION_TEXT,
    REGION_DATA, REGION_WEIGHTS, REGION_ACT, REGION_STACK). *_LOAD aliases say where initialised
    data is stored before the start-up copies it: the text region for RAM, the region itself for
    memory the flasher writes directly. REGION_TEXT_LOAD is where the code is written: the text
    region itself (the linker then keeps load = run address), or the region the text region is an
    alias of (board.toml alias_of).
    """
    b = target.board
    lines = [f"/* Generated by tinykiln for board {b.name}, variant {target.variant.name}. */",
             "MEMORY", "{"]
    for r in b.memory:
        lines.append(f"  {r.name} ({r.access}) : ORIGIN = 0x{r.origin:08X}, LENGTH = 0x{r.size:X}")
    lines.append("}")
    for role, alias in (("text", "TEXT"), ("data", "DATA"), ("weights", "WEIGHTS"),
                        ("activations", "ACT"), ("stack", "STACK")):
        lines.append(f'REGION_ALIAS("REGION_{alias}", {target.placement[role]});')
    weights = target.region_of_role("weights")
    weights_load = target.text_load_region.name if weights.writable else weights.name
    lines.append(f'REGION_ALIAS("REGION_WEIGHTS_LOAD", {weights_load});')
    lines.append(f'REGION_ALIAS("REGION_TEXT_LOAD", {target.text_load_region.name});')
    lines.append(f"__stack_size = 0x{target.stack_size:X};")
    lines.append(f"__heap_size = 0x{target.heap_size:X};")
    return "\n".join(lines) + "\n"


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def board_info_c(target: Target) -> str:
    """board_info.c: board facts from board.toml for tk_board.h (names, clock, memory map)."""
    b = target.board
    lines = [f"/* Generated by tinykiln from boards/{b.name}/board.toml, variant {target.variant.name}. */",
             '#include "tk_board.h"', "",
             f"const char *tk_board_name(void) {{ return {_c_string(b.name)}; }}",
             f"const char *tk_core_name(void) {{ return {_c_string(b.core)}; }}",
             f"uint32_t tk_clock_hz(void) {{ return {b.core_hz}u; }}",
             f"const char tk_variant_name[] = {_c_string(target.variant.name)};", ""]
    rows = []
    for r in b.memory:
        holds = " ".join(role for role, reg in target.placement.items() if reg == r.name)
        rows.append(f"    {{{_c_string(r.name)}, 0x{r.origin:08X}u, 0x{r.size:X}u, {_c_string(holds)}}},")
    if not rows:  # C has no empty arrays: one unused entry, count 0
        rows.append('    {"", 0u, 0u, ""},')
    lines.append("const tk_region_t tk_memory_regions[] = {")
    lines += rows
    lines.append("};")
    lines.append(f"const unsigned tk_memory_region_count = {len(b.memory)}u;")
    return "\n".join(lines) + "\n"
