"""Compiler figures on board=host: arena vs lower bound, weights, code, clean and no-op build times.

    .venv/bin/python bench/compile_host.py      (after ./kiln has set up .venv)

Each model is built from scratch in its own temporary build directory (a clean build includes TVM
kernel generation), then built again with nothing changed (the no-op rebuild). Figures come from
the build's report.json (`memory` block written by the model pipeline).
"""
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site_scons"))

from tinykiln import child_scons  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"
TFLM_ARENA = {"mlperf_ic_resnet8_int8": 54996, "mlperf_kws_dscnn_int8": 22820, "mlperf_ad_fc_ae_int8": 2580}


def models():
    yield "cifar10", "cifar10"
    yield "cifar10:float", "cifar10_float"
    if SHARED.is_dir():
        for path in sorted(SHARED.glob("*.tflite")):
            yield str(path), path.stem
    else:
        print(f"note: {SHARED} is absent: only the project's own models are measured", file=sys.stderr)


def scons(builddir, model):
    start = time.monotonic()
    proc = child_scons.run([f"builddir={builddir}", "board=host", f"model={model}"], jobs=2, capture=True)
    if proc.returncode:
        raise SystemExit(f"build of {model} failed:\n{proc.stdout}{proc.stderr}")
    return time.monotonic() - start


def main():
    rows = []
    for model, name in models():
        with tempfile.TemporaryDirectory(prefix="kiln-bench-") as builddir:
            clean = scons(builddir, model)
            noop = scons(builddir, model)
            report = next(Path(builddir).glob("host/release/*/report.json"))
            mem = json.loads(report.read_text())["memory"]
        rows.append((name, mem["arena_bytes"], mem["arena_lower_bound"], mem["weights_bytes"],
                     mem["code_bytes"], clean, noop))
        print(f"  {name}: built", file=sys.stderr)
    print("| model | arena B | lower bound B | TFLM arena B (CMSIS-NN) | weights B | code B (host) "
          "| clean build s | no-op rebuild s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, arena, bound, weights, code, clean, noop in rows:
        tflm = f"{TFLM_ARENA[name]:,}" if name in TFLM_ARENA else "-"
        print(f"| {name} | {arena:,} | {bound:,} | {tflm} | {weights:,} | {code:,} | {clean:.1f} | {noop:.1f} |")


if __name__ == "__main__":
    main()
