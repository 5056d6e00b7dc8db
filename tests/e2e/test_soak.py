"""Soak (issue 15): 200 consecutive run=1 of the self-test on QEMU, through the code run=1 takes
(tinykiln.device.deploy), leave no process, file descriptor, thread or memory behind."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from conftest import ROOT, run_scons

from tinykiln import boards, device
from tinykiln.device.deploy import deploy
from tinykiln.options import parse

BOARD = "mps2-an500"
RUNS = 200


def _children() -> list[str]:
    me, found = str(os.getpid()), []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            found.append(stat.parent.name)
    return found


def _rss_kb() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1])


@pytest.mark.slow
def test_200_runs_on_qemu_leave_nothing_behind(tmp_path, capfd):
    built = run_scons(f"board={BOARD}", builddir=tmp_path)
    assert built.returncode == 0, built.output
    elf = str(tmp_path / BOARD / "release" / "selftest" / "selftest.elf")
    board = boards.resolve(ROOT, BOARD, "release").board
    options = device.DeviceOptions.from_opts(parse({"board": BOARD}))

    assert deploy(board, elf, options, run=True) == 0  # warm: imports, first allocations
    capfd.readouterr()
    fds, threads, rss = len(os.listdir("/proc/self/fd")), threading.active_count(), _rss_kb()
    for i in range(RUNS):
        assert deploy(board, elf, options, run=True) == 0, f"run {i}"
        out, _ = capfd.readouterr()
        assert "selftest: PASS" in out, f"run {i}: {out[-2000:]}"
    assert _children() == []
    assert len(os.listdir("/proc/self/fd")) == fds
    assert threading.active_count() == threads
    assert _rss_kb() - rss < 20_000, "memory grows with every run"
