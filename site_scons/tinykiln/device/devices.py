"""The devices firmware runs on, one class per kind, all with the same life cycle:

    with device.open(board, options, SESSION) as dev:   # tinykiln.device.open picks the class
        dev.flash(elf)              # put the firmware there (a probe programs the board)
        dev.start(elf, SERIAL)      # boot it: console on TERMINAL, CAPTURE (output()) or SERIAL
        runner.connect(dev.serial)  # the console: a URL, or a transport (host process)
        status = dev.wait(timeout)  # the firmware's exit status
    # leaving the block stops whatever the device started, however it is left

QemuDevice (tinykiln.device.qemu), HostDevice (the host build as a child process) and ProbeDevice
(a real board programmed with openocd / pyocd through tinykiln.flash, console on port=).
Their children die with this process (tinykiln.processes), even when it is killed.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tinykiln import KilnError, interrupt

from tinykiln import processes as process

TERMINAL, CAPTURE, SERIAL = "terminal", "capture", "serial"  # where start() puts the console


class Device:
    """Where firmware runs. `kind` is one of tinykiln.device.choose's kinds."""

    kind = ""

    def __init__(self, board, options):
        self.board = board
        self.options = options

    def flash(self, elf) -> None:
        """Put `elf` on the device. QEMU and the host load the ELF when started: nothing to do."""

    def start(self, elf, console: str = SERIAL) -> None:
        raise NotImplementedError

    @property
    def serial(self):
        """The running firmware's console for AiRunner.connect: a URL or a transport."""
        return None

    def wait(self, timeout: float) -> int:
        """The firmware's exit status; a KilnError if it does not end within `timeout` s."""
        raise NotImplementedError

    def output(self) -> str:
        """What the firmware printed, with console=CAPTURE."""
        return ""

    def exit_note(self) -> str:
        """What is known about a device that ended (for an error message); empty if nothing."""
        return ""

    def cycle_marks(self):
        """The cycle-estimate plugin's records of the run (tinykiln.cycles.Mark list), None when
        the device made no estimate."""
        return None

    def stop(self) -> None:
        """End everything the device started; harmless when nothing runs."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class QemuDevice(Device):
    kind = "qemu"

    def __init__(self, board, options):
        super().__init__(board, options)
        self.session = None
        self.cycle_record = None  # the cycle-estimate plugin's output file, when it runs

    def _plugin_args(self, elf) -> list[str]:
        """The cycle-estimate plugin's arguments when the build made it for this board's core."""
        from tinykiln import cycles

        core = cycles.core_of(self.board)
        if not (core and self.options.cycles_plugin):
            return []
        record = Path(elf).with_suffix(".cycles.txt")
        try:
            args = cycles.qemu_args(self.options.cycles_plugin, core, record, elf)
        except KilnError as e:
            print(f"cycle estimate: none ({e})", file=sys.stderr)
            return []
        if args:
            record.unlink(missing_ok=True)
            self.cycle_record = record
        return args

    def start(self, elf, console: str = SERIAL) -> None:
        from . import qemu

        extra = self._plugin_args(elf)
        if console == TERMINAL:
            self.session = qemu.start(self.board, elf, serial="stdio", icount=self.options.icount,
                                      console=sys.stdout.buffer, errors=sys.stderr.buffer, extra=extra)
        else:
            self.session = qemu.start(self.board, elf, serial="tcp" if console == SERIAL else "stdio",
                                      icount=self.options.icount, extra=extra)

    def cycle_marks(self):
        from tinykiln import cycles

        return cycles.read_marks(self.cycle_record) if self.cycle_record else None

    @property
    def serial(self):
        return self.session.url if self.session else None

    def wait(self, timeout: float) -> int:
        return self.session.wait(timeout)

    def output(self) -> str:
        return self.session.text() if self.session else ""

    def exit_note(self) -> str:
        """QEMU's exit status and whatever it printed itself."""
        if self.session is None:
            return ""
        try:
            status = self.session.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # still running: stop() kills it
            return ""
        text = "\n".join(line for line in self.session.text().strip().splitlines()
                         if "waiting for connection" not in line).strip()
        note = f"\n(QEMU exited with status {status}"
        if status == 3:
            note += ": the firmware's fault status"
        note += ")"
        if text:
            note += f"; QEMU printed:\n{text[-600:]}"
        return note

    def stop(self) -> None:
        if self.session is not None:
            self.session.kill()


class HostDevice(Device):
    """The host build of the firmware, run as a child process."""

    kind = "host"

    def __init__(self, board, options):
        super().__init__(board, options)
        self.proc = None
        self.transport = None
        self._text = ""
        self._console = None

    def start(self, elf, console: str = SERIAL) -> None:
        self._console = console
        if console == TERMINAL:
            self.proc = process.popen([str(Path(elf).resolve())])
        elif console == CAPTURE:
            self.proc = process.popen([str(elf)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        else:
            from tinykiln.runner.transports import PipeTransport

            self.transport = PipeTransport([str(elf)])
            self.proc = self.transport.proc

    @property
    def serial(self):
        return self.transport

    def wait(self, timeout: float) -> int:
        try:
            if self._console == CAPTURE:
                out, err = interrupt.communicate(self.proc, timeout)
                self._text = out + err
            else:
                interrupt.wait(self.proc, timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise KilnError(f"host: the program did not exit within {timeout:g} s and was killed; "
                            f"raise the limit with timeout=SECONDS") from None
        # a signal becomes 128+N, as a shell reports it
        status = self.proc.returncode
        return status if status >= 0 else 128 - status

    def output(self) -> str:
        return self._text

    def stop(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class ProbeDevice(Device):
    """A real board: programmed through its debug probe (openocd or pyocd), console on port=.
    The flasher resets the board, which then runs on its own: there is nothing to start or stop."""

    def __init__(self, board, options, method: str):
        super().__init__(board, options)
        self.kind = method
        self.probe = None  # the probe serial flash() used; None: the only one attached

    def flash(self, elf) -> None:
        from tinykiln import flash

        o = self.options
        self.probe = flash.choose_probe(o.probe, o.port)
        # the port names the probe in a failure message when the probe was found through it
        flash.flash_board(self.board, elf, self.kind, self.probe, o.port if self.probe and not o.probe else "")

    def start(self, elf, console: str = SERIAL) -> None:
        pass  # flashing reset the board: the firmware runs

    @property
    def serial(self):
        return self.options.port or None

    def wait(self, timeout: float) -> int:
        """The status the firmware prints as "tk: exit N" on port=, its console shown meanwhile."""
        from tinykiln import flash

        if not self.options.port:
            raise KilnError(f"board {self.board.name}: give its console with port=/dev/ttyACM0 to "
                            f"see the firmware end")
        return flash.monitor(self.options.port, timeout)
