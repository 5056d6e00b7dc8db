"""Child processes that die with their parent: a QEMU or host firmware must never outlive the
scons (or tune, or test) that started it, even when that one is killed with SIGKILL and no
cleanup code runs.

    proc = processes.popen(argv, stdout=subprocess.PIPE, ...)   # subprocess.Popen's arguments

On Linux the child asks the kernel for SIGKILL when its parent goes (prctl PR_SET_PDEATHSIG), set
between fork and exec. The kernel ties that to the *thread* that forked: start a child from a
thread that lives at least as long as the child (the code here always waits for its children in
the thread that started them). Elsewhere it is a plain Popen; the Device's stop() still ends it on
every exit path Python itself sees.
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

_PR_SET_PDEATHSIG = 1


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()  # loaded before any fork: the child only calls into it


def _die_with(parent: int):
    def preexec():
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


def popen(argv: list[str], **kwargs) -> subprocess.Popen:
    """subprocess.Popen(argv, **kwargs) whose child gets SIGKILL when this process dies."""
    if _LIBC is not None:
        kwargs["preexec_fn"] = _die_with(os.getpid())
    return subprocess.Popen(argv, **kwargs)
