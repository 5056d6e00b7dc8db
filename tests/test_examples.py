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
    assert "boards/" not in r.stdout and "runtime/" not in r.stdout.replace(str(folder), "")
    run = run_qemu(out / "firmware.elf")
    assert run.returncode == 0, run.stdout + run.stderr
    want = cifar10_reference()
    assert printed_scores(run.stdout) == want.tolist(), run.stdout
    assert f"class: {int(np.argmax(want))} airplane" in run.stdout
