#!/usr/bin/env python3
"""Per-layer instructions on QEMU mps2-an500 (-icount shift=0): one profiled inference per model,
with each layer's multiply-accumulates and instructions per MAC, tuned and untuned side by side.

    .venv/bin/python bench/layers.py                       # the models of bench/instructions.py
    .venv/bin/python bench/layers.py mlperf_kws_dscnn_int8 --json layers.json

The profile comes from the validation app (profile=1: the per-layer counters of model.c, read over
the protocol; the input is seeded random data, which does not change the counts of these kernels).
A layer's MACs: output elements x the taps each one sums (CONV_2D kh*kw*ic, DEPTHWISE_CONV_2D
kh*kw, FULLY_CONNECTED depth); other ops have none ("-").
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site_scons"))
sys.path.insert(0, str(ROOT / "bench"))

from instructions import BOARD, DEFAULT_MODELS, model_spec, run_scons, schedule_file  # noqa: E402
from tinykiln import models  # noqa: E402
from tinykiln.tflite import importer  # noqa: E402


def macs_per_op(path: Path) -> dict[int, int]:
    """op index -> multiply-accumulates of the op (convolutions and fully connected only)."""
    graph = importer.load(path)
    macs = {}
    for op in graph.ops:
        if op.kind not in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"):
            continue
        out = 1
        for d in graph.tensors[op.outputs[0]].shape:
            out *= d
        w = graph.tensors[op.inputs[1]].shape
        taps = {"CONV_2D": lambda: w[1] * w[2] * w[3], "DEPTHWISE_CONV_2D": lambda: w[1] * w[2],
                "FULLY_CONNECTED": lambda: w[1]}[op.kind]()
        macs[op.index] = out * taps
    return macs


def profile(name: str, builddir: Path, timeout: int, tuned: bool) -> dict:
    proc = run_scons(name, builddir, timeout, tuned, "profile=1", "n=1")
    report = builddir / BOARD / "release" / name / "report.json"
    if proc.returncode != 0 or not report.is_file():
        out = (proc.stdout + proc.stderr).strip().splitlines()
        raise SystemExit(f"bench: profiling {name} failed: {out[-1] if out else 'no output'}")
    return json.loads(report.read_text())["profile"]


def table(name: str, layers: list[dict], untuned: list[dict] | None, macs: dict[int, int]) -> str:
    head = ["#", "op", "output shape", "MACs", "instructions", "per MAC"]
    if untuned:
        head += ["untuned", "untuned per MAC"]
    lines = [f"### {name}", "", "| " + " | ".join(head) + " |", "|---|---|---|" + "---:|" * (len(head) - 3)]
    total = sum(layer["cycles"] for layer in layers)
    for i, layer in enumerate(layers):
        m = macs.get(layer["op_index"])
        per = lambda c: f"{c / m:.2f}" if m else "-"  # noqa: E731
        row = [str(layer["index"]), f"{layer['op']} (op {layer['op_index']})",
               "x".join(map(str, layer["shape"])), f"{m:,}" if m else "-", f"{layer['cycles']:,}",
               per(layer["cycles"])]
        if untuned:
            row += [f"{untuned[i]['cycles']:,}", per(untuned[i]["cycles"])]
        lines.append("| " + " | ".join(row) + " |")
    all_macs = sum(macs.values())
    row = ["", "total", "", f"{all_macs:,}", f"{total:,}", f"{total / all_macs:.2f}" if all_macs else "-"]
    if untuned:
        u = sum(layer["cycles"] for layer in untuned)
        row += [f"{u:,}", f"{u / all_macs:.2f}" if all_macs else "-"]
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", default=DEFAULT_MODELS, help="names from models/ or ../shared/models")
    ap.add_argument("--builddir", default=str(ROOT / "build"), help="scons build directory [build]")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per QEMU run [600]")
    ap.add_argument("--json", help="also write the tables' data to this JSON file")
    args = ap.parse_args(argv)
    builddir = Path(args.builddir).resolve()
    data = {}
    for name in args.models:
        print(f"bench: {name} ...", file=sys.stderr, flush=True)
        layers = profile(name, builddir, args.timeout, tuned=True)["layers"]
        untuned = None
        if schedule_file(name) is not None:
            print(f"bench: {name} untuned (use_tuned=0) ...", file=sys.stderr, flush=True)
            untuned = profile(name, builddir, args.timeout, tuned=False)["layers"]
        macs = macs_per_op(models.resolve(ROOT, model_spec(name)).path)
        data[name] = {"layers": layers, "untuned": untuned, "macs": {str(k): v for k, v in macs.items()}}
        print(table(name, layers, untuned, macs) + "\n", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
