"""A full disk while the pipeline cache is written (issue 15, item 9), made without privileges: a
file size limit (RLIMIT_FSIZE; Python ignores SIGXFSZ, so the write fails as on a full disk). The
build stops with a message naming the file, no traceback, no temp file left, and runs once there
is room."""
from __future__ import annotations

import resource
import subprocess

from tinykiln import child_scons


def _limited(limit):
    def preexec():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def test_a_full_disk_while_caching_is_a_clear_error_and_leaves_nothing(tmp_path):
    build = tmp_path / "build"
    cmd = child_scons.command([f"builddir={build}", "board=host", "model=cifar10"], jobs=2)
    full = subprocess.run(cmd, env=child_scons.environment(), preexec_fn=_limited(300_000), stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=900)
    out = full.stdout + full.stderr
    assert full.returncode == 2, out
    assert "kiln: error: cannot write " in out and ".pipeline.pickle: File too large" in out, out
    assert "Traceback" not in out and "OSError" not in out, out
    assert [p for p in build.rglob("*") if p.name.endswith(".tmp")] == []
    room = subprocess.run(cmd, env=child_scons.environment(), stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=900)
    assert room.returncode == 0, room.stdout + room.stderr
