"""run=1 / flash=1 of an app: put the firmware where the board + options say, run it, the status.

QEMU and host runs end with the firmware's status, the console on this terminal; a real board
returns 0 once programmed, or, with run=1 and port=, the status the firmware prints as
"tk: exit N" (its console shown meanwhile). A perf app run on QEMU with the cycle-estimate plugin
(tinykiln.cycles) ends with the estimated cycles per inference, also written to the report.json
beside the ELF.
"""
from __future__ import annotations

from pathlib import Path

from tinykiln import KilnError, cycles, report

from . import open as open_device
from .choose import PROBES, RUN
from .devices import TERMINAL


def program(dev, elf) -> None:
    """Flash a real board and say so (with the probe used)."""
    dev.flash(elf)
    through = f" (probe {dev.probe})" if dev.probe else ""
    print(f"flashed {elf} to {dev.board.name} with {dev.kind}{through}", flush=True)


def deploy(board, elf, options, *, run: bool = False) -> int:
    """flash=1 / run=1: the exit status (see the module doc)."""
    with open_device(board, options, RUN) as dev:
        if dev.kind not in PROBES:
            dev.start(elf, TERMINAL)
            status = dev.wait(options.timeout)
            if status == 0:
                _perf_estimate(dev, elf)
            return status
        program(dev, elf)
        if run and options.port:
            return dev.wait(options.timeout)
        if run:
            print("run=1: give port=/dev/ttyACM0 (the board's console) to see the output", flush=True)
        return 0


def _perf_estimate(dev, elf) -> None:
    """The perf app's estimated cycles, when the plugin ran: printed and put in report.json."""
    marks = dev.cycle_marks()
    core = cycles.core_of(dev.board)
    if core is None:
        return
    if marks is None:
        if "perf: instructions/inference" in dev.output():
            reason = cycles.unavailable() or "the build made no cycle-estimate plugin"
            print(f"perf: cycle estimate: none ({reason})", flush=True)
        return
    try:
        estimate = cycles.perf_estimate(core, marks, dev.output())
    except KilnError as e:
        print(f"perf: cycle estimate: none (its records do not match the app's counts: {e})", flush=True)
        return
    if estimate is None:
        return
    print(cycles.perf_line(estimate), flush=True)
    path = Path(elf).with_name("report.json")
    if path.is_file():
        report.merge(path, **estimate.report())
