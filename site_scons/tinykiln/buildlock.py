"""One build at a time in a build folder: two scons runs that share a build folder share its SCons
state (.sconsign) and its outputs, and racing they lose objects ("ld: cannot find ...o") and each
other's state. The second run waits for the first, saying so, instead.

    buildlock.hold(build_root)     blocks until this process holds <build>/.kiln.lock, for as long
                                   as it lives (the kernel drops an flock with its last descriptor,
                                   however the process ends: no stale lock after a kill -9)

A child build that a locked build starts itself (tune=1's benchmark builds, in the same folder)
inherits the lock through KILN_BUILD_LOCK and does not wait for its own parent.
"""
from __future__ import annotations

import fcntl
import os
import sys
from pathlib import Path

VARIABLE = "KILN_BUILD_LOCK"
_held: dict[str, int] = {}  # lock path -> open descriptor, kept for the process's life


def hold(build: Path) -> None:
    path = str(Path(build) / ".kiln.lock")
    if path in _held or os.environ.get(VARIABLE) == path:
        return
    Path(build).mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another"
        print(f"kiln: waiting for the build in {build} (process {holder}) to finish: one build at a "
              f"time per build folder (give builddir= to build elsewhere meanwhile)", file=sys.stderr, flush=True)
        fcntl.flock(fd, fcntl.LOCK_EX)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    _held[path] = fd
    os.environ[VARIABLE] = path  # children of this build (child_scons copies os.environ)
