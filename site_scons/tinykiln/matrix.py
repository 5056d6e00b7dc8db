"""matrix=<file>: build every board x model x variant, run the emulated ones, one report.

    ./kiln matrix=ci/matrix.toml [board=<only this board>] [cache=<dir>] [-jN]
    python -m tinykiln.matrix ci/matrix.toml [-j N] [--board B] [--builddir build] [--cache DIR]

The file (TOML):

    boards = ["mps2-an500", "host", "nucleo-f746zg"]   # names from boards/
    models = ["cifar10", "cifar10:float"]             # model= values
    variants = ["release"]                            # default ["release"]
    validate = true        # emulated boards (QEMU) and host: run with validate=1 (default true)
    n = 2                  # random inputs per validation, besides the model's samples
    timeout = 900          # seconds per row (the build and the run): then the row is killed
    run_timeout = 120      # the run's own timeout= (default: scons' 60 s)
    options = []           # extra options for every row, e.g. ["werror=1"]

    [[exclude]]            # leave out the combinations matching every key given
    board = "nucleo-f412zg"
    variant = "debug"

    [[row]]                # one more row outside the product; options apply to it alone
    board = "mps2-an500"
    model = "cifar10"
    variant = "size"
    options = ["defines=FOO"]

A variant that does not apply to a board (variants/*.toml `boards`) gives no row. Every row is its own
scons run (`scons -j1 board= variant= model= builddir=<builddir>/matrix/<board>-<variant>/`); rows of
one board + variant run one after the other in that directory (they share the board's objects),
different ones in parallel (-j). A failing row does not stop the others. Results:
<builddir>/matrix/report.md and report.json, one log per row in <builddir>/matrix/logs/. The exit
status is 1 if any row failed.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import KilnError, boards, child_scons, device, models, paths

KEYS = {"boards", "models", "variants", "validate", "n", "timeout", "run_timeout", "options", "exclude",
        "row"}


@dataclass
class Row:
    board: str
    model: str
    variant: str = boards.DEFAULT_VARIANT
    options: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.board}/{self.variant}/{self.model}"

    @property
    def slug(self) -> str:
        """A file name for the row's log; rows that differ in options only get different ones."""
        slug = self.name.replace("/", "-").replace(":", "_")
        if self.options:
            slug += "-" + hashlib.sha256("\0".join(self.options).encode()).hexdigest()[:8]
        return slug


@dataclass
class Result:
    board: str
    variant: str
    model: str
    options: list[str]  # the row's extra scons options
    status: str  # "pass" | "fail"
    ran: bool  # validated on QEMU or on the host
    seconds: float
    regions: list[dict] = field(default_factory=list)  # name, used, size, holds
    arena_bytes: int | None = None
    weights_bytes: int | None = None
    state_bytes: int | None = None  # a stateful model's state (variable tensors), beside the arena
    count: int | None = None  # instructions (QEMU), ns (host) per inference
    count_unit: str = ""
    bit_exact: bool | None = None  # every output identical to LiteRT's (int8 must be)
    validated: bool | None = None  # the validation passed (float32: within float_rtol)
    float_rtol: float | None = None
    error: str = ""
    log: str = ""


def load(root: Path, path: str | os.PathLike) -> tuple[list[Row], dict]:
    """The rows of a matrix file and its settings (validate, n, timeout). Bad input -> KilnError."""
    path = Path(path)
    if not path.is_file():
        raise KilnError(f"matrix file {path} not found (matrix= takes a TOML file, e.g. ci/matrix.toml)")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise KilnError(f"{path}: invalid TOML: {e}") from None
    unknown = sorted(set(data) - KEYS)
    if unknown:
        raise KilnError(f"{path}: unknown key(s) {', '.join(unknown)} (keys: {', '.join(sorted(KEYS))})")

    def names(key, default=None):
        value = data.get(key, default)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise KilnError(f"{path}: `{key}` must be a list of names")
        return value

    board_list = names("boards", [])
    model_list = names("models", [])
    variant_list = names("variants", [boards.DEFAULT_VARIANT])
    options = names("options", [])
    known_boards, known_variants = boards.board_names(root), boards.variant_names(root)
    for b in board_list:
        if b not in known_boards:
            raise boards.unknown_name_error("board", b, known_boards)
    for v in variant_list:
        if v not in known_variants:
            raise boards.unknown_name_error("variant", v, known_variants)
    for m in model_list:
        models.resolve(root, m)  # an unknown model stops here, with the list of models

    excludes = data.get("exclude", [])
    for ex in excludes:
        bad = sorted(set(ex) - {"board", "model", "variant"})
        if bad:
            raise KilnError(f"{path}: [[exclude]] takes board, model and variant, not {', '.join(bad)} "
                            f"(keys after a [[table]] header belong to it: put settings above)")
    rows = []
    for b in board_list:
        for v in variant_list:
            if not boards.load_variant(root, v).applies_to(b):
                continue
            for m in model_list:
                row = Row(b, m, v, list(options))
                if not any(all(getattr(row, k, None) == val for k, val in ex.items()) for ex in excludes):
                    rows.append(row)
    for extra in data.get("row", []):
        missing = [k for k in ("board", "model") if k not in extra]
        if missing:
            raise KilnError(f"{path}: a [[row]] needs {' and '.join(missing)}")
        rows.append(Row(extra["board"], extra["model"], extra.get("variant", boards.DEFAULT_VARIANT),
                        list(options) + list(extra.get("options", []))))
    if not rows:
        raise KilnError(f"{path}: no rows: list boards and models (and variants that apply to them)")
    settings = {"validate": bool(data.get("validate", True)), "n": int(data.get("n", 2)),
                "timeout": float(data.get("timeout", 900)),
                "run_timeout": float(data.get("run_timeout", 0)) or None}
    return rows, settings


def _runnable(root: Path, board_name: str) -> str:
    """'host', 'qemu' or '' (hardware only: build only)."""
    return device.local_kind(boards.load_board(root, board_name)) or ""


def scons_args(root: Path, row: Row, builddir: Path, settings: dict, cache: str = "") -> list[str]:
    """The options of a row's child scons (tinykiln.child_scons starts it)."""
    cmd = [f"board={row.board}", f"variant={row.variant}", f"model={row.model}", f"builddir={builddir}"]
    where = _runnable(root, row.board)
    if settings["validate"] and where:
        cmd += ["validate=1", f"n={settings['n']}", f"flasher={where}"]
        if settings.get("run_timeout"):
            cmd.append(f"timeout={int(settings['run_timeout'])}")
    if cache:
        cmd.append(f"cache={cache}")
    return cmd + row.options


def _stop(proc: subprocess.Popen) -> None:
    """Stop a row's scons: SIGINT first (its Device stops QEMU), then SIGKILL (its QEMU dies with
    it: tinykiln.processes)."""
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=20)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def run_row(root: Path, row: Row, out: Path, settings: dict, cache: str = "") -> Result:
    builddir = out / f"{row.board}-{row.variant}"
    args = scons_args(root, row, builddir, settings, cache)
    log = out / "logs" / f"{row.slug}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    name = models.resolve(root, row.model).name
    report = paths.firmware_dir(builddir, row.board, row.variant, name) / "report.json"
    if report.exists():
        report.unlink()  # a row that fails before linking must not show an earlier run's figures
    start = time.monotonic()
    # The log fills while the row runs (tail -f it); the result is read from it afterwards.
    with open(log, "w") as f:
        f.write(" ".join(child_scons.command(args)) + "\n\n")
        f.flush()
        # its own process group (stopped as one); it dies with this process
        proc = child_scons.popen(args, stdout=f)
        try:
            status = proc.wait(timeout=settings["timeout"])
        except subprocess.TimeoutExpired:
            _stop(proc)
            f.write(f"\nmatrix: timed out after {settings['timeout']:.0f} s\n")
            status = -1
    seconds = time.monotonic() - start
    output = log.read_text(errors="replace")
    ran = bool(settings["validate"] and _runnable(root, row.board))
    result = Result(row.board, row.variant, row.model, row.options,
                    "pass" if status == 0 else "fail", ran, round(seconds, 1), log=str(log))
    _read_report(report, result)
    if status != 0:
        result.error = _tail(output)
    elif ran and not result.validated:
        result.status, result.error = "fail", "the run left no passing validation in report.json"
    return result


def _read_report(path: Path, result: Result) -> None:
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError:
        return
    result.regions = [{k: r.get(k) for k in ("name", "used", "size", "holds")}
                      for r in data.get("regions", [])]
    if not result.regions and data.get("totals"):  # host: section totals instead of regions
        t = data["totals"]
        result.regions = [{"name": "image", "used": sum(t.get(k, 0) for k in ("text", "data", "nn_weights")),
                           "size": None, "holds": ["text", "weights"]},
                          {"name": "ram", "used": sum(t.get(k, 0) for k in ("data", "bss", "nn_data_act")),
                           "size": None, "holds": ["data", "activations"]}]
    memory = data.get("memory", {})
    result.arena_bytes = memory.get("arena_bytes")
    result.weights_bytes = memory.get("weights_bytes")
    result.state_bytes = memory.get("state_bytes")
    validation = data.get("validation")
    if validation:
        result.bit_exact = bool(validation.get("bit_exact"))
        result.validated = bool(validation.get("passed"))
        result.float_rtol = validation.get("float_rtol")
        result.count = validation.get("cycles_per_inference")
        result.count_unit = validation.get("cycle_unit", "")


def run(root: Path, rows: list[Row], settings: dict, out: Path, jobs: int = 1, cache: str = "",
        say=print) -> list[Result]:
    """Run the rows; rows of one board + variant in sequence, groups in parallel (jobs)."""
    groups: dict[tuple[str, str], list[tuple[int, Row]]] = {}
    for index, row in enumerate(rows):
        groups.setdefault((row.board, row.variant), []).append((index, row))
    results: list[Result | None] = [None] * len(rows)

    def run_group(group):
        for index, row in group:
            result = run_row(root, row, out, settings, cache)
            results[index] = result
            extra = f" ({result.count:,} {result.count_unit}/inference)" if result.count else ""
            say(f"matrix: {result.status.upper():4} {row.name} in {result.seconds:.0f} s{extra}")

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        list(pool.map(run_group, groups.values()))
    return results


def _bytes(n) -> str:
    return "—" if n is None else f"{n:,}"


def _regions_md(result: Result) -> str:
    if not result.regions:
        return "—"
    parts = []
    for r in result.regions:
        size = f"/{r['size']:,}" if r.get("size") else ""
        parts.append(f"{r['name']} {r['used']:,}{size}")
    return "<br>".join(parts)


def report_md(results: list[Result], source: str) -> str:
    failed = [r for r in results if r.status != "pass"]
    # Options every row has (the file's `options`) say nothing about a row: show the others only.
    common = set.intersection(*(set(r.options) for r in results)) if results else set()

    def own(r):
        extra = [o for o in r.options if o not in common]
        return f" ({' '.join(extra)})" if extra else ""

    lines = [f"# tinykiln matrix: {source}", "",
             f"{len(results)} rows: {len(results) - len(failed)} passed, {len(failed)} failed. "
             "Counts are per inference: instructions under QEMU (-icount shift=0), ns on the host.", "",
             "| board | variant | model | status | memory used (region used/size, B) | arena B | "
             "weights B | count/inference | bit-exact | s |",
             "|---|---|---|---|---|---:|---:|---:|---|---:|"]
    for r in results:
        count = f"{r.count:,} {r.count_unit}" if r.count else ("—" if r.ran else "not run")
        if r.validated is None:
            exact = "—"
        elif r.validated:
            exact = "yes" if r.bit_exact else f"within {r.float_rtol:g} (float)"
        else:
            exact = "**no**"
        status = "pass" if r.status == "pass" else "**FAIL**"
        model = r.model + own(r)
        lines.append(f"| {r.board} | {r.variant} | {model} | {status} | {_regions_md(r)} | "
                     f"{_bytes(r.arena_bytes)}{f' (+{r.state_bytes:,} state)' if r.state_bytes else ''} | "
                     f"{_bytes(r.weights_bytes)} | {count} | {exact} | "
                     f"{r.seconds:.0f} |")
    for r in failed:
        lines += ["", f"## FAIL {r.board}/{r.variant}/{r.model}{own(r)}", "", f"log: `{r.log}`", "", "```",
                  r.error, "```"]
    return "\n".join(lines) + "\n"


def write_reports(results: list[Result], out: Path, source: str) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    md, js = out / "report.md", out / "report.json"
    md.write_text(report_md(results, source))
    js.write_text(json.dumps({"matrix": source, "passed": all(r.status == "pass" for r in results),
                              "rows": [asdict(r) for r in results]}, indent=2) + "\n")
    return md, js


def main(root, matrix_file, jobs: int = 1, builddir: str = "build", cache: str = "",
         only_board: str = "") -> int:
    """./kiln matrix=... [board=]: run the matrix (only_board: that board's rows, e.g. one CI job
    per board), write the reports, return the exit status."""
    root = Path(root)
    try:
        rows, settings = load(root, matrix_file)
        if only_board:
            rows = [r for r in rows if r.board == only_board]
            if not rows:
                raise KilnError(f"{matrix_file} has no rows for board {only_board}")
    except KilnError as e:
        sys.stderr.write(f"kiln: error: {e}\n")
        return 2
    out = paths.matrix_dir(paths.build_root(builddir))
    print(f"matrix: {len(rows)} rows from {matrix_file}, {jobs} at a time; logs in {out / 'logs'}",
          flush=True)
    results = run(root, rows, settings, out, jobs=jobs, cache=cache,
                  say=lambda line: print(line, flush=True))
    md, js = write_reports(results, out, str(matrix_file))
    print(md.read_text())
    print(f"matrix: report in {md} and {js}")
    return 0 if all(r.status == "pass" for r in results) else 1


def _cli(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tinykiln.matrix", description=__doc__.splitlines()[0])
    p.add_argument("matrix")
    p.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--builddir", default="build")
    p.add_argument("--cache", default="")
    p.add_argument("--board", default="", help="only this board's rows")
    args = p.parse_args(argv)
    root = Path(__file__).resolve().parents[2]
    return main(root, args.matrix, jobs=args.jobs, builddir=args.builddir, cache=args.cache,
                only_board=args.board)


if __name__ == "__main__":
    sys.exit(_cli())
