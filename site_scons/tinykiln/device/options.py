"""What decides where firmware runs and how: the few options a Device needs, typed.

    options = DeviceOptions.from_opts(env["KILN_OPTIONS"])      # the scons options dict
    options = DeviceOptions(port="/dev/ttyACM0", flash=True)   # or built directly
"""
from __future__ import annotations

from dataclasses import dataclass

from tinykiln import options as kiln_options

DEFAULT_TIMEOUT = kiln_options.BY_KEY["timeout"].default  # seconds a run may last


@dataclass(frozen=True)
class DeviceOptions:
    flasher: str = ""  # flasher=: qemu, openocd, pyocd or host; empty: decided by kind()
    port: str = ""  # port=: the board's console (serial port or pyserial URL)
    probe: str = ""  # probe=: the debug probe's USB serial number
    flash: bool = False  # flash=1: program the board (the firmware runs on the hardware)
    timeout: float = DEFAULT_TIMEOUT  # timeout=: seconds before a run is stopped
    icount: bool = True  # QEMU counts instructions (-icount shift=0)
    tracker: str = ""  # tracker=host:port: devices behind a TVM RPC tracker (tune=1)
    cycles_plugin: str = ""  # the cycle-estimate QEMU plugin (tinykiln.cycles) the build made, if any

    @classmethod
    def from_opts(cls, opts) -> "DeviceOptions":
        """The device options of the build's options (tinykiln.options; a dict of texts is parsed)."""
        opts = kiln_options.typed(opts)
        return cls(flasher=opts.flasher, port=opts.port, probe=opts.probe, flash=opts.flash,
                   timeout=opts.timeout, tracker=opts.tracker)
