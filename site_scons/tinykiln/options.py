"""The command-line options (board=, model=, run=1, ...): their types, defaults and help, checked once.

    OPTIONS                          the table: key, type, default, help (./kiln -h prints it)
    parse({"n": "5", ...}) -> Options     every value converted and checked; a bad value is one
                                     KilnError naming each bad option and what it takes
    typed(opts) -> Options           Options as they are, a dict of texts parsed (tools called from
                                     Python or tests with a plain dict)
    Options                          attribute access (opts.n) and read-only mapping access
                                     (opts["n"], opts.get("n")), for the build and every tool

Every default lives here and nowhere else. Values arrive as text (SCons ARGUMENTS, a matrix row,
a tune child build) and leave typed: bool, int, float, or str. Paths (builddir=, cache=,
schedules=, samples=, matrix=) leave absolute, resolved once against where the user stands (paths.user_path),
so that tune=1's and matrix=1's child builds, started in the checkout, read the same files.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

from tinykiln import KilnError
from tinykiln.boards import DEFAULT_BOARD, DEFAULT_VARIANT
from tinykiln import paths
from tinykiln.paths import DEFAULT_BUILDDIR

# A week: longer waits overflow some of the OS's timers (threading, select), and no run takes that.
MAX_SECONDS = 7 * 24 * 3600
_TRUE = ("1", "y", "yes", "true", "t", "on", "all")
_FALSE = ("0", "n", "no", "false", "f", "off", "none", "")


@dataclass(frozen=True)
class Option:
    key: str
    kind: type  # bool, int, float or str
    default: Any
    help: str
    minimum: float | None = None  # int/float: the smallest accepted value
    maximum: float | None = None  # int/float: the largest (what the OS's timers take, for seconds)
    check: Callable[[Any], str | None] | None = None  # returns a complaint, or None
    resolve: Callable[[str], str] | None = None  # a path option: text -> absolute path (KilnError if bad)

    def shown_default(self) -> str:
        if self.kind is bool:
            return str(int(self.default))
        return f"{self.default:g}" if self.kind is float else str(self.default)


def _not_empty(value: str) -> str | None:
    return "must not be empty" if not value.strip() else None


def _c_macros(value: str) -> str | None:
    """defines= reaches the compiler's command line, which SCons runs through a shell."""
    for item in (d.strip() for d in value.split(",") if d.strip()):
        name, _, macro_value = item.partition("=")
        if not name.isidentifier() or not name.isascii() or paths.SHELL_SPECIAL & set(macro_value) \
                or any(c.isspace() for c in macro_value):
            return (f"takes C macros NAME or NAME=VALUE, comma-separated (e.g. defines=TK_SELFTEST_FAULT); "
                    f"'{item}' is not one, or holds characters a shell would read")
    return None


def _clock_mode(value: str) -> str | None:
    return None if value in ("auto", "reset", "max") else "takes auto, reset or max"


# optimize=: what each mode chooses is tinykiln/ops/footprint.py's
OPTIMIZE_MODES = ("speed", "balanced", "size")


def _optimize(value: str) -> str | None:
    return None if value in OPTIMIZE_MODES else f"takes one of {', '.join(OPTIMIZE_MODES)}"


def _path(text: str) -> str:
    return str(paths.user_path(text)) if text else text


def _paths(text: str) -> str:
    """samples=a.npy,b.npy: each made absolute."""
    return ",".join(_path(t) for t in text.split(",") if t)


def _file(text: str) -> str:
    return str(paths.user_file(text)) if text else text


def _build_path(text: str) -> str:
    return str(paths.build_root(text))


OPTIONS: tuple[Option, ...] = (
    Option("board", str, DEFAULT_BOARD, "board to build for (boards/<board>/board.toml)"),
    Option("variant", str, DEFAULT_VARIANT, "build variant (variants/<variant>.toml)"),
    Option("model", str, "", "model to compile (models/<model>/); empty: the self-test firmware"),
    Option("app", str, "", "the on-device app (runtime/apps/<app>/): validation (default with model=), perf "
           "(timed runs, prints cycles/inference), selftest (default without model=)"),
    Option("run", bool, False, "build, then run: QEMU for emulated boards, a process for host, flash + "
           "console (port=) for hardware; with model= and the validation app: validate on the device and "
           "print the verdict, cycles, arena and flash"),
    Option("flash", bool, False, "build, then put the firmware on the board (flasher=)"),
    Option("flasher", str, "", "flash method: qemu, openocd, pyocd, host (default: the board's first)"),
    Option("clock", str, "auto", "the core clock: max (the board's rated clock_hz: PLL, flash wait states, "
           "bus dividers set at start-up), reset (the clock after reset), auto: max on hardware, reset for "
           "a QEMU run (QEMU ignores the clock registers)", check=_clock_mode),
    Option("port", str, "", "the board's console: a serial port or pyserial URL (e.g. /dev/ttyACM0, "
           "serial:/dev/ttyACM0:921600); with tune=1: measure on real boards, flashed per trial, one per "
           "port (port=/dev/ttyACM0,/dev/ttyACM1)"),
    Option("probe", str, "", "flash through the debug probe with this USB serial number (several boards on "
           "one host; `.venv/bin/pyocd list` shows them); default: the probe behind port=, if known"),
    Option("timeout", float, 60.0, "seconds a run may last before it is killed", minimum=0.001,
           maximum=MAX_SECONDS),
    Option("validate", bool, False, "with model=: run the firmware on n inputs and compare every output "
           "with LiteRT's reference kernels (kiln_model.py)"),
    Option("n", int, 10, "with validate=1: number of seeded random inputs (plus the model's samples)",
           minimum=0),
    Option("seed", int, 12345, "with validate=1: seed of the random inputs"),
    Option("samples", str, "", "with validate=1: real inputs, .npy files (comma-separated) added to the "
           "model's own; an array not of the input's dtype is quantized with the input's scale/zero point",
           resolve=_paths),
    Option("profile", bool, False, "with model=: also time every layer on the device; prints the table, "
           "writes it to report.json and profile.png"),
    Option("schedules", str, "", "with model=: the schedule file to build with (default: the model's "
           "schedules/<board>.json if it exists)", resolve=_path),
    Option("use_tuned", bool, True, "with model=: build with the knobs of the schedule file; 0: every "
           "kernel with its default knobs"),
    # speed is the default while the int8-weight micro-kernels cost 15-60% more instructions than the
    # int16 ones (issue 13): a smaller default must not silently make every model slower
    Option("optimize", str, "speed", "with model=: speed (int16 weights wherever they pay and fit; where they "
           "would not fit, int8), size (int8 weights everywhere: about half the flash, 15-60 percent more "
           "instructions) or balanced (int8 weights except where int16 pays most, within 5 percent more weight "
           "bytes; tinykiln/ops/footprint.py)", check=_optimize),
    Option("tune", bool, False, "with model=: measure candidate schedules of every kernel on the "
           "(emulated) board and write the best into the schedule file (tinykiln/tune/)"),
    Option("trials", int, 8, "with tune=1: candidate schedules per kernel, the default included", minimum=1),
    Option("devices", int, 2, "with tune=1: QEMU instances measuring at the same time", minimum=1),
    Option("tracker", str, "", "with tune=1: measure on devices behind a TVM RPC tracker (host:port) "
           "registered under the board's name (python -m tinykiln.tune_rpc)"),
    Option("tune_bench", str, "", "internal (tune=1): a manifest of kernel benchmark firmwares to build"),
    Option("defines", str, "", "extra C macros for every file, comma-separated (e.g. TK_SELFTEST_FAULT)",
           check=_c_macros),
    Option("werror", bool, False, "treat compiler warnings as errors"),
    Option("verbose", bool, False, "show full command lines"),
    Option("builddir", str, DEFAULT_BUILDDIR, "where outputs go (build/<board>/<variant>/<target>/ below it)",
           check=_not_empty, resolve=_build_path),
    Option("export", bool, False, "with model=: write build/<board>/<variant>/<model>/export/ (headers, "
           "sources, lib<model>.a, linker fragment, Make/CMake snippets) and its zip"),
    Option("matrix", str, "", "a TOML file of boards x models x variants: build (and run the emulated ones) "
           "every combination, write build/matrix/report.md and report.json", resolve=_file),
    Option("cache", str, "", "a directory shared between builds (SCons CacheDir): generated kernels and "
           "objects built once are fetched from it (made if missing)", resolve=_path),
)
BY_KEY = {o.key: o for o in OPTIONS}


class Options(Mapping):
    """Typed option values: opts.timeout or opts["timeout"]; missing keys take their defaults."""

    def __init__(self, values: dict[str, Any] | None = None):
        merged = {o.key: o.default for o in OPTIONS}
        merged.update(values or {})
        object.__setattr__(self, "_values", merged)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def __setattr__(self, key, value):
        raise AttributeError("options are read-only: make new ones with replace()")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def replace(self, **changes) -> "Options":
        return Options({**self._values, **changes})

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if k not in BY_KEY or v != BY_KEY[k].default}
        return f"Options({changed})"


def convert(option: Option, text: Any) -> Any:
    """One option's value from its text; raises ValueError with what the option takes."""
    if not isinstance(text, str):
        text = str(int(text)) if isinstance(text, bool) else str(text)
    if option.kind is bool:
        low = text.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise ValueError("takes 1 or 0 (yes/no, true/false, on/off)")
    if option.kind is str:
        value = text
    else:
        try:
            value = option.kind(text.strip())
        except ValueError:
            what = "a whole number" if option.kind is int else "a number"
            raise ValueError(f"takes {what}, e.g. {option.key}={option.shown_default()}") from None
        if option.kind is float and not math.isfinite(value):
            raise ValueError(f"takes a finite number, e.g. {option.key}={option.shown_default()}")
        if option.minimum is not None and value < option.minimum:
            least = "more than 0" if option.minimum not in (0, 1) else f"{option.minimum:g} or more"
            raise ValueError(f"must be {least}")
        if option.maximum is not None and value > option.maximum:
            raise ValueError(f"must be at most {option.maximum:g}")
    complaint = option.check(value) if option.check else None
    if complaint:
        raise ValueError(complaint)
    if option.resolve:
        try:
            value = option.resolve(value)
        except KilnError as e:
            raise ValueError(str(e).removeprefix(f"{option.key}={text} ")) from None
    return value


def parse(raw: Mapping[str, Any]) -> Options:
    """Options from text values; unknown keys and every bad value are reported together."""
    unknown = [k for k in raw if k not in BY_KEY]
    if unknown:
        raise KilnError(f"unknown option {', '.join(unknown)}. Options: {', '.join(BY_KEY)} "
                        f"(./kiln -h explains them)")
    values, problems = {}, []
    for key, text in raw.items():
        try:
            values[key] = convert(BY_KEY[key], text)
        except ValueError as e:
            problems.append(f"{key}={text!s} {e}")
    if problems:
        raise KilnError("bad option value: " + "; ".join(problems))
    return Options(values)


def typed(opts: Mapping[str, Any] | None) -> Options:
    return opts if isinstance(opts, Options) else parse(dict(opts or {}))
