"""export=1: the folder is complete, self-contained (compiles with plain arm-none-eabi-gcc through its
own Make snippet, -Werror), described by model.json, zipped, incremental; the CMake snippet links.
The existing-firmware example that uses it runs in tests/e2e/test_examples.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile

import pytest

from conftest import ROOT, run_scons

BOARD, MODEL = "mps2-an500", "cifar10"
needs_arm = pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc")


_BUILT = {}  # test_examples.py imports the fixture too: one build serves both modules


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """(export folder, scons output, build dir) of cifar10 for mps2-an500, built once per session."""
    if "export" not in _BUILT:
        builddir = tmp_path_factory.mktemp("export-build")
        r = run_scons(f"board={BOARD}", f"model={MODEL}", "export=1", "werror=1", builddir=builddir)
        assert r.returncode == 0, r.output
        _BUILT["export"] = (builddir / BOARD / "release" / MODEL / "export", r.output, builddir)
    return _BUILT["export"]


@needs_arm
def test_export_folder_has_everything_and_model_json_describes_it(exported):
    folder, output, _ = exported
    info = json.loads((folder / "model.json").read_text())
    assert info["name"] == MODEL and info["target"]["board"] == BOARD
    assert info["arena"]["size"] > 0 and info["arena"]["size"] % 16 == 0
    assert info["arena"]["size"] >= info["arena"]["lower_bound"]
    assert info["inputs"][0]["shape"] == [1, 32, 32, 3] and info["inputs"][0]["dtype"] == "int8"
    assert info["inputs"][0]["quantization"]["zero_point"] == [-128]
    assert info["outputs"][0]["shape"] == [1, 10]
    assert len(info["build_id"]) == 16
    assert "apache-tvm" in info["tools"] and "arm-none-eabi-gcc" in info["tools"]["cc"]
    for name in info["files"]["include"]:
        assert (folder / "include" / name).is_file(), name
    for name in info["files"]["src"]:
        assert (folder / "src" / name).is_file(), name
    assert sorted(p.name for p in (folder / "src").iterdir()) == sorted(info["files"]["src"])
    kernels = [s for s in info["files"]["src"] if s.startswith("tk_")]
    assert kernels, "no kernel sources"
    for name in ("libcifar10.a", "cifar10.ld", "cifar10.mk", "cifar10.cmake", "README.md"):
        assert (folder / name).is_file(), name
    header = (folder / "include" / "cifar10.h").read_text()
    assert f"#define CIFAR10_ARENA_SIZE {info['arena']['size']}u" in header
    assert '#include "cifar10.h"' in (folder / "src" / "cifar10.c").read_text()
    # The library holds the board's code: Arm objects with every source's object in it.
    members = subprocess.run(["arm-none-eabi-ar", "t", str(folder / "libcifar10.a")],
                             capture_output=True, text=True, check=True).stdout.split()
    assert sorted(members) == sorted(s[:-2] + ".o" for s in info["files"]["src"])
    header_of = subprocess.run(["arm-none-eabi-readelf", "-h", str(folder / "libcifar10.a")],
                               capture_output=True, text=True, check=True).stdout
    assert "ARM" in header_of
    readme = (folder / "README.md").read_text()
    assert "cifar10_run(&in, &out, arena)" in readme and "lib" in readme


@needs_arm
def test_zip_holds_exactly_the_folder(exported):
    folder, _, _ = exported
    zips = list(folder.parent.glob("*.zip"))
    assert [z.name for z in zips] == [f"{MODEL}-{BOARD}-release.zip"]
    with zipfile.ZipFile(zips[0]) as z:
        names = sorted(z.namelist())
        on_disk = sorted("export/" + str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert names == on_disk
        assert z.read("export/model.json") == (folder / "model.json").read_bytes()


@needs_arm
def test_sources_compile_alone_with_the_make_snippet(exported, tmp_path):
    """A Makefile that knows nothing but the snippet compiles every exported source, -Werror."""
    folder, _, _ = exported
    (tmp_path / "Makefile").write_text(
        f"include {folder}/cifar10.mk\n"
        "OBJS := $(patsubst %.c,%.o,$(notdir $(TK_CIFAR10_SRCS)))\n"
        "all: $(OBJS)\n"
        "%.o: $(TK_CIFAR10_DIR)src/%.c\n"
        "\tarm-none-eabi-gcc $(TK_CIFAR10_CFLAGS) $(TK_CIFAR10_CPPFLAGS) -std=c11 -Wall -Wextra "
        "-Werror -c $< -o $@\n")
    r = subprocess.run(["make", "-C", str(tmp_path), "-j2"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list(tmp_path.glob("*.o"))) == len(json.loads((folder / "model.json").read_text())
                                                  ["files"]["src"])


@needs_arm
def test_export_is_incremental(exported):
    _, _, builddir = exported
    r = run_scons(f"board={BOARD}", f"model={MODEL}", "export=1", "werror=1", builddir=builddir)
    assert r.returncode == 0, r.output
    assert "up to date" in r.output and "TVM" not in r.output and "CC " not in r.output, r.output


def test_export_needs_a_model(scons):
    r = scons("board=host", "export=1")
    assert r.returncode != 0
    assert "export=1 needs a model" in r.output


@needs_arm
@pytest.mark.skipif(shutil.which("cmake") is None and not os.environ.get("CI"),
                    reason="no cmake (CI installs it: .ci/run; there the test runs or fails)")
def test_cmake_snippet_links_the_example_firmware(exported, tmp_path):
    """The imported target of the CMake snippet links the Makefile example's sources."""
    folder, _, _ = exported
    example = ROOT / "examples" / "existing-makefile-firmware"
    (tmp_path / "CMakeLists.txt").write_text(f"""
cmake_minimum_required(VERSION 3.16)
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
project(cmake_firmware C)
include({folder}/cifar10.cmake)
set(CPU -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16)
add_executable(fw.elf {example}/startup.c {example}/uart.c {example}/main.c {example}/sample.c)
target_compile_options(fw.elf PRIVATE ${{CPU}} -O2 -Wall -Wextra -Werror)
target_link_options(fw.elf PRIVATE ${{CPU}} -nostartfiles --specs=nano.specs -T {example}/link.ld
                    -L${{TINYKILN_CIFAR10_DIR}})
target_link_libraries(fw.elf PRIVATE tinykiln_cifar10)
""")
    build = tmp_path / "b"
    r = subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(build)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["cmake", "--build", str(build)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    syms = subprocess.run(["arm-none-eabi-nm", str(build / "fw.elf")], capture_output=True, text=True,
                          check=True).stdout
    assert " cifar10_run" in syms and " cifar10_info" in syms


@needs_arm
def test_readme_usage_example_compiles(exported, tmp_path):
    folder, _, _ = exported
    readme = (folder / "README.md").read_text()
    code = readme.split("```c\n", 1)[1].split("```", 1)[0]
    assert 8 <= len(code.strip().splitlines()) <= 12  # the ten-line example
    (tmp_path / "use.c").write_text(code)
    info = json.loads((folder / "model.json").read_text())
    r = subprocess.run(["arm-none-eabi-gcc", *info["target"]["cflags"], "-std=c11", "-Wall", "-Wextra",
                        "-Werror", f"-I{folder / 'include'}", "-c", str(tmp_path / "use.c"), "-o",
                        str(tmp_path / "use.o")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
