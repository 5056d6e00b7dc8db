"""run=1 / flash=1 of an app: put the firmware where the board + options say, run it, the status.

QEMU and host runs end with the firmware's status, the console on this terminal; a real board
returns 0 once programmed, or, with run=1 and port=, the status the firmware prints as
"tk: exit N" (its console shown meanwhile).
"""
from __future__ import annotations

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
            return dev.wait(options.timeout)
        program(dev, elf)
        if run and options.port:
            return dev.wait(options.timeout)
        if run:
            print("run=1: give port=/dev/ttyACM0 (the board's console) to see the output", flush=True)
        return 0
