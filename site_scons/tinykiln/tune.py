"""Autotuning on the device: `./kiln board=X model=Y tune=1 [trials=N] [devices=K]`.

For each distinct kernel of the model (one per workload key), candidate knob sets are measured in
isolation on the device:

    candidates   the default knobs first, then knob sets drawn without repeats from the family's
                 knob space (ops.knob_space), trials= in all; the draw is seeded by the workload key,
                 so a resumed run draws the same candidates
    benchmark    one small firmware per candidate: the app runtime/apps/kernelbench plus a generated
                 bench.c (the kernel's constants as lowered for those knobs, arena-section buffers for
                 its tensors and scratch, one call) and the kernel's C from TVM. Built by a child
                 scons run (tune_bench=<manifest>, see declare_benches), run on the emulated board
                 under QEMU -icount shift=0 (deterministic instruction counts), devices= QEMUs at a
                 time; the firmware prints `TKBENCH count=N unit=U digest=D`
    checking     every candidate's output digest must equal the default's on the same input bytes:
                 a mismatch (or a build / run failure) is logged and the candidate never wins
    devices      devices= QEMUs on this machine, or with tracker=host:port the devices registered
                 with a TVM RPC tracker under the board's name (tinykiln/tune_rpc.py), or with
                 port=/dev/ttyACM0[,...] real boards on this machine, one per console port: each
                 trial flashes the board and reads its line from the port, counting its cycle
                 counter (tinykiln/tune_devices.py; the only way for a board without an emulator)
    log          build/<board>/<variant>/<model>/tune/log.jsonl, one JSON line per trial; a trial
                 already in the log is not measured again (an interrupted run resumes)
    result       the fastest correct candidate of each kernel goes into the schedule file
                 (models/<model>/schedules/<board>.json, or schedules=<path>), unless one within
                 CODE_SLACK of its count has less code (the kernel function's bytes in the bench
                 ELF): then the smallest of those (choose_best); then the model is validated
                 untuned and tuned (the validation app, n=1) for the before/after summary

Plain Python (no SCons import): SConstruct calls main() for tune=1 and declare_benches(env, ...)
for the child builds.
"""
from __future__ import annotations

import collections
import concurrent.futures
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinykiln import KilnError, boards, models, schedules

# Unrolling and wide tiles buy a fraction of a percent at times for kilobytes of flash on every
# board the model ships to (resnet8's fastest schedules: 0.3% fewer instructions, 18 KB more code).
# A candidate this close to the fastest count wins if its kernel is smaller.
CODE_SLACK = 0.005

BENCH_APP = "kernelbench"
_RESULT_RE = re.compile(r"TKBENCH count=(\d+) unit=(\S+) digest=([0-9a-f]{16})")
_ALIGN = 16  # the arena and weights alignment of the AOT model


@dataclass
class Candidate:
    index: int  # 0 = the default knobs
    knobs: dict

    @property
    def key(self) -> str:
        return json.dumps(self.knobs, sort_keys=True)

    @property
    def tag(self) -> str:
        return "default" if self.index == 0 else f"c{self.index}"


# ------------------------------------------------------------------------------------------ options

def _int_option(opts: dict, name: str, default: int, low: int) -> int:
    try:
        value = int(opts.get(name) or default)
    except ValueError:
        raise KilnError(f"{name}= takes a whole number, e.g. {name}={default}") from None
    if value < low:
        raise KilnError(f"{name}= must be at least {low}")
    return value


# --------------------------------------------------------------------------------------- candidates

def candidates(spec, space: dict, trials: int) -> list[Candidate]:
    """The default knobs, then up to trials-1 other points of `space`, drawn without repeats with a
    generator seeded by the workload key (the same list on every run)."""
    names = sorted(space)
    default = {n: space[n][0] for n in names}
    out = [Candidate(0, default)]
    total = math.prod(len(space[n]) for n in names)
    rng = random.Random(spec.workload_key)
    if total <= 4096:
        points = list(itertools.product(*(range(len(space[n])) for n in names)))
        rng.shuffle(points)
    else:
        points = (tuple(rng.randrange(len(space[n])) for n in names) for _ in range(20 * trials))
    seen = {out[0].key}
    for point in points:
        if len(out) >= trials:
            break
        knobs = {n: space[n][i] for n, i in zip(names, point)}
        c = Candidate(len(out), knobs)
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


# ------------------------------------------------------------------------------------ bench C file

def bench_c(graph, call) -> str:
    """The generated half of a kernel benchmark (runtime/apps/kernelbench/main.c has the other):
    the kernel's constants, buffers for its tensors and scratch, and tk_bench_call()."""
    from tinykiln import aot, codegen

    spec = call.spec
    ctypes = aot.C_TYPES
    lines = ["/* Kernel benchmark of " + spec.function_name + ": generated by tinykiln.tune. */",
             "#include <stddef.h>", "#include <stdint.h>", "",
             "typedef struct { uint8_t *data; uint32_t size; int is_float; } tk_bench_buffer;", "",
             codegen.kernel_prototype(spec), ""]
    args, tensors, inputs, outputs = [], {}, [], []
    for i, (p, arg) in enumerate(zip(spec.params, call.args)):
        ctype = ctypes[p.dtype]
        if p.role == "const" or (p.role == "input" and graph.tensor(int(arg)).is_constant):
            data = np.asarray(arg if p.role == "const" else graph.tensor(int(arg)).data)
            flat = data.astype(p.dtype).reshape(-1)
            lines += [f"static const {ctype} k{i}[{max(flat.size, 1)}]",
                      f"    __attribute__((section(\".nn_weights\"), aligned({_ALIGN}))) = {{",
                      aot._c_values(flat, p.dtype), "};"]
            args.append(f"k{i}")
        elif p.role == "scratch":
            if p.nbytes == 0:
                args.append("NULL")
                continue
            lines.append(f"static uint8_t s{i}[{p.nbytes}] "
                         f"__attribute__((section(\".nn_data_act\"), aligned({_ALIGN})));")
            args.append(f"({ctype} *)(void *)s{i}")
        else:
            t = int(arg)
            if t not in tensors:
                tensors[t] = p
                lines.append(f"static uint8_t t{t}[{p.nbytes}] "
                             f"__attribute__((section(\".nn_data_act\"), aligned({_ALIGN})));")
            (inputs if p.role == "input" else outputs).append(t)
            const = "const " if p.role == "input" else ""
            args.append(f"({const}{ctype} *)(void *)t{t}")

    def table(name, indices):
        unique = list(dict.fromkeys(indices))
        rows = [f"    {{t{t}, {tensors[t].nbytes}u, {int(tensors[t].dtype == 'float32')}}}," for t in unique]
        return [f"const tk_bench_buffer {name}[{max(len(rows), 1)}] = {{",
                *(rows or ["    {NULL, 0u, 0},"]), "};",
                f"const unsigned {name[:-1]}_count = {len(rows)}u;"]  # tk_bench_input_count

    lines += [""] + table("tk_bench_inputs", inputs) + table("tk_bench_outputs", outputs)
    lines += ["", "void tk_bench_call(void)", "{", f"    {spec.function_name}({', '.join(args)});", "}", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- builds and runs

def _scons(root: Path, opts: dict, args: list[str], jobs: int, log: Path | None = None) -> int:
    cmd = [sys.executable, "-m", "SCons", "-Q", f"-j{jobs}", "-C", str(root),
           f"board={opts['board']}", f"variant={opts['variant']}", f"builddir={opts['builddir']}"]
    if opts.get("werror"):
        cmd.append("werror=1")
    if opts.get("cache"):
        cmd.append(f"cache={opts['cache']}")
    cmd += args
    env = dict(os.environ)
    site = str(root / "site_scons")
    if site not in env.get("PYTHONPATH", "").split(os.pathsep):
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if log is None:
        return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL).returncode
    with open(log, "w") as f:
        return subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=f,
                              stderr=subprocess.STDOUT).returncode


def declare_benches(env, manifest_path: str) -> list:
    """The child build of tune=1 (tune_bench=<manifest>): one kernelbench firmware per manifest
    entry {"name": firmware name, "sources": [C files]}. Returns the ELF nodes."""
    entries = json.loads(Path(manifest_path).read_text())
    elfs = []
    for e in entries:
        fw = env.KilnFirmware(e["name"], sources=[env.File(s) for s in e["sources"]], app=BENCH_APP)
        elfs.append(fw[0])
    return elfs


def kernel_bytes(elf: Path, function: str) -> int | None:
    """Size of the kernel function in a benchmark ELF (its micro-kernels are inlined into it);
    None if the symbol is not there."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(elf, "rb") as f:
        for section in ELFFile(f).iter_sections():
            if isinstance(section, SymbolTableSection):
                for sym in section.get_symbol_by_name(function) or []:
                    return int(sym["st_size"])
    return None


def choose_best(records: list[dict], slack: float = CODE_SLACK) -> dict | None:
    """The fastest correct record, or, among those within `slack` of its count, the one with the
    least code (records without code_bytes compete on count alone)."""
    ok = [r for r in records if r.get("ok")]
    if not ok:
        return None
    fastest = min(ok, key=lambda r: r["count"])
    close = [r for r in ok if r["count"] <= fastest["count"] * (1 + slack) and r.get("code_bytes") is not None]
    if fastest.get("code_bytes") is None or not close:
        return fastest
    return min(close, key=lambda r: (r["code_bytes"], r["count"]))


def run_bench(board, elf: Path, timeout: float) -> tuple[int, str, str]:
    """(count, unit, digest) of one benchmark firmware; KilnError if it fails."""
    if board.is_host:
        proc = subprocess.run([str(elf)], capture_output=True, text=True, timeout=timeout)
        status, text = proc.returncode, proc.stdout + proc.stderr
    else:
        from tinykiln.runner import qemu

        with qemu.start(board, elf, serial="stdio") as session:
            status = session.wait(timeout)
            text = session.text()
    m = _RESULT_RE.search(text)
    if status != 0 or m is None:
        raise KilnError(f"{elf.name}: exit status {status}, no TKBENCH line: {text.strip()[-300:]}")
    return int(m.group(1)), m.group(2), m.group(3)


# -------------------------------------------------------------------------------------------- log

def read_log(path: Path) -> dict[tuple[str, str], dict]:
    """(workload key, knobs key) -> the last trial record; a torn last line (interrupted) is
    skipped."""
    done = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        done[(rec["kernel"], json.dumps(rec["knobs"], sort_keys=True))] = rec
    return done


def _append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


# --------------------------------------------------------------------------------------- tuning

def _whole_model(root, opts, model_spec, extra, build_dir, tune_dir, tag) -> int | None:
    """Instructions per inference of the model via the validation app (n=1); None if it failed."""
    log = tune_dir / f"validate-{tag}.log"
    status = _scons(root, opts, [f"model={model_spec}", "validate=1", "n=1", *extra], jobs=2, log=log)
    if status != 0:
        print(f"TUNE validation ({tag}) failed, see {log}", flush=True)
        return None
    data = json.loads((build_dir / "report.json").read_text())
    return data.get("validation", {}).get("cycles_per_inference")


def main(root: Path, opts: dict, jobs: int = 2) -> int:
    from tinykiln import codegen, ops, tflite

    started = time.monotonic()
    root = Path(root)
    target = boards.resolve(root, opts["board"], opts["variant"])
    board = target.board
    if not board.is_host and not board.emulator and not opts.get("port") and not opts.get("tracker"):
        raise KilnError(f"tune=1 on {board.name} (no emulator) measures on the board itself: give "
                        f"its console with port=/dev/ttyACM0 (it is flashed for each trial), or "
                        f"pick a QEMU board (./kiln -h)")
    if not opts.get("model"):
        raise KilnError("tune=1 tunes a model: add model=<name or .tflite path>")
    trials = _int_option(opts, "trials", 8, 1)
    devices = _int_option(opts, "devices", 2, 1)
    timeout = float(opts.get("timeout") or 60)
    remote = None
    hardware_args = []  # for the whole-model validations when measuring on a real board
    if opts.get("tracker"):  # devices behind TVM's RPC tracker instead of local QEMUs
        from tinykiln import tune_rpc

        remote = tune_rpc.runner(opts["tracker"])
        via = f"tracker {opts['tracker']}"
    elif opts.get("port"):  # real boards on this host: flash + read the console, one per port
        from tinykiln import tune_devices

        ports = tune_devices.parse_ports(opts["port"])
        remote = tune_devices.runner(board, ports, opts.get("flasher", ""))
        devices = len(ports)
        via = "port"
        # The whole-model before/after runs on the first board too (flashed, read over its port);
        # a board that only QEMU runs (the tests' stand-in) validates under QEMU.
        real = [m for m in board.flash_methods if m not in ("qemu", "host")]
        if real:
            hardware_args = [f"port={ports[0]}", "flash=1", f"flasher={opts.get('flasher') or real[0]}"]
    else:
        via = "host" if board.is_host else "qemu"
    model = models.resolve(root, opts["model"])
    schedule_path = Path(opts["schedules"]) if opts.get("schedules") else \
        schedules.model_schedule_path(model.directory, board.name)
    if schedule_path is None:
        raise KilnError(f"model {model.name} is a .tflite path, not a models/<name>/ directory: give "
                        f"the schedule file to write with schedules=<path>")
    builddir = Path(opts["builddir"])
    builddir = builddir if builddir.is_absolute() else root / builddir
    build_dir = builddir / board.name / target.variant.name / model.name
    tune_dir = build_dir / "tune"
    tune_dir.mkdir(parents=True, exist_ok=True)
    log_path = tune_dir / "log.jsonl"
    done = read_log(log_path)

    graph = tflite.load(str(model.path))
    graph.name = model.name
    base = ops.lower(graph)
    calls_per_key = collections.Counter(call.spec.workload_key for call in base.calls)
    kernels = []  # (workload key, first call) in model order, tunable ones only
    for call in base.calls:
        key = call.spec.workload_key
        space = ops.knob_space(call.spec)
        if key in [k for k, _ in kernels] or math.prod(len(v) for v in space.values()) < 2:
            continue
        kernels.append((key, call))
    # The log is keyed by workload, which survives generator edits; a trial measured by another
    # generator (the function name carries its digest) is measured again.
    names = {key: call.spec.function_name for key, call in kernels}
    done = {k: rec for k, rec in done.items() if rec.get("function") == names.get(k[0])}
    print(f"TUNE {model.name} on {board.name}: {len(kernels)} tunable kernels, up to {trials} "
          f"trials each, {devices} devices", flush=True)

    before = _whole_model(root, opts, opts["model"], ["use_tuned=0", *hardware_args], build_dir, tune_dir, "untuned")
    results = {}  # workload key -> (default record, best record)
    cache_dir = tune_dir / "kernel-cache"
    for ki, (key, call0) in enumerate(kernels, 1):
        cands = candidates(call0.spec, ops.knob_space(call0.spec), trials)
        todo, manifest = [], []
        for c in cands:
            if (key, c.key) in done:
                continue
            lowered = ops.lower(graph, {key: c.knobs})
            call = next(x for x in lowered.calls if x.spec.workload_key == key)
            cdir = tune_dir / call.spec.function_name / c.tag
            cdir.mkdir(parents=True, exist_ok=True)
            try:
                kernel = codegen.kernel_c(call.spec, cache_dir=cache_dir)
            except Exception as e:  # a knob set TVM cannot schedule: a rejected trial, not a crash
                rec = {"kernel": key, "function": call0.spec.function_name, "family": call0.spec.family,
                       "knobs": c.knobs, "candidate": c.index, "ok": False,
                       "error": f"codegen: {type(e).__name__}: {str(e)[:300]}"}
                _append(log_path, rec)
                done[(key, c.key)] = rec
                continue
            (cdir / "kernel.c").write_text(kernel)
            (cdir / "bench.c").write_text(bench_c(graph, call))
            name = f"{model.name}/tune/{call.spec.function_name}/{c.tag}"
            manifest.append({"name": name, "sources": [str(cdir / "kernel.c"), str(cdir / "bench.c")]})
            # KilnFirmware puts firmware N at <build>/N/N.elf
            todo.append((c, builddir / board.name / target.variant.name / name / (name + ".elf")))
        measured = iter(())
        pool = None
        if manifest:
            mpath = tune_dir / "manifest.json"
            mpath.write_text(json.dumps(manifest, indent=1))
            blog = tune_dir / f"build-{ki}.log"
            _scons(root, opts, [f"tune_bench={mpath}"], jobs=jobs, log=blog)

            def measure(item):
                c, elf = item
                try:
                    if not elf.is_file():
                        raise KilnError(f"the benchmark did not build (see {blog})")
                    count, unit, digest = (remote or run_bench)(board, elf, timeout)
                    return c, {"count": count, "unit": unit, "digest": digest, "via": via,
                               "code_bytes": kernel_bytes(elf, call0.spec.function_name)}
                except (KilnError, subprocess.TimeoutExpired) as e:
                    return c, {"error": str(e)[:400]}

            pool = concurrent.futures.ThreadPoolExecutor(max_workers=devices)
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
                    rec = {"kernel": key, "function": call0.spec.function_name,
                           "family": call0.spec.family, "knobs": c.knobs, "candidate": c.index, **res}
                    if "error" in rec:
                        rec["ok"] = False
                    elif c.index == 0:
                        rec["ok"] = True
                        default = rec
                    elif default is None or not default.get("ok"):
                        rec["ok"], rec["error"] = False, "the default schedule did not run: nothing to compare with"
                    elif rec["digest"] != default["digest"]:
                        rec["ok"], rec["error"] = False, "output differs from the default schedule's"
                    else:
                        rec["ok"] = True
                    _append(log_path, rec)
                    done[(key, c.key)] = rec
                    if not rec["ok"]:
                        print(f"TUNE rejected {call0.spec.function_name} {c.knobs}: {rec['error']}",
                              flush=True)
                if rec is None:
                    continue
                seen.append(rec)
                if rec["ok"] and (best is None or rec["count"] < best["count"]):
                    best = rec
                unit = "instr" if best and best.get("unit") == "instructions" else (best or {}).get("unit")
                shown = f"{best['count']} {unit}" if best else "none"
                print(f"TUNE kernel {ki}/{len(kernels)} trial {j}/{len(cands)}  best {shown}", flush=True)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        best = choose_best(seen)
        if best is not None and default is not None and default.get("ok"):
            results[key] = (default, best, call0)

    if not results:
        print("TUNE no kernel measured: nothing written", flush=True)
        return 1
    previous = schedule_path.read_text() if schedule_path.is_file() else None
    existing = schedules.entries(schedule_path) if previous is not None else {}
    for key, (default, best, call0) in results.items():
        op = graph.ops[call0.op_index] if call0.op_index < len(graph.ops) else None
        existing[key] = {"family": call0.spec.family, "knobs": best["knobs"],
                         "layer": f"op {call0.op_index} {op.kind if op else '?'}",
                         "instructions": best["count"],
                         **({"code_bytes": best["code_bytes"]} if best.get("code_bytes") else {})}
    schedules.save(schedule_path, model.name, board.name, existing)
    print(f"TUNE wrote {schedule_path}", flush=True)

    after = _whole_model(root, opts, opts["model"], [f"schedules={schedule_path}", *hardware_args], build_dir,
                         tune_dir, "tuned")
    if after is None:
        # The tuned model failed to build or to validate: never leave that schedule behind.
        if previous is None:
            schedule_path.unlink()
        else:
            schedule_path.write_text(previous)
        print(f"TUNE the tuned model did not validate: {schedule_path} restored; the trials stay "
              f"in {log_path}", flush=True)
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
    print(f"TUNE done in {time.monotonic() - started:.0f} s", flush=True)
    return 0 if after is not None else 1
