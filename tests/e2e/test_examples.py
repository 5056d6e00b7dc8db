"""examples/: firmware that embeds tinykiln models, built the way their users build and run in QEMU,
with every printed output byte compared to LiteRT's reference kernels."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from conftest import ROOT
from test_export import BOARD, MODEL, exported, needs_arm  # noqa: F401  (the session fixture)

from tinykiln.runner.reference import Reference

QEMU = ["qemu-system-arm", "-M", "mps2-an500", "-nographic", "-monitor", "none",
        "-semihosting-config", "enable=on,target=native", "-kernel"]
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-arm") is None, reason="no qemu-system-arm")


def run_qemu(elf, timeout=120) -> subprocess.CompletedProcess:
    """Boot an mps2-an500 image; its semihosting exit ends QEMU (output drained by run())."""
    return subprocess.run(["timeout", str(timeout), *QEMU, str(elf)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout + 10)


def cifar10_reference(sample: str = "0_airplane") -> np.ndarray:
    x = np.load(ROOT / "models" / "cifar10" / "samples" / f"{sample}.npy")
    return Reference(ROOT / "models" / "cifar10" / "model.tflite").run([x])[0].reshape(-1)


def printed_scores(text: str, tag: str = "scores") -> list[int]:
    m = re.search(rf"^{tag}:((?: -?\d+)+)\s*$", text, re.M)
    assert m, text
    return [int(v) for v in m.group(1).split()]


@needs_arm
@needs_qemu
def test_existing_makefile_firmware_prints_litert_scores(exported, tmp_path):  # noqa: F811
    folder, _, _ = exported
    example = ROOT / "examples" / "existing-makefile-firmware"
    out = tmp_path / "out"
    r = subprocess.run(["make", "-C", str(example), f"EXPORT={folder}", f"OUT={out}",
                        "EXTRA_CFLAGS=-Werror"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    # The example has its own startup, UART and linker script: nothing of tinykiln's boards/.
    # (make's "Entering directory" lines and the example's own path name the checkout, whose path
    # may hold either word: only what make compiles counts)
    compiled = "\n".join(line for line in r.stdout.splitlines() if not line.startswith("make"))
    compiled = compiled.replace(str(folder), "").replace(str(example), "<example>")
    assert "boards/" not in compiled and "runtime/" not in compiled, compiled
    run = run_qemu(out / "firmware.elf")
    assert run.returncode == 0, run.stdout + run.stderr
    want = cifar10_reference()
    assert printed_scores(run.stdout) == want.tolist(), run.stdout
    assert f"class: {int(np.argmax(want))} airplane" in run.stdout


def build_example(name: str, tmp_path, *args) -> tuple:
    """Copy examples/ to tmp_path (the examples build in place) and run the example's own SConstruct
    with TINYKILN pointing at this checkout. No PYTHONPATH: the tool finds tinykiln by itself."""
    from conftest import SCONS, scons_env

    examples = tmp_path / "examples"
    if not examples.exists():
        shutil.copytree(ROOT / "examples", examples, ignore=shutil.ignore_patterns("out", ".sconsign*"))
    env = scons_env()
    env.pop("PYTHONPATH", None)
    env["TINYKILN"] = str(ROOT)
    directory = examples / name
    r = subprocess.run([str(SCONS), "-Q", "-j2", "-C", str(directory), "cflags=-Werror", *args],
                       capture_output=True, text=True, timeout=600, env=env, stdin=subprocess.DEVNULL)
    return r, directory / "out" / "firmware.elf"


@needs_arm
@needs_qemu
def test_scons_firmware_uses_the_tool_and_prints_litert_scores(tmp_path):
    r, elf = build_example("scons-firmware", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TVM tk_conv2d_int8" in r.stdout  # the kernels come from tinykiln's pipeline
    run = run_qemu(elf)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "model net build" in run.stdout
    assert printed_scores(run.stdout) == cifar10_reference().tolist(), run.stdout
    # The same per-kernel incremental build as ./kiln: nothing to do the second time.
    again, _ = build_example("scons-firmware", tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "TVM" not in again.stdout and "arm-none-eabi-gcc" not in again.stdout, again.stdout


def _rotated(rotation: int) -> np.ndarray:
    x = np.load(ROOT / "models" / "cifar10" / "samples" / "0_airplane.npy").reshape(-1)
    return np.roll(x, -rotation).reshape(1, 32, 32, 3)


@needs_arm
@needs_qemu
def test_two_models_two_instances_interleaved_match_litert(tmp_path):
    r, elf = build_example("two-models", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    run = run_qemu(elf)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = re.findall(r"^([abf]) (\d+) (\d+):((?: \S+)+)\s*$", run.stdout, re.M)
    assert [(who, rnd) for who, rnd, _, _ in lines] == [("a", "0"), ("b", "0"), ("f", "0"),
                                                       ("a", "1"), ("b", "1"), ("f", "1")], run.stdout
    int8_ref = Reference(ROOT / "models" / "cifar10" / "model.tflite")
    float_ref = Reference(ROOT / "models" / "cifar10" / "model_float.tflite")
    for who, _, rotation, values in lines:
        q = _rotated(int(rotation))
        if who in "ab":  # int8: bit-exact
            assert [int(v) for v in values.split()] == int8_ref.run([q])[0].reshape(-1).tolist(), who
        else:  # float32: the input as the firmware makes it, outputs within 1e-5 relative
            x = (q.astype(np.float32) + np.float32(128)) / np.float32(255)
            got = np.array([int(v, 16) for v in values.split()], np.uint32).view(np.float32)
            want = float_ref.run([x])[0].reshape(-1)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_kiln_embed_tool_loads_twice_and_reports_bad_input_without_traceback(tmp_path):
    """Two environments load the tool (one tinykiln package for both); a bad board is a clear error."""
    from conftest import SCONS, scons_env

    (tmp_path / "SConstruct").write_text(f"""
tools = [{str(ROOT / 'site_scons' / 'site_tools')!r}]
a = Environment(tools=[])
a.Tool("kiln_embed", toolpath=tools)
b = Environment(tools=[])
b.Tool("kiln_embed", toolpath=tools)
import tinykiln
assert tinykiln.KilnError is __import__("tinykiln.boards").boards.KilnError, "two tinykiln packages"
b.TinyKilnModel("net", "cifar10", board="nucleo-f999")
""")
    env = scons_env()
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(SCONS), "-Q", "-C", str(tmp_path)], capture_output=True, text=True,
                       timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "TinyKilnModel('net'): unknown board 'nucleo-f999'" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and "two tinykiln packages" not in r.stderr


def test_plain_import_finds_the_package_even_with_site_tools_first():
    """SCons puts site_tools/ ahead of site_scons/ on sys.path while it loads a tool: no tool module
    may carry the package's name (the tool for other SConstructs is kiln_embed, not tinykiln)."""
    import sys

    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "import tinykiln, tinykiln.boards\n"
            "assert tinykiln.__file__.endswith('__init__.py'), tinykiln.__file__\n"
            "assert tinykiln.boards.KilnError is tinykiln.KilnError\n"
            "print('package ok')\n")
    r = subprocess.run([sys.executable, "-c", code, str(ROOT / "site_scons" / "site_tools"),
                        str(ROOT / "site_scons")], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "package ok" in r.stdout, r.stdout + r.stderr
