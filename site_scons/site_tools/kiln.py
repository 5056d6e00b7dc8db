"""SCons tool `kiln`: the command-line options, the board/variant, and running/flashing.

    env = Environment(tools=["kiln"])        # reads board=, variant=, ... from the command line
    fw = env.KilnFirmware("selftest", app="selftest")    # see kiln_firmware.py
    env.KilnDeploy(fw)                       # run=1 / flash=1

Set in the environment:
    KILN_OPTIONS      tinykiln.options.Options: every option, typed and checked (opts.timeout)
    KILN_TARGET       tinykiln.boards.Target (board + variant, resolved and checked)
    KILN_ROOT         the project root (pathlib.Path)
    KILN_BUILD_DIR    build/<board>/<variant> (SCons Dir); a firmware named N builds in N/ below it

Errors: tinykiln.KilnError raised while SConstruct reads is printed as "kiln: error: ..." (exit 2);
raised in a Python action it becomes a one-line SCons error, no traceback (wrap the action with
`kiln_action`, importable as `from kiln import kiln_action` in tools loaded after this one).
"""
import atexit
import dataclasses
import functools
import os
import signal
import sys
from pathlib import Path

import SCons.Errors
from SCons.Script import ARGUMENTS, COMMAND_LINE_TARGETS, GetOption, Help

from tinykiln import KilnError, boards, buildlock, interrupt, models, paths, prerequisites
from tinykiln.options import OPTIONS, Options, parse  # not `options`: SCons calls a tool's `options`


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


def _on_interrupt() -> None:
    _exit_with(interrupt.exit_status())


def _chain_interrupts() -> None:
    """Tell tinykiln.interrupt of SIGINT/SIGTERM/SIGHUP: while SConstruct reads (tune=1 and
    matrix= work there) with its own handler, and during the build beside SCons's, which SCons
    installs after SConstruct and which only stops new tasks, so a running validation would go on
    to the end. The exit status becomes the shell's 128 + signal."""
    from SCons.Taskmaster import Job

    setup = Job.Jobs._setup_sig_handler
    if getattr(setup, "kiln_chained", False):
        return
    interrupt.install(_on_interrupt)

    def chained(jobs) -> None:
        setup(jobs)
        parent = os.getpid()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            def handler(signum, frame, scons_handler=signal.getsignal(sig)):
                if os.getpid() == parent and not interrupt.INTERRUPTED.is_set():
                    interrupt.signalled(signum)
                    _on_interrupt()
                if callable(scons_handler):
                    scons_handler(signum, frame)
            signal.signal(sig, handler)

    chained.kiln_chained = True
    Job.Jobs._setup_sig_handler = chained


def kiln_action(func):
    """Wrap a Python action so that KilnError becomes a clean SCons error (no traceback)."""

    @functools.wraps(func)
    def wrapper(target, source, env):
        try:
            return func(target, source, env)
        except KilnError as e:
            raise SCons.Errors.UserError(str(e)) from None

    return wrapper


def _help_text(root: Path) -> str:
    lines = ["tinykiln: TFLite model -> bare-metal firmware.", "",
             "Usage: ./kiln [option=value ...] [targets]", "", "Options (default in brackets):"]
    for o in OPTIONS:
        lines.append(f"  {o.key + '=':<10} {o.help} [{o.shown_default()}]")
    lines += ["  Paths (model=, samples=, schedules=, builddir=, cache=, matrix=) are from the folder you run",
              "  ./kiln in (model= and matrix= also from the checkout); ~ is your home, also in quotes.", "",
              "Boards (flash methods in brackets, first = default):"]
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
    method = device.kind(target.board, options, device.RUN)
    plugin = env.KilnCyclesPlugin() if method == device.QEMU else None  # the cycle estimate
    if plugin is not None:
        options = dataclasses.replace(options, cycles_plugin=plugin.abspath)

    @kiln_action
    def deploy(target_nodes, source, env):
        status = deploy_firmware(target.board, str(source[0]), options, run=opts["run"])
        if status != 0:
            _exit_with(status)
            raise SCons.Errors.UserError(f"the firmware exited with status {status}")
        return 0

    verb = "FLASH" if method in device.PROBES else "RUN"
    alias = env.Alias("run", [elf] + ([plugin] if plugin is not None else []),
                      env.Action(deploy, f"{verb} {elf} ({method})"))
    env.AlwaysBuild(alias)
    env.Default(alias)
    return alias


def _check_targets(root: Path) -> None:
    """A bare word on the command line is an SCons target: `./kiln cifar10` meant model=cifar10."""
    for word in COMMAND_LINE_TARGETS:
        for key, names in (("model", models.model_names(root)), ("board", boards.board_names(root))):
            if word in names or (key == "model" and word.endswith(".tflite")):
                raise KilnError(f"'{word}' is not a target: options take key=value, e.g. ./kiln {key}={word}")


def generate(env):
    root = Path(env.Dir("#").abspath)
    _check_targets(root)
    Help(_help_text(root), append=False)
    try:
        opts = parse(ARGUMENTS)
    except KilnError:
        if not GetOption("help"):
            raise
        opts = Options()  # -h must work whatever else is on the command line
    env["KILN_OPTIONS"] = opts
    env["KILN_ROOT"] = root
    _chain_interrupts()
    if GetOption("help"):
        # -h must work even with a bad board= on the command line.
        try:
            env["KILN_TARGET"] = boards.resolve(root, opts.board, opts.variant, opts.clock, opts.flasher)
        except KilnError:
            env["KILN_TARGET"] = boards.resolve(root, boards.DEFAULT_BOARD, boards.DEFAULT_VARIANT)
    else:
        env["KILN_TARGET"] = boards.resolve(root, opts.board, opts.variant, opts.clock, opts.flasher)
    t = env["KILN_TARGET"]
    if not (GetOption("help") or GetOption("clean") or opts.matrix):
        prerequisites.check_tools(t.board)  # matrix=1: each row's own build checks its board's
    cache = paths.cache_root(opts.cache) if opts.cache else None
    build = paths.build_root(opts.builddir)
    if not GetOption("help"):
        buildlock.hold(build)  # one build at a time per build folder (its .sconsign is shared)
    env["KILN_BUILD_DIR"] = env.Dir(str(paths.target_dir(build, t.board.name, t.variant.name)))
    env.SConsignFile(str(paths.sconsign(build)))
    if cache:
        env.CacheDir(str(cache))
    env.AddMethod(_deploy, "KilnDeploy")
    env.Tool("kiln_firmware")
    env.Tool("kiln_cycles")


def exists(env):
    return True
