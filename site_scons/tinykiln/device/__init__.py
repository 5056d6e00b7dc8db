"""Where firmware runs: one interface over QEMU, the host process, real boards behind a debug
probe (openocd, pyocd) and RPC device servers.

    from tinykiln import device
    options = device.DeviceOptions.from_opts(opts)       # flasher=, port=, probe=, flash=, timeout=
    with device.open(board, options, device.SESSION) as dev:
        dev.flash(elf); dev.start(elf); url = dev.serial; ...; status = dev.wait(options.timeout)

Modules:
    options   DeviceOptions: the options that decide where and how firmware runs
    choose    kind(board, options, purpose): THE decision which kind of device that is
    devices   Device and its kinds: QemuDevice, HostDevice, ProbeDevice (life cycle, console)
    rpc       RpcDevice: a device server behind a TVM RPC tracker
    qemu      the qemu-system-arm command line and session
    (children that die with their parent: tinykiln.processes, which runner/ uses too)
    deploy    run=1 / flash=1 of an app: put it there, run it, the exit status
"""
from __future__ import annotations

from .choose import BENCH, HOST, OPENOCD, PROBES, PYOCD, QEMU, RPC, RUN, SESSION, kind, local_kind
from .devices import CAPTURE, SERIAL, TERMINAL, Device, HostDevice, ProbeDevice, QemuDevice
from .options import DeviceOptions

__all__ = ["BENCH", "CAPTURE", "HOST", "OPENOCD", "PROBES", "PYOCD", "QEMU", "RPC", "RUN", "SERIAL",
           "SESSION", "TERMINAL", "Device", "DeviceOptions", "HostDevice", "ProbeDevice", "QemuDevice",
           "kind", "local_kind", "open"]


def open(board, options: DeviceOptions, purpose: str = RUN) -> Device:
    """The Device `board` and `options` mean for `purpose` (see choose.kind); nothing runs yet."""
    found = kind(board, options, purpose)
    if found == QEMU:
        return QemuDevice(board, options)
    if found == HOST:
        return HostDevice(board, options)
    if found == RPC:
        from .rpc import RpcDevice

        return RpcDevice(board, options)
    return ProbeDevice(board, options, found)
