"""Schedule files: the knobs chosen for a model's kernels on one board (a build input).

    models/<model>/schedules/<board>.json     (or any path given with schedules=<path>)

    {
      "format": 1,
      "model": "cifar10",
      "board": "mps2-an500",
      "kernels": {
        "<workload key>": {
          "family": "conv2d_int8",
          "layer": "op 2 CONV_2D 1x16x16x32",          # for the reader only
          "knobs": {"oc_tile": 4, "unroll": true},    # what the build uses
          "instructions": 1234567                     # what tuning measured (optional)
        },
        ...
      }
    }

The key is `ops.workload_key(spec)`: the hash of what the kernel computes (family, params'
shapes and dtypes, attrs: op, quantization), without its knobs and without tool versions or the
generator's digest, so the key of a kernel does not change when its knobs do, nor when the
compiler is edited. Lowering checks each knob against the family's current knob space: a knob
that is no longer in it is reported (one line naming the kernel and the knob) and takes its
default; entries that match no kernel of the model are reported once, as stale (LoweredModel.
warnings, printed by the build). Only "knobs" matters to the build; everything else is for people
and diffs. The file is written with
sorted keys and one knob set per line block, so a re-tune shows up as a small diff.

A plain {workload key: {knob: value}} mapping (the first format) is still read.

API:
    load(path) -> {workload_key: {knob: value}}
    entries(path) -> {workload_key: entry dict}            the whole record, for tools
    save(path, model, board, entries)                      writes the file (sorted, stable)
    model_schedule_path(model_dir, board) -> Path
    resolve(model_dir, board, schedules="", use_tuned=True) -> (path or None, knobs)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinykiln import KilnError

FORMAT = 1


def model_schedule_path(model_dir: Path | None, board: str) -> Path | None:
    if model_dir is None:
        return None
    return Path(model_dir) / "schedules" / f"{board}.json"


def entries(path: str | Path) -> dict[str, dict[str, Any]]:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KilnError(f"schedule file {path} does not exist: give an existing file with "
                        f"schedules=<path>, or drop schedules= to use the model's own") from None
    except json.JSONDecodeError as e:
        raise KilnError(f"{path}: not valid JSON ({e}): fix it, or delete it to build with default "
                        f"schedules (use_tuned=0 ignores it)") from None
    if not isinstance(data, dict):
        raise KilnError(f"{path}: a schedule file is a JSON object (see tinykiln/schedules.py)")
    if "kernels" not in data:  # the first format: {workload key: knobs}
        return {key: {"knobs": knobs} for key, knobs in data.items()}
    if data.get("format") != FORMAT:
        raise KilnError(f"{path}: schedule file format {data.get('format')!r}, this tinykiln reads "
                        f"format {FORMAT}: re-run tuning (tune=1) or delete the file")
    kernels = data["kernels"]
    if not isinstance(kernels, dict):
        raise KilnError(f"{path}: \"kernels\" must map workload keys to entries")
    for key, entry in kernels.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("knobs"), dict):
            raise KilnError(f"{path}: kernel {key} has no \"knobs\" object")
    return kernels


def load(path: str | Path) -> dict[str, dict[str, Any]]:
    return {key: dict(entry["knobs"]) for key, entry in entries(path).items()}


def save(path: str | Path, model: str, board: str, kernels: dict[str, dict[str, Any]]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"format": FORMAT, "model": model, "board": board,
            "kernels": {key: kernels[key] for key in sorted(kernels)}}
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def resolve(model_dir: Path | None, board: str, schedules: str = "", use_tuned: bool = True):
    """The schedule file a build uses and its knobs: schedules=<path> if given, else the model's
    schedules/<board>.json if it exists; none with use_tuned=0."""
    if not use_tuned:
        return None, {}
    if schedules:
        return Path(schedules), load(schedules)
    path = model_schedule_path(model_dir, board)
    if path is None or not path.is_file():
        return None, {}
    return path, load(path)
