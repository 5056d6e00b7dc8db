"""Where things are: the checkout, and the layout of a build folder. Every module asks here.

    ROOT                                   the checkout (SConstruct, boards/, models/, runtime/)
    build_root(builddir)                   builddir= as an absolute path (relative: to the checkout)
    target_dir(build, board, variant)      <build>/<board>/<variant>/: one board + variant's outputs
    firmware_dir(build, board, variant, name)
                                           <target>/<name>/: one firmware (ELF, map, report.json);
                                           a model's firmware is named after the model
    common_dir(target)                     <target>/_kiln/: board support and runtime objects shared
                                           by every firmware of the target, memory.ld, board_info.c
    kernels_dir(model_dir), gen_dir(model_dir), export_dir(model_dir), tune_dir(model_dir)
                                           a model's generated kernels, AOT C, export=1 folder and
                                           tune=1 work folder
    pipeline_cache(model_dir)              the pickled pipeline result (tinykiln.pipeline)
    sconsign(build)                        SCons' state file of a build folder
    matrix_dir(build)                      <build>/matrix/: matrix=1 rows, logs and reports
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILDDIR = "build"


def build_root(builddir: str | os.PathLike = DEFAULT_BUILDDIR) -> Path:
    path = Path(builddir)
    return path if path.is_absolute() else ROOT / path


def target_dir(build: Path, board: str, variant: str) -> Path:
    return Path(build) / board / variant


def firmware_dir(build: Path, board: str, variant: str, name: str) -> Path:
    return target_dir(build, board, variant) / name


def common_dir(target: Path) -> Path:
    return Path(target) / "_kiln"


def kernels_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "kernels"


def gen_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "gen"


def export_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "export"


def tune_dir(model_dir: Path) -> Path:
    return Path(model_dir) / "tune"


def pipeline_cache(model_dir: Path) -> Path:
    return Path(model_dir) / ".pipeline.pickle"


def sconsign(build: Path) -> Path:
    return Path(build) / ".sconsign"


def matrix_dir(build: Path) -> Path:
    return Path(build) / "matrix"
