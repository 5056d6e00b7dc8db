"""Memory use of a linked firmware: per-region report, report.json, and region-overflow errors.

Sections are read from the ELF (pyelftools). A section counts against the region that holds its
run address, and, if it is loaded from elsewhere (.data, weights copied to RAM), against the region
of its load address too: that is what the flash and the RAM must hold. The host board has no
regions; its report is the classic text/data/bss.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile

from tinykiln import KilnError
from tinykiln.boards import PLACEMENT_ROLES, Region, Target


@dataclass
class Section:
    name: str
    address: int
    load_address: int
    size: int
    nobits: bool  # occupies no file/flash space (.bss, .stack, .nn_data_act)
    executable: bool
    writable: bool


@dataclass
class RegionUse:
    region: Region
    holds: list[str]  # placement roles
    sections: dict[str, int] = field(default_factory=dict)  # name -> bytes counted here

    @property
    def used(self) -> int:
        return sum(self.sections.values())

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.region.size if self.region.size else 0.0


def read_sections(elf_path) -> list[Section]:
    """Allocated sections of an ELF with run (VMA) and load (LMA) addresses."""
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        segments = [s for s in elf.iter_segments() if s["p_type"] == "PT_LOAD"]
        out = []
        for sec in elf.iter_sections():
            flags = sec["sh_flags"]
            if not flags & SH_FLAGS.SHF_ALLOC or sec["sh_size"] == 0:
                continue
            addr = sec["sh_addr"]
            nobits = sec["sh_type"] == "SHT_NOBITS"
            lma = addr
            for seg in segments:
                if not nobits and seg["p_vaddr"] <= addr < seg["p_vaddr"] + max(seg["p_memsz"], 1):
                    lma = seg["p_paddr"] + (addr - seg["p_vaddr"])
                    break
            out.append(Section(sec.name, addr, lma, sec["sh_size"], nobits,
                               bool(flags & SH_FLAGS.SHF_EXECINSTR), bool(flags & SH_FLAGS.SHF_WRITE)))
        return out


def biggest_symbols(elf_path, section_names, limit=5) -> list[tuple[str, str, int]]:
    """(symbol, section, size) of the largest data/function symbols in the given sections."""
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        symtab = elf.get_section_by_name(".symtab")
        if symtab is None:
            return []
        index = {i: s.name for i, s in enumerate(elf.iter_sections())}
        found = {}
        for sym in symtab.iter_symbols():
            shndx = sym["st_shndx"]
            if not isinstance(shndx, int) or sym["st_size"] == 0:
                continue
            sec = index.get(shndx)
            if sec in section_names and sym["st_info"]["type"] in ("STT_OBJECT", "STT_FUNC"):
                found[(sym.name, sec)] = sym["st_size"]
        ranked = sorted(found.items(), key=lambda kv: -kv[1])[:limit]
        return [(name, sec, size) for (name, sec), size in ranked]


def _role_of_section(name: str) -> str | None:
    for role, names in PLACEMENT_ROLES.items():
        if name in names:
            return role
    return None


def _region_at(regions: list[Region], address: int) -> Region | None:
    for r in regions:
        if r.origin <= address < r.end:
            return r
    return None


def region_usage(target: Target, sections: list[Section]) -> list[RegionUse]:
    """How much of each memory region the sections use.

    Known output sections are attributed through the variant's placement (exact even when the
    link overflowed and addresses ran past a region's end); others by address.
    """
    regions = target.board.memory
    uses = {r.name: RegionUse(r, [role for role, reg in target.placement.items() if reg == r.name])
            for r in regions}
    weights_region = target.region_of_role("weights")
    for s in sections:
        role = _role_of_section(s.name)
        if role is not None:
            run = target.region_of_role(role)
            load = None
            if s.name == ".data" or (s.name == ".nn_weights" and weights_region.writable):
                load = target.text_load_region
            elif role == "text" and run.alias_of:  # run through another bus, stored in its region
                load = target.text_load_region
            if s.name == ".nn_weights" and run.writable and load is None:
                load = run
        else:
            run = _region_at(regions, s.address)
            load = _region_at(regions, s.load_address) if s.load_address != s.address else None
        if run is not None:
            uses[run.name].sections[s.name] = uses[run.name].sections.get(s.name, 0) + s.size
        if load is not None and load is not run and not s.nobits:
            key = f"{s.name} (load)"
            uses[load.name].sections[key] = uses[load.name].sections.get(key, 0) + s.size
    return [uses[r.name] for r in regions]


def host_totals(sections: list[Section]) -> dict[str, int]:
    """text / data / bss the way binutils `size` counts them, plus the model sections."""
    totals = {"text": 0, "data": 0, "bss": 0, "nn_weights": 0, "nn_data_act": 0}
    for s in sections:
        if s.name.startswith(".nn_weights"):
            totals["nn_weights"] += s.size
        elif s.name.startswith(".nn_data_act"):
            totals["nn_data_act"] += s.size
        elif s.nobits:
            totals["bss"] += s.size
        elif s.writable:
            totals["data"] += s.size
        else:
            totals["text"] += s.size
    return totals


def _bar(percent: float, width: int = 20) -> str:
    filled = min(width, int(round(width * percent / 100.0)))
    return "[" + "=" * filled + " " * (width - filled) + "]"


def format_report(uses: list[RegionUse]) -> str:
    """PlatformIO-style lines: one per region, with a bar and what the region holds."""
    width = max(len(u.region.name) for u in uses)
    lines = []
    for u in uses:
        holds = f"  ({', '.join(u.holds)})" if u.holds else ""
        lines.append(f"{u.region.name + ':':<{width + 1}} {_bar(u.percent)} {u.percent:5.1f}% "
                     f"(used {u.used} bytes from {u.region.size} bytes){holds}")
    return "\n".join(lines)


def format_host_report(totals: dict[str, int]) -> str:
    return "  ".join(f"{k} {v}" for k, v in totals.items())


def build_report(target: Target, elf_path, name: str) -> tuple[dict, str]:
    """(report.json content, printable text) for a linked ELF."""
    sections = read_sections(elf_path)
    data = {
        "board": target.board.name,
        "variant": target.variant.name,
        "target": name,
        "elf": str(elf_path),
        # the core clock this firmware runs at: clock= mode (max, reset, emulated, fixed), tinykiln.clocks
        "clock": {"mode": target.board.clock.mode if target.board.clock else "fixed",
                  "core_hz": target.board.core_hz, "rated_hz": target.board.clock_hz,
                  "reset_hz": target.board.reset_hz},
        "sections": [{"name": s.name, "address": s.address, "load_address": s.load_address,
                      "size": s.size, "type": "nobits" if s.nobits else "progbits"}
                     for s in sections],
    }
    if target.board.is_host:
        totals = host_totals(sections)
        data["totals"] = totals
        data["regions"] = []
        return data, format_host_report(totals)
    uses = region_usage(target, sections)
    data["regions"] = [{"name": u.region.name, "origin": u.region.origin, "size": u.region.size,
                        "used": u.used, "free": u.region.size - u.used,
                        "percent": round(u.percent, 2), "holds": u.holds, "sections": u.sections}
                       for u in uses]
    return data, format_report(uses)


def write_report(path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2) + "\n")


_OVERFLOW = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")


def parse_overflows(linker_output: str) -> dict[str, int]:
    """{region: bytes over} from GNU ld's messages."""
    over = {}
    for m in _OVERFLOW.finditer(linker_output):
        over[m.group(1)] = max(over.get(m.group(1), 0), int(m.group(2)))
    return over


def overflow_error(target: Target, overflows: dict[str, int], elf_path, optimize: str = "size",
                   int16_extra: int = 0) -> KilnError:
    """The error for a link that does not fit: region, bytes over, and what fills the region;
    `int16_extra`: the bytes optimize=`optimize`'s int16 weight layouts add over int8 weights (then
    the message says whether optimize=size would make it fit).

    `elf_path` is the image the linker still wrote with --noinhibit-exec, so sections and symbols
    are real even though some addresses lie past a region's end.
    """
    b = target.board
    uses = {u.region.name: u for u in region_usage(target, read_sections(elf_path))}
    lines = []
    for region_name, over in overflows.items():
        # ld names the REGION_* alias or the real region; map aliases back to real regions.
        name = region_name
        if region_name.startswith("REGION_"):
            alias = {"TEXT": "text", "DATA": "data", "WEIGHTS": "weights", "ACT": "activations",
                     "STACK": "stack"}.get(region_name[7:])
            name = target.placement.get(alias, region_name) if alias else region_name
            if region_name[7:] in ("TEXT_LOAD", "WEIGHTS_LOAD"):  # where the flasher writes the code
                name = target.text_load_region.name
        use = uses.get(name)
        size = use.region.size if use else 0
        lines.append(f"region {name} of board {b.name} overflowed by {over} bytes "
                     f"({over / 1024:.1f} KB; the region has {size} bytes)")
        if use:
            biggest = sorted(use.sections.items(), key=lambda kv: -kv[1])[:5]
            lines.append("  biggest sections in " + name + ": "
                         + ", ".join(f"{n} {sz} bytes" for n, sz in biggest))
            secs = {n.replace(" (load)", "") for n in use.sections}
            syms = biggest_symbols(elf_path, secs)
            if syms:
                lines.append("  biggest symbols: "
                             + ", ".join(f"{n} ({s}) {sz} bytes" for n, s, sz in syms))
            lines.append(f"  {name} holds: {', '.join(use.holds) or 'nothing placed by the variant'}")
        weights_here = name == target.placement.get("weights")
        if weights_here and optimize != "size" and int16_extra > 0:
            if int16_extra >= over:
                lines.append(f"  optimize=size would make it fit: it keeps every weight int8 in flash, about "
                             f"{int16_extra} bytes less than optimize={optimize}'s int16 weight layouts")
            else:
                lines.append(f"  optimize=size keeps every weight int8 in flash, about {int16_extra} bytes less "
                             f"than optimize={optimize}: not enough alone for the {over} bytes over")
    fits = [f"{r.name} {r.size // 1024} KB" for r in b.memory]
    lines.append(f"Make the data smaller, or choose a variant that places it in another region "
                 f"(board {b.name} has {', '.join(fits)}; placement is set in variants/*.toml).")
    return KilnError("firmware does not fit: " + "\n".join(lines))
