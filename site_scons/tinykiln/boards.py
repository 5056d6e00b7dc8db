"""Boards (boards/<name>/board.toml) and variants (variants/<name>.toml): loading and validation.

A board says what the hardware is: CPU flags, memory regions, console, cycle counter, flash methods,
the emulator that runs it, and its C sources. A variant layers build choices over a board: the
optimisation level and extra flags, and which memory region gets code, weights, activations and the
stack (its "placement"). `resolve(root, board, variant)` returns both, checked against each other.

Plain Python (no SCons): the build, the tests and the runners all use it.
"""
from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tinykiln import KilnError

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


@dataclass(frozen=True)
class Region:
    name: str
    origin: int
    size: int
    access: str  # "rx" for flash-like (loaded by the flasher), "rwx" for RAM
    note: str = ""

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
    arch: str  # "cortex-m", "cortex-a" or "host"
    cpu_flags: list[str]
    clock_hz: int
    sources: list[Path]
    defines: list[str]
    memory: list[Region]
    placement: dict[str, str]
    stack_size: int
    heap_size: int
    console: dict
    cycles: dict
    emulator: dict | None
    flash: dict  # method -> its settings; "methods" lists them in preference order
    linker_script: Path | None
    raw: dict = field(repr=False, default_factory=dict)

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
    features: dict

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


def _require(data: dict, key: str, where: Path):
    if key not in data:
        raise KilnError(f"{where}: missing key {key!r}")
    return data[key]


def load_board(root: Path, name: str) -> Board:
    root = Path(root)
    names = board_names(root)
    if name not in names:
        raise unknown_name_error("board", name, names)
    bdir = root / "boards" / name
    path = bdir / "board.toml"
    d = _read_toml(path)
    arch = _require(d, "arch", path)
    if arch not in ("cortex-m", "cortex-a", "host"):
        raise KilnError(f"{path}: arch must be cortex-m, cortex-a or host, not {arch!r}")
    memory = [Region(m["name"], int(m["origin"]), int(m["size"]), m.get("access", "rwx"),
                     m.get("note", "")) for m in d.get("memory", [])]
    sources = [(bdir / s).resolve() for s in d.get("sources", [])]
    for s in sources:
        if not s.is_file():
            raise KilnError(f"{path}: source {s} does not exist")
    placement = dict(d.get("placement", {}))
    stack_size = int(placement.pop("stack_size", 0x2000))
    heap_size = int(placement.pop("heap_size", 0))
    ld = d.get("linker_script")
    board = Board(
        name=name, dir=bdir, description=d.get("description", ""),
        core=_require(d, "core", path), arch=arch, cpu_flags=list(d.get("cpu_flags", [])),
        clock_hz=int(_require(d, "clock_hz", path)), sources=sources,
        defines=list(d.get("defines", [])), memory=memory, placement=placement,
        stack_size=stack_size, heap_size=heap_size, console=dict(d.get("console", {})),
        cycles=dict(d.get("cycles", {})), emulator=d.get("emulator"),
        flash=dict(d.get("flash", {})), linker_script=(bdir / ld) if ld else None, raw=d)
    for m in board.flash_methods:
        if m not in FLASHERS:
            raise KilnError(f"{path}: unknown flash method {m!r} (known: {', '.join(FLASHERS)})")
    if not board.is_host:
        if board.linker_script is None or not board.linker_script.is_file():
            raise KilnError(f"{path}: linker_script missing or not found")
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
        heap_size=None if heap is None else int(heap), features=dict(d.get("features", {})))


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
        return self.board.cpu_flags + self.variant.cflags

    @property
    def defines(self) -> list[str]:
        return self.board.defines + self.variant.defines

    def region_of_role(self, role: str) -> Region:
        return self.board.region(self.placement[role])


def resolve(root: Path, board_name: str, variant_name: str) -> Target:
    board = load_board(root, board_name)
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

    The board's own linker script INCLUDEs this, then the common sections script, whose output
    sections go to the aliased regions (REGION_TEXT, REGION_DATA, REGION_WEIGHTS, REGION_ACT,
    REGION_STACK). *_LOAD aliases say where initialised data is stored before the start-up copies it:
    the text region for RAM, the region itself for memory the flasher writes directly.
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
    weights_load = target.placement["text"] if weights.writable else weights.name
    lines.append(f'REGION_ALIAS("REGION_WEIGHTS_LOAD", {weights_load});')
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
             f"uint32_t tk_clock_hz(void) {{ return {b.clock_hz}u; }}",
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
