"""Byte transports to a device, chosen by URL:

    pipe:<program> [args]         a host build: start the program, talk over its stdin/stdout
    /dev/ttyACM0                  a serial port (115200 baud)
    serial:/dev/ttyACM0[:baud]    the same with a baud rate
    socket://127.0.0.1:PORT       QEMU's TCP serial (any pyserial URL works: rfc2217://, loop://)

Every transport has read(n, timeout) -> bytes (b"" on timeout, None when the stream ended),
write(data), close(), and exit_note() (what is known about a device that went away).
"""
from __future__ import annotations

import os
import selectors
import shlex
import subprocess
import threading
import time

from tinykiln import KilnError, interrupt
from tinykiln import processes as process


class PipeTransport:
    """A host build of the firmware as a child process; its stdin/stdout is the console."""

    def __init__(self, argv: list[str]):
        try:
            self.proc = process.popen(  # it dies with this process
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                bufsize=0,
            )
        except OSError as e:
            raise KilnError(f"cannot start the host firmware {argv[0]}: {e.strerror}: build it first "
                            f"(./kiln board=host model=...)") from None
        # stderr is drained all along: a full pipe would stall the program mid-reply.
        self.stderr = bytearray()
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._stderr_thread.start()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        os.set_blocking(self.proc.stdout.fileno(), False)

    def _drain_stderr(self) -> None:
        for chunk in iter(lambda: self.proc.stderr.read(4096), b""):
            self.stderr += chunk

    def read(self, n: int, timeout: float) -> bytes | None:
        interrupt.check()
        deadline = time.monotonic() + max(timeout, 0)
        while not self.selector.select(min(max(deadline - time.monotonic(), 0), interrupt.POLL)):
            interrupt.check()
            if time.monotonic() >= deadline:
                return b""
        try:
            data = os.read(self.proc.stdout.fileno(), n)
        except BlockingIOError:
            return b""
        return data if data else None

    def write(self, data: bytes) -> None:
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # the device is gone; the next read reports it with its exit status

    def exit_note(self) -> str:
        try:
            status = self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return ""
        self._stderr_thread.join(timeout=1.0)
        err = bytes(self.stderr)
        note = f" (the program exited with status {status}"
        if status < 0:
            note += f", killed by signal {-status}"
        note += ")"
        if err.strip():
            note += f"; its stderr:\n{err.decode('utf-8', 'replace').strip()[-600:]}"
        return note

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.selector.close()
        self._stderr_thread.join(timeout=1.0)
        for stream in (self.proc.stdout, self.proc.stderr):
            try:
                stream.close()
            except OSError:
                pass


class SerialTransport:
    """Anything pyserial opens: a port, socket://, rfc2217://, loop://."""

    def __init__(self, url: str, baud: int = 115200):
        import serial

        try:
            self.port = serial.serial_for_url(url, baudrate=baud, timeout=0)
        except (serial.SerialException, ValueError) as e:
            raise KilnError(f"cannot open {url}: {e}: check the port name (port=) and that no other "
                            f"program holds it") from None
        self.url = url

    def read(self, n: int, timeout: float) -> bytes | None:
        import serial

        deadline = time.monotonic() + max(timeout, 0)
        while True:
            try:
                waiting = self.port.in_waiting
                data = self.port.read(max(1, min(n, waiting or 1)))
            except serial.SerialException as e:
                # A peer that went away: closed cleanly, or reset (QEMU exiting with bytes it
                # had not read yet resets the TCP connection).
                if any(word in str(e).lower() for word in ("closed", "disconnected", "reset", "broken pipe")):
                    return None
                raise KilnError(f"reading {self.url} failed: {e}") from None
            interrupt.check()
            if data:
                return data
            if time.monotonic() >= deadline:
                return b""
            time.sleep(0.002)

    def write(self, data: bytes) -> None:
        import serial

        try:
            self.port.write(data)
            self.port.flush()
        except serial.SerialException as e:
            raise KilnError(f"writing to {self.url} failed: {e}") from None

    def exit_note(self) -> str:
        return ""

    def close(self) -> None:
        self.port.close()


def open_url(url: str):
    """The transport for a URL (see the module docstring)."""
    if url.startswith("pipe:"):
        argv = shlex.split(url[len("pipe:"):])
        if not argv:
            raise KilnError("pipe: needs a program, e.g. pipe:build/host/release/hello/firmware")
        return PipeTransport(argv)
    if url.startswith("serial:"):
        path = url[len("serial:"):]
        head, sep, tail = path.rpartition(":")
        if sep and tail.isdigit():
            return SerialTransport(head, int(tail))
        return SerialTransport(path)
    if "://" in url or url.startswith("/dev/") or url.upper().startswith("COM"):
        return SerialTransport(url)
    raise KilnError(
        f"don't know how to reach '{url}': use pipe:<program>, /dev/ttyACM0, serial:/dev/ttyACM0:115200 "
        f"or socket://127.0.0.1:PORT"
    )
