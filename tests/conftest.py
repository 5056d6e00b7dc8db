"""Shared fixtures: run scons like ./kiln does, in a build directory of the test session.

    def test_x(scons):
        result = scons("board=host", "run=1")      # CompletedProcess, text output; check=False
        assert result.returncode == 0, result.output

`scons` builds into one directory per test session (kiln_build_dir), so boards built by one test
are reused by the next; pass builddir=... to isolate a build.
"""
import sys
from pathlib import Path

import pytest

from tinykiln import child_scons

ROOT = Path(__file__).resolve().parents[1]
SCONS = Path(sys.executable).parent / "scons"


def scons_env() -> dict:
    """The environment of a child scons (tinykiln.child_scons owns it)."""
    return child_scons.environment()


def run_scons(*args, builddir, timeout=600, jobs=2):
    """scons -Q -jN with the project's environment; returns CompletedProcess with .output."""
    return child_scons.run([f"builddir={builddir}", *args], jobs=jobs, capture=True, timeout=timeout)


@pytest.fixture(scope="session")
def kiln_build_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kiln-build")


@pytest.fixture
def scons(kiln_build_dir):
    def run(*args, builddir=None, timeout=600):
        return run_scons(*args, builddir=builddir or kiln_build_dir, timeout=timeout)

    return run
