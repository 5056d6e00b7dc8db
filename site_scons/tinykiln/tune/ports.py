"""Kernel benchmarks measured on real boards: flash the bench ELF, read its result from the console.

tune=1 with port=/dev/ttyACM0 (or a board without an emulator) measures each candidate on the board
itself, with its own cycle counter (DWT CYCCNT on Cortex-M7): for each benchmark the console port
is opened first (the board starts printing the moment the flasher resets it), the ELF is flashed
with the board's flasher (a tinykiln.device probe device: openocd or pyocd), and the line
`TKBENCH count=N unit=U digest=D` is read from the port. Several boards on one host are several
ports: port=/dev/ttyACM0,/dev/ttyACM1 is two devices, each measuring one benchmark at a time.

    PortDevice(board, port, flasher="", flash=None).run(elf, timeout) -> (count, unit, digest)
    runner(board, ports, flasher="") -> run(board, elf, timeout)   free devices taken in turn
    read_result(conn, timeout, where) -> (count, unit, digest)     the console side only

A port is anything pyserial opens: /dev/ttyACM0 (at the board's [console] baud), serial:/dev/X:BAUD
(another rate), rfc2217://host:port, socket://host:port. With several ports the flasher programs the
probe whose USB serial number the port's device carries (flash.probe_serial). Every failure is a
KilnError naming the cause: no probe (the flasher's own message), a silent port, a garbled line, a
firmware that exits non-zero.
"""
from __future__ import annotations

import queue
import re
import threading
import time
from pathlib import Path

from tinykiln import KilnError, device
from tinykiln import flash as board_flash

from .bench import RESULT_RE

BAUD = 115200
_RESULT_RE = re.compile(RESULT_RE.pattern.encode() + rb"\s*$")  # the whole line, nothing after
_EXIT_RE = re.compile(rb"tk: exit (-?\d+)")


def parse_ports(text: str) -> list[str]:
    """port=a,b -> ["a", "b"]; `serial:/dev/X:BAUD` stays one port."""
    ports = [p.strip() for p in text.split(",") if p.strip()]
    if not ports:
        raise KilnError("port= names the board's console, e.g. port=/dev/ttyACM0 "
                        "(several boards: port=/dev/ttyACM0,/dev/ttyACM1)")
    if len(set(ports)) != len(ports):
        raise KilnError(f"port={text}: a port is listed twice (one port per board)")
    return ports


def open_port(port: str, baud: int = BAUD):
    """A pyserial connection to `port` (see the module doc for the forms) at `baud` unless the port
    names its own; KilnError if it fails."""
    import serial  # pyserial: only needed for real boards

    url = port
    m = re.fullmatch(r"serial:(.+):(\d+)", port)
    if m:
        url, baud = m.group(1), int(m.group(2))
    try:
        return serial.serial_for_url(url, baudrate=baud, timeout=0.2)
    except (serial.SerialException, ValueError, OSError) as e:
        raise KilnError(f"cannot open the console port {port}: {e}. Check the board is connected "
                        f"and the port name (ls /dev/ttyACM* /dev/ttyUSB*), and that you may use "
                        f"it (group dialout).") from None


def read_result(conn, timeout: float, where: str) -> tuple[int, str, str]:
    """Read console lines until the TKBENCH line; (count, unit, digest). Lines before it (a boot
    banner) are ignored; a TKBENCH line that does not parse, or a `tk: exit N` with N != 0 before
    it, or nothing within `timeout` seconds is a KilnError."""
    deadline = time.monotonic() + timeout
    pending = b""
    seen = bytearray()  # everything received, for the error messages
    import serial

    while time.monotonic() < deadline:
        try:
            # what has arrived, else wait up to the port's 0.2 s for one byte
            chunk = conn.read(max(1, conn.in_waiting))
        except serial.SerialException as e:  # unplugged, or the far end of a socket:// closed
            raise KilnError(f"{where}: the console port failed before the result line ({e}); "
                            f"received: {bytes(seen[-200:])!r}") from None
        if not chunk:
            continue
        seen += chunk
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            line = line.rstrip(b"\r")
            if b"TKBENCH" in line:
                m = _RESULT_RE.search(line)
                if m is None:
                    raise KilnError(f"{where}: garbled result line {line[-120:]!r} (expected "
                                    f"'TKBENCH count=N unit=U digest=<16 hex>'): a wrong baud rate, "
                                    f"or a noisy cable? Give the rate as port=serial:PORT:BAUD.")
                return int(m.group(1)), m.group(2).decode("ascii", "replace"), m.group(3).decode()
            ex = _EXIT_RE.search(line)
            if ex and int(ex.group(1)) != 0:
                raise KilnError(f"{where}: the benchmark exited with status {ex.group(1).decode()} "
                                f"before its result: {bytes(seen[-300:])!r}")
    if not seen:
        raise KilnError(f"{where}: silent device: nothing arrived within {timeout:g} s. Is this "
                        f"the board's console port, did the flash reset the board, and is the "
                        f"console on that port? (raise the limit with timeout=SECONDS)")
    printable = sum(32 <= b < 127 or b in (9, 10, 13) for b in seen) / len(seen)
    hint = (" The bytes are mostly not text: a wrong baud rate? (port=serial:PORT:BAUD)"
            if printable < 0.8 else "")
    raise KilnError(f"{where}: no TKBENCH line within {timeout:g} s.{hint} Received: "
                    f"{bytes(seen[-200:])!r}")


def flash_elf(board, elf: Path, flasher: str = "", port: str = "") -> None:
    """Program `elf` into the board with its flasher (openocd / pyocd); it resets and runs. When
    the port's USB serial number is known, only the probe with that serial is used (the board of
    that console, with several boards on one host)."""
    options = device.DeviceOptions(flasher=flasher, port=port, flash=True)
    with device.open(board, options, device.BENCH) as dev:
        dev.flash(elf)


class PortDevice:
    """One real board: its console port and how to flash it. One benchmark at a time."""

    def __init__(self, board, port: str, flasher: str = "", flash=None):
        self.board = board
        self.port = port
        self.flasher = flasher
        # flash(board, elf, flasher, port): flash_elf unless replaced (the tests replace only it)
        self.flash = flash or flash_elf
        self._lock = threading.Lock()

    def run(self, elf: Path, timeout: float) -> tuple[int, str, str]:
        with self._lock:
            # before flashing: output starts at the reset; the rate of board.toml [console]
            conn = open_port(self.port, int(self.board.console.get("baud", BAUD)))
            try:
                conn.reset_input_buffer()  # whatever the previous firmware printed
                self.flash(self.board, Path(elf), self.flasher, self.port)
                return read_result(conn, timeout, f"{Path(elf).name} on {self.port}")
            finally:
                conn.close()


def runner(board, ports: list[str], flasher: str = "", flash=None):
    """run(board, elf, timeout) on whichever of the `ports` devices is free."""
    if flash is None and len(ports) > 1:
        unknown = [p for p in ports if board_flash.probe_serial(p) is None]
        if unknown:
            raise KilnError(f"port={','.join(ports)}: cannot tell which debug probe flashes the board "
                            f"of {', '.join(unknown)} (no USB serial number found for it), so a "
                            f"trial could flash another board than the one read. Give local "
                            f"device paths (e.g. /dev/serial/by-id/...), or tune one board at a "
                            f"time.")
    for p in ports:  # a wrong port fails now, not after the builds, trial after trial
        open_port(p, int(board.console.get("baud", BAUD))).close()
    free: queue.Queue = queue.Queue()
    for p in ports:
        free.put(PortDevice(board, p, flasher, flash))

    def run(board_, elf: Path, timeout: float):
        device = free.get()
        try:
            return device.run(elf, timeout)
        finally:
            free.put(device)

    return run
