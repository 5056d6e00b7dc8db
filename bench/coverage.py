#!/usr/bin/env python3
"""Which models of a folder compile and validate: the coverage figure of tinykiln on models it has
never seen, the way a new user would try them.

    .venv/bin/python bench/coverage.py                         # ../shared/models/zoo on host + mps2-an500
    .venv/bin/python bench/coverage.py DIR --boards host --json out.json

Per model: does LiteRT run it (its reference kernels are the ground truth: a model LiteRT refuses is
counted apart), then `./kiln board=B model=M validate=1` on each board: PASS (bit-exact for int8,
float32 within validation's tolerance), FAIL (a mismatch: a bug), REJECTED (the importer refused it:
the first reason is shown; it must name a documented unsupported feature, see `./kiln ops`), NO FIT
(the firmware does not fit the board's memory), NO REFERENCE (built and ran, but LiteRT cannot
load the model, so validation has nothing to compare with), ERROR (anything else: a traceback or a compiler error
is a bug). On mps2-an500 (QEMU, -icount shift=0) the instructions per inference are shown, and per
model the arena and weights bytes. The summary line is the issue's goal: the share of the models
LiteRT runs that pass on host.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "site_scons"))

from tinykiln import child_scons  # noqa: E402

DEFAULT_DIR = ROOT.parent / "shared" / "models" / "zoo"
_PROBLEM = re.compile(r"^\s+- (.*)$", re.M)
_OP_PROBLEM = re.compile(r"^op \d+ (\S+) \(output '.*?'\): (.*)$")


def litert_runs(path: Path) -> str | None:
    """None if LiteRT's reference kernels run the model on zero inputs, else its error (one line).
    In a child process: LiteRT crashes on some files (a segfault), which must not end the survey."""
    proc = subprocess.run([sys.executable, __file__, "--litert-only", str(path)], capture_output=True, text=True,
                          timeout=600)
    if proc.returncode < 0:
        return f"LiteRT crashed (signal {-proc.returncode})"
    if proc.returncode != 0:
        return " ".join((proc.stderr.strip().splitlines() or ["?"])[-1].split())[:160]
    return proc.stdout.strip() or None


def _litert_child(path: Path) -> int:
    from tinykiln.runner.reference import Reference

    try:
        ref = Reference(path)
        inputs = [np.zeros(d["shape"], dtype=d["dtype"]) for d in ref.interpreter.get_input_details()]
        ref.run(inputs)
    except Exception as error:  # LiteRT raises RuntimeError/ValueError with its own message
        print(" ".join(str(error).split())[:160] or type(error).__name__)
    return 0


def try_board(path: Path, board: str, builddir: Path, timeout: int) -> dict:
    proc = child_scons.run([f"builddir={builddir}", f"board={board}", f"model={path}", "validate=1", "n=3",
                            f"timeout={timeout}"], jobs=2, capture=True, timeout=timeout + 1800)
    out = proc.stdout + proc.stderr
    reports = sorted(builddir.glob(f"{board}/release/*/report.json"))
    report = json.loads(reports[0].read_text()) if reports else {}
    validation = report.get("validation") or {}
    result = {"board": board, "memory": report.get("memory", {}),
              "instructions": report.get("instructions_per_inference")}
    if proc.returncode == 0 and validation.get("passed"):
        result["status"] = "PASS"
    elif validation and validation.get("compared") is False:
        # the firmware built and ran; validation had no reference (a model LiteRT refuses)
        result["status"] = "NO REFERENCE"
        result["why"] = str(validation.get("reference_error", ""))[:200]
    elif validation and not validation.get("passed"):
        result["status"] = "FAIL"
        result["why"] = f"{len(validation.get('mismatching_outputs', []))} outputs mismatch"
    elif "cannot compile this model" in out:
        result["status"] = "REJECTED"
        problems = _PROBLEM.findall(out)
        first = _OP_PROBLEM.match(problems[0]) if problems else None
        result["why"] = f"{first[1]}: {first[2]}" if first else (problems[0] if problems else "?")
        result["problems"] = problems
    elif "LiteRT cannot load" in out and report:
        # the firmware built and ran; validation has no reference (a model LiteRT refuses)
        result["status"] = "NO REFERENCE"
        result["why"] = next((line.strip() for line in out.splitlines() if "LiteRT cannot load" in line), "")
    elif "does not fit" in out:
        result["status"] = "NO FIT"
        result["why"] = next((line.strip() for line in out.splitlines() if "over" in line), "")
    else:
        result["status"] = "ERROR"
        tail = [line for line in out.splitlines() if line.strip()][-3:]
        result["why"] = " | ".join(tail)
    return result


def _cell(result: dict) -> str:
    status = result["status"]
    if status == "PASS" and result.get("instructions"):
        return f"PASS {result['instructions']:,}"
    return status


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--litert-only"]:
        return _litert_child(Path(argv[1]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--boards", default="host,mps2-an500")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per run")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    boards = args.boards.split(",")
    models = sorted(args.folder.glob("*.tflite"))
    if not models:
        raise SystemExit(f"coverage: no .tflite files in {args.folder}")
    results = []
    with tempfile.TemporaryDirectory(prefix="kiln-coverage-") as scratch:
        for path in models:
            entry = {"model": path.stem, "litert": litert_runs(path), "boards": {}}
            print(f"coverage: {path.stem}", file=sys.stderr)
            for board in boards:
                # after a rejection on host the other boards say the same: not tried again
                if board != boards[0] and entry["boards"][boards[0]]["status"] == "REJECTED":
                    entry["boards"][board] = dict(entry["boards"][boards[0]], board=board)
                    continue
                entry["boards"][board] = try_board(path, board, Path(scratch) / path.stem, args.timeout)
            results.append(entry)

    print("| model | LiteRT | " + " | ".join(boards) + " | arena B | weights B | why not |")
    print("|---|---|" + "---|" * len(boards) + "---:|---:|---|")
    for entry in results:
        cells = [_cell(entry["boards"][b]) for b in boards]
        memory = next((r["memory"] for r in entry["boards"].values() if r.get("memory")), {})
        why = next((r["why"] for r in entry["boards"].values() if r.get("why")), "")
        print(f"| {entry['model']} | {'runs' if entry['litert'] is None else 'refuses'} | " + " | ".join(cells)
              + f" | {memory.get('arena_bytes', '')} | {memory.get('weights_bytes', '')} | {why[:140]} |")
    runnable = [e for e in results if e["litert"] is None]
    passed = [e for e in runnable if e["boards"][boards[0]]["status"] == "PASS"]
    print(f"\n{len(passed)} of {len(runnable)} models that LiteRT runs pass on {boards[0]} "
          f"({100 * len(passed) / max(len(runnable), 1):.0f}%); {len(results) - len(runnable)} LiteRT refuses")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
