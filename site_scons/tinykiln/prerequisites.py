"""What must be installed before a build starts, checked once with one clear error each.

    PYTHON_MODULES                    the modules of the pinned venv (requirements.txt) a build imports
    missing_modules(import_them=False) -> [names]
                                      the ones this Python cannot find (or, import_them: cannot import)
    check_python()                    KilnError for a Python without them (a foreign `scons`)
    compiler(board) -> program        the C compiler a board's firmware is built with
    check_program(program, what="")   KilnError when a program is not on PATH, naming its package
                                      (PROGRAM_PACKAGES: the compilers, qemu-system-arm, openocd)
    check_tools(board)                check_program for the board's compiler

    python -m tinykiln.prerequisites [--import]
                                      exit 1 and list what is missing: ./kiln asks this to know
                                      whether .venv is whole (find only: fast) or works (--import)

Imports nothing outside the standard library: it must run in a Python that lacks everything.
"""
from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys

from tinykiln import KilnError

# import name -> pip package (requirements.txt pins the versions)
PYTHON_MODULES = {"SCons": "scons", "numpy": "numpy", "tvm": "apache-tvm", "tflite": "tflite",
                  "elftools": "pyelftools", "serial": "pyserial", "ai_edge_litert": "ai-edge-litert"}
# program -> the Debian packages that provide it (a compiler: and its C library); ./kiln installs them
PROGRAM_PACKAGES = {"gcc": ("gcc", "libc6-dev"),
                    "arm-none-eabi-gcc": ("gcc-arm-none-eabi", "libnewlib-arm-none-eabi"),
                    "qemu-system-arm": ("qemu-system-arm",), "openocd": ("openocd",)}


def missing_modules(import_them: bool = False) -> list[str]:
    missing = []
    for name in PYTHON_MODULES:
        try:
            found = importlib.import_module(name) if import_them else importlib.util.find_spec(name)
        except Exception:  # a damaged package fails in its own way; any failure means reinstall
            found = None
        if found is None:
            missing.append(name)
    return missing


def check_python() -> None:
    missing = missing_modules()
    if missing:
        packages = ", ".join(PYTHON_MODULES[m] for m in missing)
        raise KilnError(f"this scons runs in {sys.executable}, which lacks {packages}: run the build "
                        f"through ./kiln, which sets up .venv with the pinned packages (or use .venv/bin/scons)")


def compiler(board) -> str:
    return "gcc" if board.is_host else "arm-none-eabi-gcc"


def check_program(program: str, what: str = "") -> None:
    if shutil.which(program) is not None:
        return
    packages = PROGRAM_PACKAGES.get(program, (program,))
    raise KilnError(f"{program}{', ' + what + ',' if what else ''} is not on PATH: install the Debian package "
                    f"{packages[0]} (sudo apt-get install {' '.join(packages)}; ./kiln installs it when the "
                    f"package is missing), or put the folder that holds {program} on PATH")


def check_tools(board) -> None:
    check_program(compiler(board), f"the C compiler for board {board.name}")


def main(argv: list[str]) -> int:
    missing = missing_modules(import_them="--import" in argv)
    if missing:
        print(" ".join(PYTHON_MODULES[m] for m in missing))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
