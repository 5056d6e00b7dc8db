"""Boot a board's firmware in QEMU: console on the terminal or on a TCP port, exit status back.

    from tinykiln.device import qemu
    status = qemu.run(board, "fw.elf", timeout=60)            # console -> sys.stdout
    with qemu.start(board, "fw.elf", serial="tcp") as q:      # console on a TCP server port
        port = serial.serial_for_url(q.url)                   # "socket://127.0.0.1:NNNNN"
        ...
        status = q.wait(timeout=30)

Always: semihosting on (the firmware exits through it), `-icount shift=0` unless disabled (one
instruction = 1 ns of virtual time: timer counts are instruction counts, deterministic), QEMU's
output drained by threads (a full pipe stalls the guest), a timeout that kills QEMU with a
clear error instead of hanging, and QEMU dies with the process that started it (process.popen).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time

from tinykiln import KilnError, interrupt, prerequisites

from tinykiln import processes as process

QEMU = "qemu-system-arm"
# "QEMU waiting for connection on: disconnected:tcp:127.0.0.1:NNNNN,server=on"
_PORT_RE = re.compile(rb"waiting for connection on: \S*tcp:127\.0\.0\.1:(\d+)")


def machine_args(emulator: dict) -> list[str]:
    """-M and the machine's extra arguments from board.toml's [emulator] table."""
    args = ["-M", emulator["qemu_machine"]]
    args += list(emulator.get("args", []))
    return args


def command(emulator: dict, elf, *, serial: str = "stdio", icount: bool = True,
            extra: list[str] = ()) -> list[str]:
    """The qemu-system-arm command line for a board's emulator table and an ELF.

    `serial`: "stdio" (console on QEMU's stdout) or "tcp" (a server on a free port, waiting for
    the client before the guest starts). `extra`: more arguments (the cycle-estimate plugin's).
    """
    if serial == "stdio":
        serial_arg = "stdio"
    elif serial == "tcp":
        serial_arg = "tcp:127.0.0.1:0,server=on,wait=on"
    else:
        raise ValueError(f"serial must be 'stdio' or 'tcp', not {serial!r}")
    cmd = [QEMU] + machine_args(emulator) + [
        "-display", "none", "-monitor", "none", "-serial", serial_arg,
        "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
    if icount:
        cmd += ["-icount", "shift=0"]
    return cmd + list(extra)


class Session:
    """A running QEMU. Use as a context manager: leaving it kills QEMU if it still runs."""

    def __init__(self, cmd: list[str], *, name: str, serial: str, console=None, errors=None,
                 start_timeout: float = 10.0):
        prerequisites.check_program(cmd[0], "the emulator")
        self.cmd = cmd
        self.name = name
        self.url: str | None = None
        self.output = bytearray()  # everything QEMU wrote on stdout and stderr
        self._console = console  # where QEMU's stdout goes as it comes (bytes stream), if anywhere
        self._errors = errors  # the same for its stderr
        self._lock = threading.Lock()
        self._port_seen = threading.Event()
        self.proc = process.popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, start_new_session=True)
        self._threads = [threading.Thread(target=self._drain, args=(self.proc.stdout, True), daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc.stderr, False), daemon=True)]
        for t in self._threads:
            t.start()
        if serial == "tcp":
            deadline = time.monotonic() + start_timeout
            while not self._port_seen.wait(0.05):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.kill()
                    raise KilnError(f"{name}: QEMU did not open its serial port: {self.text().strip()}")
            m = _PORT_RE.search(bytes(self.output))
            self.url = f"socket://127.0.0.1:{m.group(1).decode()}"

    def _drain(self, stream, is_stdout: bool):
        for chunk in iter(lambda: os.read(stream.fileno(), 4096), b""):
            with self._lock:
                self.output += chunk
                if not is_stdout and not self._port_seen.is_set() and _PORT_RE.search(bytes(self.output)):
                    self._port_seen.set()
            sink = self._console if is_stdout else self._errors
            if sink is not None:
                try:
                    sink.write(chunk)
                    sink.flush()
                except (OSError, ValueError):
                    pass

    def text(self) -> str:
        with self._lock:
            return bytes(self.output).decode("utf-8", "replace")

    def wait(self, timeout: float) -> int:
        """The firmware's exit status; kills QEMU and raises KilnError after `timeout` seconds."""
        try:
            status = interrupt.wait(self.proc, timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise KilnError(f"{self.name}: the firmware did not exit within {timeout:g} s; QEMU "
                            f"was killed. It may be stuck or waiting for input; raise the limit "
                            f"with timeout=SECONDS.") from None
        for t in self._threads:
            t.join(timeout=2)
        return status

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()


def _emulator(board) -> dict:
    if not board.emulator:
        raise KilnError(f"board {board.name} has no emulator: QEMU cannot run it "
                        f"(emulated boards: those with an [emulator] table in board.toml)")
    return board.emulator


def start(board, elf, *, serial: str = "tcp", icount: bool = True, console=None,
          errors=None, extra: list[str] = ()) -> Session:
    """Start QEMU for `board` (tinykiln.boards.Board) and `elf`; the Session's url is set for tcp.

    `console` / `errors`: binary streams that receive QEMU's stdout / stderr as it arrives
    (everything is also kept in Session.output). `extra`: more QEMU arguments.
    """
    return Session(command(_emulator(board), elf, serial=serial, icount=icount, extra=extra),
                   name=board.name, serial=serial, console=console, errors=errors)


def run(board, elf, *, timeout: float = 60.0, icount: bool = True, console=None) -> int:
    """Boot `elf` with the console on `console` (default: this process's stdout); exit status."""
    if console is None:
        console = sys.stdout.buffer
    with start(board, elf, serial="stdio", icount=icount, console=console,
               errors=sys.stderr.buffer) as session:
        return session.wait(timeout)
