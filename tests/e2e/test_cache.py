"""cache=<dir>: SCons CacheDir shared between builds. A clean build with a warm cache fetches the
generated kernels and the objects: it runs no TVM. Proved with a stand-in `tvm` package that has the
real version string (kernel specs carry it, so the cache keys stay the same) and nothing else: any
kernel generation fails on it."""
from __future__ import annotations

import shutil
from importlib import metadata

import pytest

from conftest import run_scons, scons_env  # noqa: F401

pytestmark = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")

NO_TVM = (f"__version__ = {metadata.version('apache-tvm')!r}\n"
          "def __getattr__(name):\n"
          "    raise ImportError(f'tvm.{name}: tvm is not available in this test')\n")


def test_clean_build_with_warm_cache_runs_no_tvm(tmp_path, monkeypatch):
    cache, builddir = tmp_path / "cache", tmp_path / "build"
    args = ("board=mps2-an500", "model=cifar10", f"cache={cache}")
    cold = run_scons(*args, builddir=builddir)
    assert cold.returncode == 0, cold.output
    assert "TVM tk_conv2d" in cold.output
    elf = builddir / "mps2-an500" / "release" / "cifar10" / "cifar10.elf"
    first = elf.read_bytes()

    shutil.rmtree(builddir)  # a clean build: no outputs, no .sconsign
    fake = tmp_path / "no-tvm" / "tvm"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(NO_TVM)
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))  # scons_env() puts site_scons before it
    warm = run_scons(*args, builddir=builddir)
    assert warm.returncode == 0, warm.output
    assert "TVM " not in warm.output, warm.output
    assert "Retrieved" in warm.output and elf.read_bytes() == first


def test_without_cache_the_same_fake_tvm_stops_the_build(tmp_path, monkeypatch):
    """The fake tvm of the test above really stops a build that needs TVM."""
    fake = tmp_path / "no-tvm" / "tvm"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(NO_TVM)
    monkeypatch.setenv("PYTHONPATH", str(fake.parent))
    r = run_scons("board=mps2-an500", "model=cifar10", builddir=tmp_path / "build")
    assert r.returncode != 0 and "tvm is not available" in r.output, r.output
    assert "TVM tk_" in r.output  # it got as far as generating a kernel
