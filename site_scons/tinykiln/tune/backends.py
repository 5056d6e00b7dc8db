"""Where tune=1 measures, from its options: one `run(board, elf, timeout) -> (count, unit, digest)`
for the driver's pool of `devices` threads.

    tracker=host:port    devices behind a TVM RPC tracker (tune.rpc)
    port=A[,B...]        real boards on this machine, flashed per trial, one per port (tune.ports)
    neither              the host process or QEMU on this machine, devices= at a time (tune.measure)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from tinykiln import device

from . import measure


@dataclass
class Backend:
    run: object  # run(board, elf, timeout) -> (count, unit, digest)
    devices: int  # how many measure at once
    via: str  # the trial records' "via"
    hardware_args: list[str] = field(default_factory=list)  # scons options of the whole-model runs


def _local(board, elf, timeout):
    return measure.run_bench(board, elf, timeout)  # looked up per call: the tests replace it


def choose(board, options: device.DeviceOptions, devices: int) -> Backend:
    """The backend the options mean (see the module doc); a KilnError for a port that does not open."""
    if options.tracker:
        from . import rpc

        return Backend(rpc.runner(options.tracker), devices, f"tracker {options.tracker}")
    if options.port:
        from . import ports

        port_list = ports.parse_ports(options.port)
        run = ports.runner(board, port_list, options.flasher)
        # The whole-model before/after runs on the first board too (flashed, read over its port);
        # a board that only QEMU runs (the tests' stand-in) validates under QEMU.
        real = [m for m in board.flash_methods if m in device.PROBES]
        hardware = [f"port={port_list[0]}", "flash=1", f"flasher={options.flasher or real[0]}"] if real else []
        return Backend(run, len(port_list), "port", hardware)
    return Backend(_local, devices, device.kind(board, options, device.BENCH))
