"""The front door under odd input (issue 15): paths with spaces, quotes and semicolons, relative paths
from another directory, cache= and builddir= that cannot be used, bad sample files, a PATH without the
compiler, a scons without the venv, and ./kiln's venv set-up interrupted or damaged.

Builds run through the real scons (conftest) or the real ./kiln script; the venv tests of ./kiln
point it at a scratch venv (KILN_VENV) with a stub python3, never at the shared .venv."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tinykiln import KilnError, child_scons, models, paths

ROOT = Path(__file__).resolve().parents[2]
KILN = ROOT / "kiln"
SHARED = Path("/work/shared/models")
if (ROOT.parent / "shared" / "models").is_dir():
    SHARED = ROOT.parent / "shared" / "models"
HELLO = SHARED / "tflm_hello_world_int8.tflite"  # one int8 input of shape [1, 1]
needs_hello = pytest.mark.skipif(not HELLO.is_file(), reason="the shared hello world model is not there")


def _model_copy(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    shutil.copy(HELLO, path)
    return path


def _clean(output: str) -> None:
    assert "Traceback" not in output, output


# --- item 6: paths --------------------------------------------------------------------------------

@needs_hello
@pytest.mark.parametrize("name", ["m;touch_INJECTED;x", "it's"])
def test_quote_or_semicolon_in_a_model_name_never_reaches_a_shell(scons, tmp_path, name):
    model = _model_copy(tmp_path / "models", name + ".tflite")
    r = scons("board=host", f"model={model}", "validate=1", "n=1")
    assert r.returncode == 0, r.output
    assert "sh: " not in r.output and "Syntax error" not in r.output, r.output
    safe = name.replace(";", "_").replace("'", "_")
    assert f"validation PASS: {safe} on host" in r.output, r.output
    assert not list(Path(ROOT).glob("INJECTED*")) and not list(tmp_path.rglob("INJECTED*"))


@needs_hello
def test_space_in_the_build_path_validates_on_host(scons, tmp_path):
    model = _model_copy(tmp_path / "a folder", "hello world.tflite")
    r = scons("board=host", f"model={model}", "validate=1", "n=1", builddir=tmp_path / "build dir")
    assert r.returncode == 0 and "validation PASS: hello world" in r.output, r.output


@needs_hello
def test_relative_paths_are_from_where_the_user_stands(tmp_path):
    """./kiln from another directory: model=, samples=, schedules=, builddir=, cache= are its."""
    here = tmp_path / "work"
    _model_copy(here, "net.tflite")
    np.save(here / "one.npy", np.array([[0.5]], np.float32))
    (here / "knobs.json").write_text("{}")
    r = subprocess.run([str(KILN), "board=host", "model=net.tflite", "samples=one.npy", "schedules=knobs.json",
                        "builddir=out", "cache=shared-cache", "validate=1", "n=1"], cwd=here,
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    output = r.stdout + r.stderr
    assert r.returncode == 0, output
    assert "validation PASS: net on host, 2 runs (1 random, 1 sample)" in output, output
    report = json.loads((here / "out" / "host" / "release" / "net" / "report.json").read_text())
    assert report["validation"]["runs"] == 2
    assert (here / "shared-cache").is_dir() and any((here / "shared-cache").iterdir())
    assert not (ROOT / "out").exists() and not (ROOT / "shared-cache").exists()


def test_user_paths_resolve_against_the_callers_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("KILN_CWD", str(tmp_path))
    assert paths.user_path("a/../b.npy") == tmp_path / "b.npy"
    assert paths.build_root("out") == tmp_path / "out"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert paths.user_path("~/x") == tmp_path / "home" / "x"  # ~ in quotes: not expanded by the shell
    monkeypatch.delenv("KILN_CWD")
    assert paths.build_root("out") == paths.ROOT / "out"  # scons run directly: the checkout, as before


def test_builddir_that_is_a_file_is_a_clear_error(scons, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    r = scons("board=host", builddir=a_file)
    assert r.returncode == 2, r.output
    assert f"builddir={a_file} is a file" in r.output, r.output
    _clean(r.output)


def test_builddir_with_shell_characters_is_a_clear_error(scons, tmp_path):
    r = scons("board=host", builddir=tmp_path / "it's")
    assert r.returncode == 2 and "would misread" in r.output, r.output
    _clean(r.output)


@pytest.mark.parametrize("defines", ["A;touch_INJECTED", "A=$(touch INJECTED)", "A=1,B='x'", "1A"])
def test_defines_that_a_shell_would_read_are_refused(scons, tmp_path, defines):
    r = scons("board=host", f"defines={defines}", builddir=tmp_path)
    assert r.returncode == 2 and f"defines={defines} takes C macros NAME or NAME=VALUE" in r.output, r.output
    assert not list(ROOT.glob("INJECTED*")) and not list(tmp_path.rglob("INJECTED*"))


@needs_hello
def test_model_folder_builds_like_a_model_name(scons, tmp_path):
    folder = tmp_path / "mynet"
    _model_copy(folder, "model.tflite")
    (folder / "model.toml").write_text('description = "hello world, as a folder"\n')
    r = scons("board=host", f"model={folder}")
    assert r.returncode == 0 and "model mynet:" in r.output, r.output
    empty = tmp_path / "empty"
    empty.mkdir()
    r = scons("board=host", f"model={empty}")
    assert r.returncode == 2 and "holds no model.toml and no .tflite" in r.output, r.output
    assert f"model={empty}/model.tflite" in r.output, r.output


def test_models_cifar10_folder_is_the_cifar10_model():
    m = models.resolve(paths.ROOT, "models/cifar10")
    assert m.name == "cifar10" and m.path == paths.ROOT / "models/cifar10/model.tflite" and m.labels
    assert models.resolve(paths.ROOT, "models/cifar10:float").name == "cifar10_float"


# --- item 7: cache= -------------------------------------------------------------------------------

def test_cache_under_a_home_without_dot_cache_is_made(scons, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    r = scons("board=host", "cache=~/.cache/kiln", builddir=tmp_path / "build")  # ~ as if quoted
    assert r.returncode == 0, r.output
    assert (home / ".cache" / "kiln").is_dir() and any((home / ".cache" / "kiln").iterdir())


@pytest.mark.parametrize("where,complaint", [("file", "is a file, not a folder"),
                                             ("/proc/kiln-cache/x", "cannot make the folder")])
def test_cache_that_cannot_be_used_is_a_clear_error(scons, tmp_path, where, complaint):
    if where == "file":
        where = tmp_path / "file"
        where.write_text("x")
    r = scons("board=host", f"cache={where}", builddir=tmp_path / "build")
    assert r.returncode == 2 and f"cache={where}" in r.output and complaint in r.output, r.output
    _clean(r.output)


# --- item 10: samples= ----------------------------------------------------------------------------

BAD_SAMPLES = {
    "strings": (lambda p: np.save(p, np.array(["a", "b"])), "not numbers"),
    "text": (lambda p: p.write_text("0.5\n"), "is not a numpy array file"),
    "empty": (lambda p: np.save(p, np.zeros((0,), np.float32)), "is an empty array"),
    "nan": (lambda p: np.save(p, np.array([np.nan], np.float32)), "NaN or infinite"),
    "complex": (lambda p: np.save(p, np.array([1 + 2j])), "complex numbers"),
}


@needs_hello
@pytest.mark.parametrize("kind", BAD_SAMPLES)
def test_a_bad_sample_file_is_a_clear_error_naming_it(scons, tmp_path, kind):
    write, complaint = BAD_SAMPLES[kind]
    sample = tmp_path / f"{kind}.npy"
    write(sample)
    r = scons("board=host", f"model={HELLO}", "validate=1", "n=1", f"samples={sample}")
    assert r.returncode != 0, r.output
    assert str(sample) in r.output and complaint in r.output, r.output
    _clean(r.output)
    assert "allow_pickle" not in r.output and "RuntimeWarning" not in r.output, r.output


# --- item 8: missing tools ------------------------------------------------------------------------

def _path_without(tmp_path, *programs) -> str:
    """PATH as it is, with a stand-in for /usr/bin and /bin that lacks `programs`."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in ("/usr/bin", "/bin"):
        for p in Path(d).iterdir():
            if not p.name.startswith(programs) and not (bindir / p.name).exists():
                (bindir / p.name).symlink_to(p)
    keep = [d for d in os.environ["PATH"].split(os.pathsep) if d not in ("/usr/bin", "/bin")
            and not any((Path(d) / prog).exists() for prog in programs)]
    return os.pathsep.join([*keep, str(bindir)])


@pytest.mark.parametrize("board,cc,package", [("mps2-an500", "arm-none-eabi-gcc", "gcc-arm-none-eabi"),
                                              ("host", "gcc", "gcc")])
def test_no_compiler_on_path_is_one_clear_error(scons, tmp_path, monkeypatch, board, cc, package):
    monkeypatch.setenv("PATH", _path_without(tmp_path, cc))
    assert shutil.which(cc) is None
    r = scons(f"board={board}", builddir=tmp_path / "build")
    assert r.returncode == 2, r.output
    assert f"{cc}, the C compiler for board {board}, is not on PATH" in r.output, r.output
    assert f"install the Debian package {package} " in r.output and "./kiln installs it" in r.output
    assert r.output.count("is not on PATH") == 1, r.output  # once, not once per file
    assert "Error 127" not in r.output and "not found" not in r.output, r.output


# --- item 12: a scons without the venv ------------------------------------------------------------

def test_foreign_scons_says_to_use_kiln(tmp_path):
    """A Python with SCons and nothing else (a venv made by hand) runs our SConstruct."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "v")], check=True)
    only = tmp_path / "only-scons"
    only.mkdir()
    import SCons

    (only / "SCons").symlink_to(Path(SCons.__file__).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PYTHONPATH"] = str(only)
    r = subprocess.run([str(tmp_path / "v" / "bin" / "python"), "-m", "SCons", "-Q", "-C", str(ROOT),
                        f"builddir={tmp_path / 'build'}"], env=env, capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    output = r.stdout + r.stderr
    assert r.returncode == 2, output
    assert "run the build through ./kiln, which sets up .venv" in output and "pyelftools" in output, output
    _clean(output)


# --- item 8: ./kiln's venv ------------------------------------------------------------------------

STUB_PYTHON3 = """#!/usr/bin/env bash
# python3 for ./kiln's tests: `-m venv DIR` makes a venv whose python is STUB_VENV_PYTHON
if [[ "${1-}" == -m && "${2-}" == venv ]]; then
    # like the real one: the python first, pip (ensurepip) last
    mkdir -p "$3/bin"
    cp "$KILN_TEST_STUBS/venv-python" "$3/bin/python"
    echo started >> "$KILN_TEST_LOG"
    [[ -n "${KILN_TEST_VENV_DELAY-}" ]] && sleep "$KILN_TEST_VENV_DELAY"
    touch "$3/has-pip"
    exit 0
fi
exec REAL "$@"
"""
STUB_VENV_PYTHON = """#!/usr/bin/env bash
# a venv's python: pip and tinykiln.prerequisites by marker files, everything else the real one
here="$(cd "$(dirname "$0")/.." && pwd)"
case "${1-} ${2-}" in
    "-m pip")
        [[ -f "$here/has-pip" ]] || { echo "No module named pip" >&2; exit 1; }
        [[ "${3-}" == install ]] && { touch "$here/installed"; echo "pip install in $here" >> "$KILN_TEST_LOG"; }
        exit 0 ;;
    "-m tinykiln.prerequisites")
        [[ -f "$here/installed" ]] || { echo numpy; exit 1; }
        exit 0 ;;
esac
exec REAL_VENV "$@"
"""


def _kiln_with_stub_venv(tmp_path, *args, delay: str = "", wait: bool = True):
    stubs = tmp_path / "stubs"
    stubs.mkdir(exist_ok=True)
    (stubs / "python3").write_text(STUB_PYTHON3.replace("REAL", shutil.which("python3")))
    (stubs / "venv-python").write_text(STUB_VENV_PYTHON.replace("REAL_VENV", sys.executable))
    for f in stubs.iterdir():
        f.chmod(0o755)
    env = dict(os.environ, PATH=f"{stubs}{os.pathsep}{os.environ['PATH']}", KILN_VENV=str(tmp_path / "venv"),
               KILN_TEST_STUBS=str(stubs), KILN_TEST_LOG=str(tmp_path / "log"), KILN_TEST_VENV_DELAY=delay)
    env.pop("VIRTUAL_ENV", None)
    proc = subprocess.Popen([str(KILN), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, stdin=subprocess.DEVNULL, start_new_session=True)
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=300)
    return proc.returncode, out


def _log(tmp_path) -> list[str]:
    log = tmp_path / "log"
    return log.read_text().splitlines() if log.exists() else []


def test_kiln_killed_while_making_the_venv_leaves_none_behind(tmp_path):
    proc = _kiln_with_stub_venv(tmp_path, "--version", delay="30", wait=False)
    deadline = time.monotonic() + 60
    while "started" not in _log(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "started" in _log(tmp_path), "./kiln did not start making the venv"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (tmp_path / "venv").exists()  # the half venv is beside, not in its place
    status, out = _kiln_with_stub_venv(tmp_path, "--version")
    assert status == 0 and "SCons" in out, out
    venv = tmp_path / "venv"
    assert (venv / "installed").is_file() and (venv / ".requirements.sha256").is_file()


def test_kiln_replaces_a_venv_without_pip(tmp_path):
    """What the old ./kiln left when killed during `python3 -m venv`: a python, no pip, no stamp."""
    subprocess.run([shutil.which("python3"), "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True)
    status, out = _kiln_with_stub_venv(tmp_path, "--version")
    assert status == 0 and "SCons" in out, out
    assert (tmp_path / "venv" / "installed").is_file() and (tmp_path / "venv" / "bin" / "python").read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith((".venv-new", ".venv-old"))]


def test_kiln_repairs_a_venv_with_a_package_missing(tmp_path):
    status, out = _kiln_with_stub_venv(tmp_path, "--version")
    assert status == 0, out
    venv = tmp_path / "venv"
    (venv / "installed").unlink()  # a package deleted: the stamp still says all is well
    (tmp_path / "log").unlink()
    status, out = _kiln_with_stub_venv(tmp_path, "--version")
    assert status == 0 and "updating the Python environment" in out and "Traceback" not in out, out
    assert _log(tmp_path) == [f"pip install in {venv}"]  # repaired in place, not made anew
    status, out = _kiln_with_stub_venv(tmp_path, "--version")
    assert status == 0 and "updating" not in out and _log(tmp_path) == [f"pip install in {venv}"], out


def test_prerequisites_name_what_is_missing(monkeypatch):
    from tinykiln import prerequisites

    assert prerequisites.missing_modules() == []  # this venv is whole
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(KilnError, match=r"qemu-system-arm is not on PATH: install the Debian package "
                                        r"qemu-system-arm \(sudo apt-get install qemu-system-arm; ./kiln"):
        prerequisites.check_program("qemu-system-arm")
    monkeypatch.setitem(prerequisites.PYTHON_MODULES, "no_such_module_here", "no-such-package")
    assert prerequisites.missing_modules(import_them=True) == ["no_such_module_here"]
    with pytest.raises(KilnError, match="lacks no-such-package: run the build through ./kiln"):
        prerequisites.check_python()


def test_child_builds_get_absolute_paths(monkeypatch, tmp_path):
    """tune=1 and matrix=1 start child builds in the checkout: they must read the same files."""
    from tinykiln import options

    monkeypatch.setenv("KILN_CWD", str(tmp_path))
    opts = options.parse({"builddir": "b", "cache": "c", "schedules": "s.json", "samples": "x.npy,y.npy"})
    assert opts.builddir == str(tmp_path / "b") and opts.cache == str(tmp_path / "c")
    assert opts.schedules == str(tmp_path / "s.json")
    assert opts.samples == f"{tmp_path / 'x.npy'},{tmp_path / 'y.npy'}"
    assert child_scons.environment()["KILN_CWD"] == str(tmp_path)
    # files to read: the caller's if there, else the checkout's (./kiln matrix=ci/matrix.toml anywhere)
    assert options.parse({"matrix": "ci/matrix.toml"}).matrix == str(ROOT / "ci" / "matrix.toml")
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "matrix.toml").write_text("")
    assert options.parse({"matrix": "ci/matrix.toml"}).matrix == str(tmp_path / "ci" / "matrix.toml")
