"""Kernel C files: plain C (no TVM runtime), one per distinct spec, warning-free for every target."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import modelgen as mg
from kernelrun import KERNEL_CACHE, ROOT, graph_from_builder

from tinykiln.codegen import HEADER, kernel_c, kernel_filename, kernel_prototype
from tinykiln.ops import lower

TARGETS = {
    "host": ["gcc"],
    "cortex-m7": ["arm-none-eabi-gcc", "-mcpu=cortex-m7", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv5-d16"],
    "cortex-m4": ["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
    "cortex-a9": ["arm-none-eabi-gcc", "-mcpu=cortex-a9", "-marm", "-mfloat-abi=hard", "-mfpu=neon"],
}


def _sample_specs():
    specs = []
    for dtype, per_channel in (("int8", True), ("int8", False), ("float32", False)):
        mb = mg.ModelBuilder(7)
        x = mb.input((1, 6, 5, 3), dtype, name="input")
        y = mg.conv2d(mb, x, 4, (3, 3), padding="SAME", activation="RELU6", per_channel=per_channel)
        specs += [c.spec for c in lower(graph_from_builder(mb, [x], [y])).calls]
    return specs


@pytest.fixture(scope="module")
def kernel_files(tmp_path_factory):
    work = tmp_path_factory.mktemp("kernels")
    files = []
    for spec in _sample_specs():
        path = work / kernel_filename(spec)
        path.write_text(kernel_c(spec, cache_dir=KERNEL_CACHE))
        files.append((spec, path))
    return files


def test_kernel_file_is_plain_c(kernel_files):
    for spec, path in kernel_files:
        text = path.read_text()
        includes = re.findall(r"#include\s+(\S+)", text)
        assert includes == [f'"{HEADER}"'], includes
        for word in ("TVM", "DLTensor", "tvm_", "__tvm", "Workspace"):
            assert word not in text.split("*/", 1)[1], (word, path.name)
        # the definition has exactly the prototype's signature
        assert kernel_prototype(spec)[:-1] + " {" in text
        assert text.count(f"void {spec.function_name}(") == 1


def test_per_channel_and_per_tensor_params(kernel_files):
    names = [[p.name for p in spec.params] for spec, _ in kernel_files]
    # SAME padding: int8 convolutions pad the input once into a scratch param of the arena
    assert names[0] == ["input", "weights", "bias", "multiplier", "shift", "padded", "output"]
    assert names[1] == ["input", "weights", "bias", "padded", "output"]  # per-tensor: multiplier baked in
    assert "const int8_t* input" in kernel_prototype(kernel_files[0][0])


@pytest.mark.parametrize("target", list(TARGETS))
def test_kernels_compile_warning_free(kernel_files, target, tmp_path):
    cc = TARGETS[target]
    if shutil.which(cc[0]) is None:
        pytest.skip(f"{cc[0]} not installed")
    for _, path in kernel_files:
        subprocess.run([*cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-Wshadow",
                        f"-I{ROOT / 'runtime' / 'include'}", f"-I{ROOT / 'runtime' / 'kernels'}",
                        "-c", str(path), "-o", str(tmp_path / "k.o")],
                       check=True)


def test_cache_returns_same_text(kernel_files, tmp_path):
    spec, path = kernel_files[0]
    assert kernel_c(spec, cache_dir=tmp_path) == path.read_text()
    # stored under the whole spec's hash: the file name alone (the workload) does not see the knobs
    assert (tmp_path / f"{spec.function_name}.{spec.spec_hash}.c").read_text() == path.read_text()
    assert kernel_filename(spec) == f"{spec.function_name}.c"
