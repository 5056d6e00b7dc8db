"""The model's parts of build/<board>/<variant>/<model>/report.json.

The link step (tinykiln.sizes, site_tools/kiln_firmware.py) writes report.json with the memory regions
and sections; this module adds the model's blocks to the same file without touching the rest:

    "model":      {"name", "path", "c_name", "build_id", "layers", "kernels"}
    "memory":     {"arena_bytes", "arena_lower_bound", "arena_planner", "weights_bytes", "code_bytes",
                   "state_bytes" (a stateful model's variable tensors, kept across runs; 0 otherwise)}
    "validation": see runner.validate.ValidationResult.to_json
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from . import KilnError


def merge(path: str | os.PathLike, **blocks) -> dict:
    """Set top-level `blocks` in the JSON file at `path` (created if missing); returns the whole."""
    path = Path(path)
    data: dict = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError:
            data = {}  # a half-written report from an interrupted build: start over
    data.update(blocks)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)
    return data


def memory_block(plan, weights_bytes: int, code_bytes: int | None) -> dict:
    return {
        "arena_bytes": plan.arena_size,
        "arena_lower_bound": plan.lower_bound,
        "arena_alignment": plan.alignment,
        "arena_planner": plan.strategy,
        "weights_bytes": weights_bytes,
        "code_bytes": code_bytes,
        "state_bytes": getattr(plan, "state_size", 0),
    }


def function_bytes(elf: str | os.PathLike, kernels: list[str], c_name: str) -> int:
    """Bytes of the model's code in a linked ELF: the kernels plus the generated model functions
    (<c_name>_run, <c_name>_layers). Symbol sizes, so neither libc nor the board counts."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    wanted = set(kernels) | {f"{c_name}_run", f"{c_name}_layers"}
    found: dict[str, int] = {}
    try:
        with open(elf, "rb") as f:
            symtab = ELFFile(f).get_section_by_name(".symtab")
            if symtab is None:
                return 0
            for sym in symtab.iter_symbols():
                if sym.name in wanted and sym["st_info"]["type"] == "STT_FUNC":
                    found[sym.name] = sym["st_size"]
    except (OSError, ELFError) as e:
        raise KilnError(f"cannot read {elf}: {e}") from None
    return sum(found.values())
