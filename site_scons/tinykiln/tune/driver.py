"""The tune=1 driver: for each tunable kernel of the model, build one benchmark per candidate
(a child scons run), measure them (backends), check and log each trial, keep the best, write the
schedule file, and validate the model untuned and tuned for the before/after summary.

    main(root, opts, jobs=2) -> exit status
"""
from __future__ import annotations

import collections
import concurrent.futures
import json
import math
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinykiln import (
    KilnError, boards, child_scons, device, interrupt, models, options, paths, pipeline, schedules,
)

from . import backends
from .bench import bench_c, kernel_bytes
from .candidates import candidates, choose_best
from .log import append, read_log, settled


def _scons(root: Path, opts, args: list[str], jobs: int, log: Path | None = None) -> int:
    """A child build for the same board, variant and build folder as this run."""
    opts = options.typed(opts)
    common = [f"board={opts.board}", f"variant={opts.variant}", f"builddir={opts.builddir}",
              f"optimize={opts.optimize}"]
    if opts.werror:
        common.append("werror=1")
    if opts.cache:
        common.append(f"cache={opts.cache}")
    if opts.clock != "auto":  # the benchmark firmware at the session's clock (tinykiln.clocks.mode_for)
        common.append(f"clock={opts.clock}")
    if opts.flasher:
        common.append(f"flasher={opts.flasher}")
    return child_scons.run(common + list(args), jobs=jobs, log=log).returncode


def _whole_model(root, opts, model_spec, extra, build_dir, tune_dir, tag) -> int | None:
    """Instructions per inference of the model via the validation app (n=1); None if it failed."""
    log = tune_dir / f"validate-{tag}.log"
    status = _scons(root, opts, [f"model={model_spec}", "validate=1", "n=1", *extra], jobs=2, log=log)
    if status != 0:
        print(f"TUNE validation ({tag}) failed, see {log}", flush=True)
        return None
    data = json.loads((build_dir / "report.json").read_text())
    return data.get("validation", {}).get("cycles_per_inference")


@dataclass
class Run:
    """One tune=1 run: what it tunes, where its files go, how it measures."""
    root: Path
    opts: options.Options
    jobs: int
    target: object  # boards.Target
    model: object  # models.Model
    trials: int
    timeout: float
    backend: backends.Backend
    schedule_path: Path
    builddir: Path  # the build tree (builddir=)
    build_dir: Path  # the model's folder in it
    tune_dir: Path
    log_path: Path
    footprint: Any = None  # ops.footprint.Plan of optimize= (set once the model is compiled)

    @property
    def board(self):
        return self.target.board

    def elf(self, name: str) -> Path:
        # KilnFirmware puts firmware N at <build>/N/N.elf
        return paths.firmware_dir(self.builddir, self.board.name, self.target.variant.name, name) / f"{name}.elf"


def _setup(root: Path, opts, jobs: int) -> Run:
    """Check the options and set up the run's folders; a KilnError if something is missing."""
    opts = options.typed(opts)
    target = boards.resolve(root, opts.board, opts.variant, opts.clock, opts.flasher)
    board = target.board
    dev_options = device.DeviceOptions.from_opts(opts)
    if not dev_options.tracker and not dev_options.port:
        device.kind(board, dev_options, device.BENCH)  # a board without emulator needs port=
    if not opts.model:
        raise KilnError("tune=1 tunes a model: add model=<name or .tflite path>")
    backend = backends.choose(board, dev_options, opts.devices)
    model = models.resolve(root, opts.model)
    schedule_path = Path(opts.schedules) if opts.schedules else \
        schedules.model_schedule_path(model.directory, board.name)
    if schedule_path is None:
        raise KilnError(f"model {model.name} is a .tflite path, not a models/<name>/ directory: give "
                        f"the schedule file to write with schedules=<path>")
    builddir = paths.build_root(opts.builddir)
    build_dir = paths.firmware_dir(builddir, board.name, target.variant.name, model.name)
    tune_dir = paths.tune_dir(build_dir)
    tune_dir.mkdir(parents=True, exist_ok=True)
    return Run(root, opts, jobs, target, model, opts.trials, dev_options.timeout, backend, schedule_path,
               builddir, build_dir, tune_dir, tune_dir / "log.jsonl")


def _tunable_kernels(base, ops, plan=None) -> list:
    """(workload key, first call) in model order, for kernels with at least two knob sets."""
    kernels = []
    for call in base.calls:
        key = call.spec.workload_key
        space = ops.knob_space(call.spec, plan, call.op_index)
        if key in [k for k, _ in kernels] or math.prod(len(v) for v in space.values()) < 2:
            continue
        kernels.append((key, call))
    return kernels


def _record(key, call0, c, **fields) -> dict:
    return {"kernel": key, "function": call0.spec.function_name, "family": call0.spec.family,
            "knobs": c.knobs, "candidate": c.index, **fields}


def _generate(run: Run, graph, key, call0, cands, done) -> tuple[list, list]:
    """The C of each candidate not in the log yet: (todo [(candidate, ELF path)], manifest). A knob
    set TVM cannot schedule is logged as a rejected trial."""
    from tinykiln import codegen, ops

    todo, manifest = [], []
    for c in cands:
        if (key, c.key) in done:
            continue
        lowered = ops.lower(graph, {key: c.knobs}, run.footprint)
        call = next(x for x in lowered.calls if x.spec.workload_key == key)
        cdir = run.tune_dir / call.spec.function_name / c.tag
        cdir.mkdir(parents=True, exist_ok=True)
        try:
            kernel = codegen.kernel_c(call.spec, cache_dir=run.tune_dir / "kernel-cache")
        except Exception as e:  # a knob set TVM cannot schedule: a rejected trial, not a crash
            rec = _record(key, call0, c, ok=False, error=f"codegen: {type(e).__name__}: {str(e)[:300]}")
            append(run.log_path, rec)
            done[(key, c.key)] = rec
            continue
        (cdir / "kernel.c").write_text(kernel)
        (cdir / "bench.c").write_text(bench_c(graph, call))
        name = f"{run.model.name}/tune/{call.spec.function_name}/{c.tag}"
        manifest.append({"name": name, "sources": [str(cdir / "kernel.c"), str(cdir / "bench.c")]})
        todo.append((c, run.elf(name)))
    return todo, manifest


def _checked(rec: dict, c, default) -> dict:
    """A measured trial judged against the default's output: rec["ok"] (and "error") set."""
    if "error" in rec:
        rec["ok"] = False
    elif c.index == 0:
        rec["ok"] = True
    elif default is None or not default.get("ok"):
        rec["ok"], rec["error"] = False, "the default schedule did not run: nothing to compare with"
    elif rec["digest"] != default["digest"]:
        rec["ok"], rec["error"] = False, "output differs from the default schedule's"
    else:
        rec["ok"] = True
    return rec


def _tune_kernel(run: Run, graph, ki: int, nkernels: int, key, call0, done, committed) -> tuple | None:
    """Measure one kernel's candidates (the committed knobs among them); (default record, best
    record) or None if none ran."""
    from tinykiln import ops

    # optimize=: where the plan keeps this op's weights int8, only int8 layouts are candidates
    space = ops.knob_space(call0.spec, run.footprint, call0.op_index)
    cands = candidates(call0.spec, space, run.trials, committed.get(key, {}).get("knobs"))
    todo, manifest = _generate(run, graph, key, call0, cands, done)
    measured = iter(())
    pool = None
    if manifest:
        mpath = run.tune_dir / "manifest.json"
        mpath.write_text(json.dumps(manifest, indent=1))
        blog = run.tune_dir / f"build-{ki}.log"
        _scons(run.root, run.opts, [f"tune_bench={mpath}"], jobs=run.jobs, log=blog)

        def measure(item):
            c, elf = item
            try:
                if not elf.is_file():
                    raise KilnError(f"the benchmark did not build (see {blog})")
                count, unit, digest = run.backend.run(run.board, elf, run.timeout)
                return c, {"count": count, "unit": unit, "digest": digest, "via": run.backend.via,
                           "code_bytes": kernel_bytes(elf, call0.spec.function_name)}
            except interrupt.Interrupted:
                raise  # the user stopped tuning: not a failed trial
            except (KilnError, subprocess.TimeoutExpired) as e:
                return c, {"error": str(e)[:400]}

        pool = concurrent.futures.ThreadPoolExecutor(max_workers=run.backend.devices)
        measured = pool.map(measure, todo)  # results in candidate order, the default first
    # Check each result against the default's output and log it as it comes: an interrupted
    # run loses at most the trials still running.
    default = done.get((key, cands[0].key))
    best = None
    seen = []
    try:
        for j, c in enumerate(cands, 1):
            rec = done.get((key, c.key))
            if rec is None and any(c is t for t, _ in todo):
                _, res = next(measured)
                rec = _checked(_record(key, call0, c, **res), c, default)
                if c.index == 0 and rec["ok"]:
                    default = rec
                append(run.log_path, rec)
                done[(key, c.key)] = rec
                if not rec["ok"]:
                    print(f"TUNE rejected {call0.spec.function_name} {c.knobs}: {rec['error']}", flush=True)
            if rec is None:
                continue
            seen.append(rec)
            if rec["ok"] and (best is None or rec["count"] < best["count"]):
                best = rec
            unit = "instr" if best and best.get("unit") == "instructions" else (best or {}).get("unit")
            shown = f"{best['count']} {unit}" if best else "none"
            print(f"TUNE kernel {ki}/{nkernels} trial {j}/{len(cands)}  best {shown}", flush=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    best = choose_best(seen)
    if best is not None and default is not None and default.get("ok"):
        return default, best
    return None


def _write_schedule(run: Run, graph, results: dict) -> str | None:
    """Merge the best knobs into the schedule file; its previous text (None: there was none)."""
    path = run.schedule_path
    previous = path.read_text() if path.is_file() else None
    existing = schedules.entries(path) if previous is not None else {}
    for key, (default, best, call0) in results.items():
        op = graph.ops[call0.op_index] if call0.op_index < len(graph.ops) else None
        existing[key] = {"family": call0.spec.family, "knobs": best["knobs"],
                         "layer": f"op {call0.op_index} {op.kind if op else '?'}",
                         "instructions": best["count"],
                         **({"code_bytes": best["code_bytes"]} if best.get("code_bytes") else {})}
    schedules.save(path, run.model.name, run.board.name, existing)
    print(f"TUNE wrote {path}", flush=True)
    return previous


def _restore(run: Run, previous: str | None) -> None:
    """The tuned model failed to build or to validate: never leave that schedule behind."""
    if previous is None:
        run.schedule_path.unlink()
    else:
        run.schedule_path.write_text(previous)
    print(f"TUNE the tuned model did not validate: {run.schedule_path} restored; the trials stay "
          f"in {run.log_path}", flush=True)


def _print_summary(results: dict, calls_per_key, before, after) -> None:
    sum_before = sum(d["count"] * calls_per_key[k] for k, (d, _, _) in results.items())
    sum_after = sum(b["count"] * calls_per_key[k] for k, (_, b, _) in results.items())
    print("TUNE summary (instructions per call of each kernel; the sum counts every call)", flush=True)
    print(f"  {'kernel':<40} {'calls':>5} {'default':>12} {'tuned':>12} {'code B':>13}  knobs", flush=True)
    for key, (d, b, call0) in results.items():
        code = (f"{d['code_bytes']}->{b['code_bytes']}" if d.get("code_bytes") and b.get("code_bytes")
                else "-")
        print(f"  {call0.spec.function_name:<40} {calls_per_key[key]:>5} {d['count']:>12} "
              f"{b['count']:>12} {code:>13}  {json.dumps(b['knobs'], sort_keys=True)}", flush=True)
    print(f"  {'sum over kernels':<46} {sum_before:>12} {sum_after:>12}", flush=True)
    print(f"  {'whole model (validation app)':<46} {before if before is not None else '-':>12} "
          f"{after if after is not None else '-':>12}", flush=True)


def main(root: Path, opts, jobs: int = 2) -> int:
    from tinykiln import ops

    started = time.monotonic()
    run = _setup(Path(root), opts, jobs)
    opts = run.opts
    done = read_log(run.log_path)
    region = None if run.board.is_host else run.target.region_of_role("weights").size
    # every kernel with its default knobs under optimize= (which sees the weights' region)
    compiled = pipeline.compile(run.model, knobs={}, optimize=opts.optimize, weights_region=region)
    run.footprint = compiled.footprint
    graph, base = compiled.graph, compiled.lowered
    calls_per_key = collections.Counter(call.spec.workload_key for call in base.calls)
    kernels = _tunable_kernels(base, ops, run.footprint)
    # The log is keyed by workload, which survives generator edits; a trial measured by another
    # generator (the function name carries its digest) is measured again.
    names = {key: call.spec.function_name for key, call in kernels}
    done = {k: rec for k, rec in done.items() if rec.get("function") == names.get(k[0]) and settled(rec)}
    committed = schedules.entries(run.schedule_path) if run.schedule_path.is_file() else {}
    print(f"TUNE {run.model.name} on {run.board.name}: {len(kernels)} tunable kernels, up to "
          f"{run.trials} trials each, {run.backend.devices} devices", flush=True)

    hardware = run.backend.hardware_args
    before = _whole_model(run.root, opts, opts["model"], ["use_tuned=0", *hardware], run.build_dir,
                          run.tune_dir, "untuned")
    results = {}  # workload key -> (default record, best record, first call)
    for ki, (key, call0) in enumerate(kernels, 1):
        outcome = _tune_kernel(run, graph, ki, len(kernels), key, call0, done, committed)
        if outcome is not None:
            results[key] = (*outcome, call0)
    if not results:
        print("TUNE no kernel measured: nothing written", flush=True)
        return 1
    previous = _write_schedule(run, graph, results)
    after = _whole_model(run.root, opts, opts["model"], [f"schedules={run.schedule_path}", *hardware],
                         run.build_dir, run.tune_dir, "tuned")
    if after is None:
        _restore(run, previous)
    _print_summary(results, calls_per_key, before, after)
    print(f"TUNE done in {time.monotonic() - started:.0f} s", flush=True)
    return 0 if after is not None else 1
