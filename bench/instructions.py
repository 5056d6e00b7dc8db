#!/usr/bin/env python3
"""Instructions per inference on QEMU mps2-an500 (-icount shift=0), arena and code bytes, per model,
next to TFLite Micro measured the same way on the same emulator; the estimated Cortex-M7 cycles of
the same runs (tinykiln.cycles: a QEMU plugin's dual-issue model) next to the published MLPerf Tiny
cycle records of the STM32F746 (a Cortex-M7 at 216 MHz).

    .venv/bin/python bench/instructions.py                 # cifar10 + the shared int8 models
    .venv/bin/python bench/instructions.py --json out.json mlperf_kws_dscnn_int8
    .venv/bin/python bench/instructions.py --optimize speed,balanced,size --no-untuned   # flash vs speed

A model with tuned schedules for the board is measured twice: tuned (the main figure) and with
use_tuned=0 (default knobs). The schedules of a project model are models/<name>/schedules/mps2-an500.json;
those of a shared model (which has no folder of ours) are bench/schedules/<name>/mps2-an500.json, made by
    ./kiln board=mps2-an500 model=../shared/models/<name>.tflite tune=1 \
          schedules=bench/schedules/<name>/mps2-an500.json

Each model is built with the perf app (app=perf, runtime/apps/perf): it fills the inputs with the
bytes the TFLM figures used (x = 12345; per byte of each input in order: x = x*1103515245 + 12345
mod 2^32, byte = (x >> 16) & 0xff), runs one warm-up and 10 timed inferences and prints the count;
QEMU's -icount shift=0 makes that an instruction count (SysTick resolution: 40 instructions).
Arena = the model's planned activation arena; code = the perf firmware's flash image minus the
weights (.nn_weights): kernels, model, runtime, board support, libc and the app, like TFLM's
"TFLM + kernels + libc + a minimal runner". Weights = .nn_weights, next to the constant bytes of
the .tflite (every constant tensor as stored) and their ratio; --optimize builds each model with
each optimize= mode (tinykiln/ops/footprint.py), one row per mode.


The estimated cycles are the perf run's `cycles_estimated_per_inference` (report.json): zero-wait
memory, as mps2's SSRAM; the STM32F746 records were measured from its flash through ART at 216 MHz
(7 wait states), so they include fetch costs the estimate does not (beside them for scale, not as
a like-for-like comparison). A machine whose QEMU has no plugin support shows "—".
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site_scons"))

from tinykiln import child_scons, sizes  # noqa: E402
from tinykiln.options import BY_KEY  # noqa: E402

DEFAULT_OPTIMIZE = BY_KEY["optimize"].default

# the shared folder beside the checkout (a worktree one level further down finds it one level up)
SHARED = next((p / "shared" / "models" for p in (ROOT.parent, ROOT.parent.parent)
               if (p / "shared" / "models").is_dir()), ROOT.parent / "shared" / "models")
BOARD = "mps2-an500"
# The TFLM figures (GCC 12.2 -O2, Cortex-M7 hard-float, same emulator and input bytes):
# (ref kernels instructions, CMSIS-NN instructions, CMSIS-NN arena, CMSIS-NN code bytes)
TFLM = {
    "mlperf_ic_resnet8_int8": (108_690_479, 30_027_718, 54_996, 79_088),
    "mlperf_kws_dscnn_int8": (43_612_735, 7_643_138, 22_820, 84_232),
    "mlperf_ad_fc_ae_int8": (1_948_991, 583_258, 2_580, 31_692),
    "tflm_hello_world_int8": (5_165, 3_556, 772, 31_692),
}
# MLPerf Tiny's published cycle records on the STM32F746 (Cortex-M7, 216 MHz), per inference, as
# issue 14 quotes them: benchmark -> (our shared model of it, or None, cycles). VWW has no shared model.
MLPERF_RECORDS = {"IC": ("mlperf_ic_resnet8_int8", 13_300_000), "KWS": ("mlperf_kws_dscnn_int8", 3_830_000),
                  "VWW": (None, 7_360_000), "AD": ("mlperf_ad_fc_ae_int8", 310_000)}
MLPERF_CYCLES = {model: cycles for model, cycles in MLPERF_RECORDS.values() if model}
DEFAULT_MODELS = ["cifar10", "mlperf_ic_resnet8_int8", "mlperf_kws_dscnn_int8", "mlperf_ad_fc_ae_int8",
                  "tflm_hello_world_int8"]
_PERF = re.compile(r"perf: instructions/inference: min (\d+) avg (\d+) max (\d+)")


def model_spec(name: str) -> str:
    if (ROOT / "models" / name).is_dir():
        return name
    path = SHARED / f"{name}.tflite"
    if not path.is_file():
        raise SystemExit(f"bench: no model {name} in models/ or {SHARED}")
    return str(path)


def schedule_file(name: str) -> Path | None:
    """The model's tuned schedules for the bench board: models/<name>/schedules/<board>.json, or
    bench/schedules/<name>/<board>.json for a shared model."""
    for path in (ROOT / "models" / name / "schedules" / f"{BOARD}.json",
                 ROOT / "bench" / "schedules" / name / f"{BOARD}.json"):
        if path.is_file():
            return path
    return None


def tflite_constant_bytes(name: str) -> int:
    """Bytes of the model's constant tensors as its .tflite stores them."""
    from tinykiln import models, tflite
    from tinykiln.ops import footprint

    graph = tflite.load(str(models.resolve(ROOT, model_spec(name)).path))
    return footprint.constant_bytes(graph)


def run_scons(name: str, builddir: Path, timeout: int, tuned: bool, *args: str) -> subprocess.CompletedProcess:
    """scons for `name` on the bench board with `args`; tuned: with its schedule file, if any."""
    cmd = [f"builddir={builddir}", f"board={BOARD}", f"model={model_spec(name)}", *args,
           f"timeout={timeout}", f"use_tuned={int(tuned)}"]
    if tuned and schedule_file(name) is not None:
        cmd.append(f"schedules={schedule_file(name)}")
    return child_scons.run(cmd, jobs=2, capture=True, timeout=timeout + 900)


def measure(name: str, builddir: Path, timeout: int, tuned: bool = True, optimize: str = "") -> dict:
    extra = [f"optimize={optimize}"] if optimize else []
    proc = run_scons(name, builddir, timeout, tuned, "app=perf", "run=1", *extra)
    out = proc.stdout + proc.stderr
    m = _PERF.search(out)
    if proc.returncode != 0 or not m:
        return {"model": name, "error": out.strip().splitlines()[-1] if out.strip() else "no output"}
    firmware = builddir / BOARD / "release" / f"{name}-perf"
    report = json.loads((firmware / "report.json").read_text())
    sections = sizes.read_sections(firmware / f"{name}-perf.elf")
    image = sum(s.size for s in sections if not s.nobits)
    weights = sum(s.size for s in sections if s.name == ".nn_weights")
    lo, avg, hi = map(int, m.groups())
    return {"model": name, "optimize": optimize or DEFAULT_OPTIMIZE, "instructions": avg, "instructions_min": lo,
            "instructions_max": hi, "cycles_estimated": report.get("cycles_estimated_per_inference"),
            "cycles_estimated_core": report.get("cycles_estimated_core"),
            "arena_bytes": report["memory"]["arena_bytes"], "weights_bytes": weights,
            "code_bytes": image - weights, "image_bytes": image}


def _number(value) -> str:
    return f"{value:,}" if isinstance(value, int) else "—"


def table(rows: list[dict]) -> str:
    head = ["model", "optimize", "tinykiln instructions", "tinykiln estimated cycles (M7 model)",
            "MLPerf Tiny STM32F746 cycles", "untuned (default knobs)", "TFLM ref kernels", "TFLM + CMSIS-NN",
            "tinykiln arena", "TFLM arena (CMSIS-NN)", "tinykiln code bytes", "TFLM code bytes (CMSIS-NN)",
            "weights bytes", ".tflite constant bytes", "weights / .tflite"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for r in rows:
        t = TFLM.get(r["model"])
        ref = [f"{v:,}" for v in t] if t else ["—"] * 4
        record = _number(MLPERF_CYCLES.get(r["model"]))
        mode = r.get("optimize", DEFAULT_OPTIMIZE)
        if "error" in r:
            lines.append(f"| {r['model']} | {mode} | failed: {r['error']} | — | {record} | — | {ref[0]} | {ref[1]} "
                         f"| — | {ref[2]} | — | {ref[3]} | — | — | — |")
            continue
        consts = r.get("tflite_constant_bytes")
        ratio = f"{r['weights_bytes'] / consts:.3f}" if consts else "—"
        consts = f"{consts:,}" if consts else "—"
        # with a schedule file the main figure is the tuned build; the untuned one is beside it
        untuned = r.get("untuned_instructions")
        untuned = f"{untuned:,}" if isinstance(untuned, int) else "same (no schedule file)"
        lines.append(f"| {r['model']} | {mode} | {r['instructions']:,} | {_number(r.get('cycles_estimated'))} "
                     f"| {record} | {untuned} | {ref[0]} | {ref[1]} | {r['arena_bytes']:,} | {ref[2]} "
                     f"| {r['code_bytes']:,} | {ref[3]} | {r['weights_bytes']:,} | {consts} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=DEFAULT_MODELS, help="names from models/ or ../shared/models")
    ap.add_argument("--builddir", default=str(ROOT / "build"), help="scons build directory [build]")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per QEMU run [600]")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    ap.add_argument("--optimize", default="", help="optimize= modes to build, comma-separated (one row each) "
                    "[the build's default]")
    ap.add_argument("--no-untuned", action="store_true", help="skip the use_tuned=0 builds")
    args = ap.parse_args(argv)
    rows = []
    for name in args.models:
        for mode in args.optimize.split(",") if args.optimize else [""]:
            print(f"bench: {name} {mode} ...", file=sys.stderr, flush=True)
            row = measure(name, Path(args.builddir).resolve(), args.timeout, optimize=mode)
            if schedule_file(name) is not None and "error" not in row and not args.no_untuned:
                print(f"bench: {name} untuned (use_tuned=0) ...", file=sys.stderr, flush=True)
                untuned = measure(name, Path(args.builddir).resolve(), args.timeout, tuned=False, optimize=mode)
                row["untuned_instructions"] = untuned.get("instructions", untuned.get("error"))
            if "error" not in row:
                row["tflite_constant_bytes"] = tflite_constant_bytes(name)
            rows.append(row)
    print(f"Instructions per inference on QEMU {BOARD} (-icount shift=0), release (-O2), and the estimated "
          f"Cortex-M7 cycles of the same runs (zero-wait memory; the MLPerf records ran from flash at 216 MHz); "
          f"arena and code bytes (flash image minus weights) of the perf firmware\n")
    print(table(rows))
    print("\nMLPerf Tiny cycle records, STM32F746 at 216 MHz: " + ", ".join(
        f"{name} {cycles / 1e6:g} M" for name, (_, cycles) in MLPERF_RECORDS.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
