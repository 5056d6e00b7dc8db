"""Child scons runs (tune=1's benchmark builds, matrix rows, bench scripts): one way to start them.

    command(args, jobs=1) -> argv       scons -Q -jN -C <checkout> args..., with this Python's SCons
    environment() -> dict               os.environ with site_scons on PYTHONPATH and this Python's
                                        bin/ first on PATH (the venv's tools: pyocd, scons)
    run(args, jobs=1, log=None, capture=False, timeout=None) -> CompletedProcess
                                        log: a file that takes stdout and stderr; capture: text
                                        output in .stdout/.stderr and .output (both)
    popen(args, jobs=1, stdout=None) -> Popen   in a session of its own, for callers that stop it;
                                        it dies with this process (tinykiln.processes)

The child reads no standard input: a build never waits on a terminal.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from tinykiln import interrupt, paths


def command(args, jobs: int = 1) -> list[str]:
    return [sys.executable, "-m", "SCons", "-Q", f"-j{jobs}", "-C", str(paths.ROOT), *map(str, args)]


def environment() -> dict:
    env = dict(os.environ)
    site = str(paths.ROOT / "site_scons")
    if site not in env.get("PYTHONPATH", "").split(os.pathsep):
        env["PYTHONPATH"] = site + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    bindir = str(Path(sys.executable).parent)
    if bindir not in env.get("PATH", "").split(os.pathsep):
        env["PATH"] = bindir + (os.pathsep + env["PATH"] if env.get("PATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(args, jobs: int = 1, log: Path | None = None, capture: bool = False,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """subprocess.run's contract (TimeoutExpired after `timeout`), but a Ctrl-C of this build
    (tinykiln.interrupt) or of this script stops the child too, at once."""
    cmd = command(args, jobs)
    kwargs = dict(env=environment(), stdin=subprocess.DEVNULL)
    with contextlib.ExitStack() as files:
        if log is not None:
            kwargs.update(stdout=files.enter_context(open(log, "w")), stderr=subprocess.STDOUT)
        elif capture:
            kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        proc = subprocess.Popen(cmd, **kwargs)
        try:
            out, err = interrupt.communicate(proc, timeout)
        except BaseException:
            interrupt.stop(proc)
            raise
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if capture:
        result.output = out + err
    return result


def popen(args, jobs: int = 1, stdout=None) -> subprocess.Popen:
    from tinykiln import processes  # the child dies with this process, even on SIGKILL

    return processes.popen(command(args, jobs), stdout=stdout, stderr=subprocess.STDOUT,
                           stdin=subprocess.DEVNULL, env=environment(), start_new_session=True)
