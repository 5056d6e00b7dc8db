"""Ctrl-C that stops at once: SIGINT, SIGTERM and SIGHUP during a build end a run, a validation or a
tuning session within a second, saying "interrupted".

SCons's own handler only stops scheduling new tasks and lets the running action finish, which for a
validation on QEMU is half a minute of output the user asked to stop. The kiln tool chains a handler
to SCons's (`signalled`), and every wait on a device or a child process (the transports' reads,
`wait`) checks the flag at least every POLL seconds and raises Interrupted, which ends the action
through the normal error path: devices are stopped, nothing half-written is kept.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

from tinykiln import KilnError

POLL = 0.2  # seconds between checks in a wait
INTERRUPTED = threading.Event()
_signal = [0]


class Interrupted(KilnError):
    pass


def signalled(signum: int) -> None:
    """Called from the signal handler: remember it (and say so, once)."""
    if not INTERRUPTED.is_set():
        _signal[0] = signum
        INTERRUPTED.set()
        print(f"kiln: interrupted ({signal.Signals(signum).name}): stopping", file=sys.stderr, flush=True)


def install(on_first=None) -> None:
    """Handle SIGINT, SIGTERM and SIGHUP in this (main) thread: the first sets the flag (and calls
    on_first), a second one raises KeyboardInterrupt, for code that never waits. A signal the
    caller's shell ignores (nohup, a background job) stays ignored."""
    def handler(signum, frame):
        if INTERRUPTED.is_set():
            raise KeyboardInterrupt
        signalled(signum)
        if on_first is not None:
            on_first()

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, handler)


def exit_status() -> int:
    """The shell's status for the signal that interrupted: 128 + its number (130 for Ctrl-C)."""
    return 128 + (_signal[0] or signal.SIGINT)


def check() -> None:
    if INTERRUPTED.is_set():
        raise Interrupted(f"interrupted ({signal.Signals(_signal[0] or signal.SIGINT).name})")


def _in_steps(call, timeout: float | None):
    """call(timeout=step) again every POLL seconds until it returns (Popen.wait and communicate may
    be called again after a timeout), raising Interrupted on a signal and TimeoutExpired after
    `timeout`; the caller stops the process."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        check()
        step = POLL if deadline is None else max(0.0, min(POLL, deadline - time.monotonic()))
        try:
            return call(timeout=step)
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def wait(proc: subprocess.Popen, timeout: float | None) -> int:
    """proc.wait(timeout) that raises Interrupted within POLL seconds of a signal."""
    return _in_steps(proc.wait, timeout)


def communicate(proc: subprocess.Popen, timeout: float | None) -> tuple:
    """proc.communicate(timeout=timeout) that raises Interrupted within POLL seconds of a signal."""
    return _in_steps(proc.communicate, timeout)


def stop(proc: subprocess.Popen, grace: float = 3.0) -> None:
    """End a child as Ctrl-C would (SIGINT: a child scons saves its state and stops its own
    children), then for good if it is still there after `grace` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
