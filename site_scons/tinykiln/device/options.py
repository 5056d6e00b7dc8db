"""What decides where firmware runs and how: the few options a Device needs, typed.

    options = DeviceOptions.from_opts(env["KILN_OPTIONS"])      # the scons options dict
    options = DeviceOptions(port="/dev/ttyACM0", flash=True)   # or built directly
"""
from __future__ import annotations

from dataclasses import dataclass

from tinykiln import KilnError

DEFAULT_TIMEOUT = 60.0  # seconds a run may last (scons' timeout= default)


@dataclass(frozen=True)
class DeviceOptions:
    flasher: str = ""  # flasher=: qemu, openocd, pyocd or host; empty: decided by kind()
    port: str = ""  # port=: the board's console (serial port or pyserial URL)
    probe: str = ""  # probe=: the debug probe's USB serial number
    flash: bool = False  # flash=1: program the board (the firmware runs on the hardware)
    timeout: float = DEFAULT_TIMEOUT  # timeout=: seconds before a run is stopped
    icount: bool = True  # QEMU counts instructions (-icount shift=0)
    tracker: str = ""  # tracker=host:port: devices behind a TVM RPC tracker (tune=1)

    @classmethod
    def from_opts(cls, opts: dict) -> "DeviceOptions":
        """The device options of a scons options dict (strings, or bools for flags)."""
        try:
            timeout = float(opts.get("timeout") or DEFAULT_TIMEOUT)
        except ValueError:
            raise KilnError(f"timeout={opts.get('timeout')} takes a number of seconds, e.g. "
                            f"timeout=60") from None
        return cls(flasher=opts.get("flasher") or "", port=opts.get("port") or "",
                   probe=opts.get("probe") or "", flash=bool(opts.get("flash")), timeout=timeout,
                   tracker=opts.get("tracker") or "")
