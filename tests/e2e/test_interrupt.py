"""Ctrl-C (issue 15, items 1 and 2): SIGINT to scons alone or to its whole process group during a
validation on the host, a run on QEMU and tune=1 ends the build at once with status 130 and
"interrupted", leaves no QEMU, firmware or child scons of the test running, and loses nothing: the
next build goes on from where the interrupted one stopped."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import run_scons

from tinykiln import child_scons


def _start(builddir, *args):
    """scons in a session of its own (so that the test can signal its process group), output in a
    file the test reads as it grows."""
    log = builddir.parent / f"{builddir.name}.log"
    # SIGINT as a terminal leaves it (a pytest-xdist worker ignores it, and an ignored signal stays
    # ignored in its children: tinykiln.interrupt respects that, as nohup expects)
    proc = subprocess.Popen(child_scons.command([f"builddir={builddir}", *args], jobs=2),
                            env=child_scons.environment(), stdin=subprocess.DEVNULL, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, log


def _wait_for(proc, log, words, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if words in log.read_text():
            return
        assert proc.poll() is None, f"ended before '{words}':\n{log.read_text()[-3000:]}"
        time.sleep(0.1)
    proc.kill()
    raise AssertionError(f"no '{words}' within {timeout} s:\n{log.read_text()[-3000:]}")


def _interrupt(proc, log, whole_group: bool):
    if whole_group:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    try:
        status = proc.wait(timeout=60)  # generous for a loaded machine; it takes well under a second
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running a minute after SIGINT:\n{log.read_text()[-3000:]}") from None
    return status, log.read_text()


def _left_running(builddir) -> list[str]:
    """The command lines of the processes that mention the test's build folder (QEMU's -kernel,
    a child scons' builddir=, a host firmware's path)."""
    time.sleep(0.5)
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(builddir) in args:
            found.append(args)
    return found


def _assert_interrupted(status, out, builddir):
    assert status == 130, out[-3000:]
    assert "kiln: interrupted (SIGINT): stopping" in out, out[-3000:]
    assert "Traceback" not in out and "validation PASS" not in out, out[-3000:]
    assert _left_running(builddir) == []


@pytest.mark.parametrize("whole_group", [False, True], ids=["scons", "group"])
def test_ctrl_c_stops_a_host_validation(tmp_path, whole_group):
    builddir = tmp_path / "build"
    proc, log = _start(builddir, "board=host", "model=cifar10", "validate=1", "n=5000")
    _wait_for(proc, log, "validating 5010 inputs")
    status, out = _interrupt(proc, log, whole_group)
    _assert_interrupted(status, out, builddir)
    again = run_scons("board=host", "model=cifar10", builddir=builddir)  # nothing was lost
    assert again.returncode == 0 and not [x for x in again.output.splitlines() if x.startswith(("CC ", "LD "))]


@pytest.mark.slow
@pytest.mark.parametrize("whole_group", [False, True], ids=["scons", "group"])
def test_ctrl_c_stops_a_run_on_qemu(tmp_path, whole_group):
    builddir = tmp_path / "build"
    proc, log = _start(builddir, "board=mps2-an500", "model=cifar10", "run=1", "n=1000")
    _wait_for(proc, log, "validating 1010 inputs")
    status, out = _interrupt(proc, log, whole_group)
    _assert_interrupted(status, out, builddir)


@pytest.mark.slow
def test_ctrl_c_stops_tuning_and_the_next_tune_goes_on(tmp_path):
    builddir, schedule = tmp_path / "build", tmp_path / "schedule.json"
    args = ("board=mps2-an500", "model=cifar10", "tune=1", "trials=2", f"schedules={schedule}")
    proc, log = _start(builddir, *args)
    _wait_for(proc, log, "TUNE kernel 1/")
    status, out = _interrupt(proc, log, whole_group=False)
    _assert_interrupted(status, out, builddir)
    assert not schedule.exists()  # nothing half-tuned was written
    again = run_scons(*args, builddir=builddir, timeout=1800)
    assert again.returncode == 0, again.output[-3000:]
    assert "TUNE rejected" not in again.output and schedule.is_file()  # no trial was logged as failed


@pytest.mark.slow
def test_kill_9_of_scons_during_a_run_leaves_no_qemu(tmp_path):
    """issue 15, item 1: no clean-up code runs in a SIGKILLed scons; its QEMU dies with it (the
    kernel's parent-death signal, tinykiln.processes)."""
    builddir = tmp_path / "build"
    proc, log = _start(builddir, "board=mps2-an500", "model=cifar10", "run=1", "n=1000")
    _wait_for(proc, log, "validating 1010 inputs")
    try:
        running = _left_running(builddir)
        assert any("qemu-system-arm" in line for line in running), running  # a real test: it runs
    finally:
        proc.kill()
    proc.wait(timeout=60)
    deadline = time.monotonic() + 10
    while _left_running(builddir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _left_running(builddir) == []
