"""SCons tool `kiln`: the command-line options, the board/variant, and running/flashing.

    env = Environment(tools=["kiln"])        # reads board=, variant=, ... from the command line
    fw = env.KilnFirmware("selftest", app="selftest")    # see kiln_firmware.py
    env.KilnDeploy(fw)                       # run=1 / flash=1

Set in the environment:
    KILN_OPTIONS      dict of the options below (board, variant, model, run, flash, ...)
    KILN_TARGET       tinykiln.boards.Target (board + variant, resolved and checked)
    KILN_ROOT         the project root (pathlib.Path)
    KILN_BUILD_DIR    build/<board>/<variant> (SCons Dir); a firmware named N builds in N/ below it

Errors: tinykiln.KilnError raised while SConstruct reads is printed as "kiln: error: ..." (exit 2);
raised in a Python action it becomes a one-line SCons error, no traceback (wrap the action with
`kiln_action`, importable as `from kiln import kiln_action` in tools loaded after this one).
"""
import atexit
import functools
import os
import sys
from pathlib import Path

import SCons.Errors
from SCons.Script import ARGUMENTS, BoolVariable, GetOption, Help, Variables

from tinykiln import KilnError, boards


def _exit_with(status: int) -> None:
    """Make scons exit with the firmware's status instead of its usual 2 for a failed action.

    SCons turns every failed Python action into exit status 2. Its state (.sconsign) is saved
    before it calls sys.exit, so an atexit hook may replace the status safely.
    """
    def hook():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    atexit.register(hook)


def kiln_action(func):
    """Wrap a Python action so that KilnError becomes a clean SCons error (no traceback)."""

    @functools.wraps(func)
    def wrapper(target, source, env):
        try:
            return func(target, source, env)
        except KilnError as e:
            raise SCons.Errors.UserError(str(e)) from None

    return wrapper


def _options(root: Path) -> Variables:
    v = Variables(None, ARGUMENTS)
    v.Add("board", "board to build for (boards/<board>/board.toml)", boards.DEFAULT_BOARD)
    v.Add("variant", "build variant (variants/<variant>.toml)", boards.DEFAULT_VARIANT)
    v.Add("model", "model to compile (models/<model>/); empty: the self-test firmware", "")
    v.Add("app", "the on-device app (runtime/apps/<app>/): validation (default with model=), perf "
          "(timed runs, prints cycles/inference), selftest (default without model=)", "")
    v.Add(BoolVariable("run", "build, then run: QEMU for emulated boards, a process for host, "
                       "flash + console (port=) for hardware; with model= and the validation app: "
                       "validate on the device and print the verdict, cycles, arena and flash", False))
    v.Add(BoolVariable("flash", "build, then put the firmware on the board (flasher=)", False))
    v.Add("flasher", "flash method: qemu, openocd, pyocd, host (default: the board's first)", "")
    v.Add("port", "the board's console: a serial port or pyserial URL (e.g. /dev/ttyACM0, "
          "serial:/dev/ttyACM0:921600); with tune=1: measure on real boards, flashed per trial, "
          "one per port (port=/dev/ttyACM0,/dev/ttyACM1)", "")
    v.Add("probe", "flash through the debug probe with this USB serial number (several boards on one "
          "host; `.venv/bin/pyocd list` shows them); default: the probe behind port=, if known", "")
    v.Add("timeout", "seconds a run may last before it is killed", "60")
    v.Add(BoolVariable("validate", "with model=: run the firmware on n inputs and compare every "
                       "output with LiteRT's reference kernels (kiln_model.py)", False))
    v.Add("n", "with validate=1: number of seeded random inputs (plus the model's samples)", "10")
    v.Add("seed", "with validate=1: seed of the random inputs", "12345")
    v.Add("samples", "with validate=1: real inputs, .npy files (comma-separated) added to the model's "
          "own; an array not of the input's dtype is quantized with the input's scale/zero point", "")
    v.Add(BoolVariable("profile", "with model=: also time every layer on the device; prints the "
                       "table, writes it to report.json and profile.png", False))
    v.Add("schedules", "with model=: the schedule file to build with (default: the model's "
          "schedules/<board>.json if it exists)", "")
    v.Add(BoolVariable("use_tuned", "with model=: build with the knobs of the schedule file; 0: "
                       "every kernel with its default knobs", True))
    v.Add(BoolVariable("tune", "with model=: measure candidate schedules of every kernel on the "
                       "(emulated) board and write the best into the schedule file (tinykiln/tune.py)",
                       False))
    v.Add("trials", "with tune=1: candidate schedules per kernel, the default included", "8")
    v.Add("devices", "with tune=1: QEMU instances measuring at the same time", "2")
    v.Add("tracker", "with tune=1: measure on devices behind a TVM RPC tracker (host:port) "
          "registered under the board's name (python -m tinykiln.tune_rpc)", "")
    v.Add("tune_bench", "internal (tune=1): a manifest of kernel benchmark firmwares to build", "")
    v.Add("defines", "extra C macros for every file, comma-separated (e.g. TK_SELFTEST_FAULT)", "")
    v.Add(BoolVariable("werror", "treat compiler warnings as errors", False))
    v.Add(BoolVariable("verbose", "show full command lines", False))
    v.Add("builddir", "where outputs go (build/<board>/<variant>/<target>/ below it)", "build")
    v.Add(BoolVariable("export", "with model=: write build/<board>/<variant>/<model>/export/ (headers, "
                       "sources, lib<model>.a, linker fragment, Make/CMake snippets) and its zip", False))
    v.Add("matrix", "a TOML file of boards x models x variants: build (and run the emulated ones) "
          "every combination, write build/matrix/report.md and report.json", "")
    v.Add("cache", "a directory shared between builds (SCons CacheDir): generated kernels and "
          "objects built once are fetched from it", "")
    return v


def _help_text(env, opts: Variables, root: Path) -> str:
    lines = ["tinykiln: TFLite model -> bare-metal firmware.", "",
             "Usage: ./kiln [option=value ...] [targets]", "", "Options (default in brackets):"]
    for o in opts.options:
        default = o.default if not isinstance(o.default, bool) else int(o.default)
        lines.append(f"  {o.key + '=':<10} {o.help} [{default}]")
    lines += ["", "Boards (flash methods in brackets, first = default):"]
    for name in boards.board_names(root):
        try:
            b = boards.load_board(root, name)
            extra = f" [{', '.join(b.flash_methods)}]"
            lines.append(f"  {name:<15} {b.description}{extra}")
        except KilnError as e:
            lines.append(f"  {name:<15} (invalid: {e})")
    lines.append("")
    lines.append("Variants:")
    for name in boards.variant_names(root):
        try:
            v = boards.load_variant(root, name)
            only = "" if "*" in v.boards else f" (boards: {', '.join(v.boards)})"
            lines.append(f"  {name:<15} {v.description}{only}")
        except KilnError as e:
            lines.append(f"  {name:<15} (invalid: {e})")
    lines += ["", "Examples:",
              "  ./kiln                                  the demo: cifar10 on QEMU mps2-an500 (run=1)",
              "  ./kiln board=mps2-an386 model=cifar10 run=1 profile=1",
              "                                          validate on QEMU, per-layer profile",
              "  ./kiln model=cifar10 app=perf run=1     timed runs on random input (cycles/inference)",
              "  ./kiln board=nucleo-f746zg model=cifar10 flash=1 validate=1 port=/dev/ttyACM0",
              "                                          flash a real board and validate over its port",
              "  ./kiln run=1                            self-test on QEMU mps2-an500",
              "  ./kiln board=netduinoplus2 run=1        the same on another emulated board",
              "  ./kiln board=nucleo-f746zg flash=1      build and flash a real board (openocd)",
              "  ./kiln board=host run=1                 build for this machine and run it",
              "  ./kiln board=mps2-an500 model=cifar10 tune=1 trials=8 devices=2",
              "                                          tune every kernel on QEMU, write the schedule",
              "  ./kiln board=mps2-an500 model=cifar10 export=1",
              "                                          the model as a library for your firmware",
              "  ./kiln matrix=ci/matrix.toml            every board x model x variant, one report",
              ""]
    return "\n".join(lines)


def _deploy(env, firmware):
    """run=1 / flash=1: an always-run `run` alias after the firmware; its status is the exit."""
    from tinykiln import device
    from tinykiln.device.deploy import deploy as deploy_firmware

    opts = env["KILN_OPTIONS"]
    if not (opts["run"] or opts["flash"]):
        return None
    elf = firmware[0]
    target = env["KILN_TARGET"]
    options = device.DeviceOptions.from_opts(opts)

    @kiln_action
    def deploy(target_nodes, source, env):
        status = deploy_firmware(target.board, str(source[0]), options, run=opts["run"])
        if status != 0:
            _exit_with(status)
            raise SCons.Errors.UserError(f"the firmware exited with status {status}")
        return 0

    method = device.kind(target.board, options, device.RUN)
    verb = "FLASH" if method in device.PROBES else "RUN"
    alias = env.Alias("run", elf, env.Action(deploy, f"{verb} {elf} ({method})"))
    env.AlwaysBuild(alias)
    env.Default(alias)
    return alias


def generate(env):
    root = Path(env.Dir("#").abspath)
    opts = _options(root)
    opts.Update(env)
    Help(_help_text(env, opts, root), append=False)
    unknown = opts.UnknownVariables()
    if unknown:
        known = [o.key for o in opts.options]
        raise KilnError(f"unknown option {', '.join(unknown)}. Options: {', '.join(known)} "
                        f"(./kiln -h explains them)")
    options = {o.key: env[o.key] for o in opts.options}
    env["KILN_OPTIONS"] = options
    env["KILN_ROOT"] = root
    if GetOption("help"):
        # -h must work even with a bad board= on the command line.
        try:
            env["KILN_TARGET"] = boards.resolve(root, options["board"], options["variant"])
        except KilnError:
            env["KILN_TARGET"] = boards.resolve(root, boards.DEFAULT_BOARD, boards.DEFAULT_VARIANT)
    else:
        env["KILN_TARGET"] = boards.resolve(root, options["board"], options["variant"])
    t = env["KILN_TARGET"]
    builddir = env.Dir("#" + options["builddir"]) if not os.path.isabs(options["builddir"]) \
        else env.Dir(options["builddir"])
    env["KILN_BUILD_DIR"] = builddir.Dir(t.board.name).Dir(t.variant.name)
    env.SConsignFile(os.path.join(builddir.abspath, ".sconsign"))
    if options["cache"]:
        env.CacheDir(os.path.abspath(options["cache"]))
    env.AddMethod(_deploy, "KilnDeploy")
    env.Tool("kiln_firmware")


def exists(env):
    return True
