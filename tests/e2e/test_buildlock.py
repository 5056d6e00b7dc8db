"""Two builds in one build folder (issue 15, item 3): the second waits for the first, saying so, and
both end with their outputs and their SCons state (a no-op rebuild afterwards rebuilds nothing)."""
from __future__ import annotations

import fcntl
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_scons

from tinykiln import child_scons

HELLO = ROOT.parent / "shared" / "models" / "tflm_hello_world_int8.tflite"
pytestmark = pytest.mark.skipif(not HELLO.is_file(), reason="needs ../shared/models")


def test_a_build_waits_for_the_build_that_holds_its_folder(tmp_path):
    build = tmp_path / "build"
    build.mkdir()
    fd = os.open(build / ".kiln.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running build holds it
    env = {k: v for k, v in child_scons.environment().items() if k != "KILN_BUILD_LOCK"}
    proc = subprocess.Popen(child_scons.command([f"builddir={build}", "board=host"], jobs=2), env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(3)
    assert proc.poll() is None  # still waiting
    assert not (build / "host").exists()  # and it built nothing meanwhile
    os.close(fd)  # the other build ends
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    assert "kiln: waiting for the build in" in out and "one build at a time per build folder" in out, out
    assert (build / "host" / "release" / "selftest" / "selftest.elf").is_file()


def test_two_builds_at_once_in_one_folder_both_pass_and_keep_their_state(tmp_path):
    build = tmp_path / "build"
    results = {}

    def one(name, *args):
        results[name] = run_scons("board=host", *args, builddir=build)

    threads = [threading.Thread(target=one, args=("cifar10", "model=cifar10")),
               threading.Thread(target=one, args=("hello", f"model={HELLO}"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, r in results.items():
        assert r.returncode == 0, (name, r.output[-3000:])
    assert Path(build / "host/release/cifar10/cifar10.elf").is_file()
    assert Path(build / "host/release/tflm_hello_world_int8/tflm_hello_world_int8.elf").is_file()
    for args in (["model=cifar10"], [f"model={HELLO}"]):  # neither lost its build state
        again = run_scons("board=host", *args, builddir=build)
        assert again.returncode == 0 and "is up to date" in again.output, again.output
        assert not [x for x in again.output.splitlines() if x.startswith(("CC ", "TVM ", "LD "))], again.output
