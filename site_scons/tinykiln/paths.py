"""Where things are: the checkout, and the layout of a build folder. Every module asks here.

    ROOT                                   the checkout (SConstruct, boards/, models/, runtime/)
    caller_dir()                           where the user stands: $KILN_CWD (./kiln exports it before
                                           it changes to the checkout), else the working directory
    user_path(text)                        a path the user typed (model=, samples=, schedules=, builddir=,
                                           cache=): ~ expanded, relative to caller_dir()
    user_file(text)                        a file to read (model=, matrix=): user_path if it is there,
                                           else the checkout's (./kiln matrix=ci/matrix.toml from anywhere)
    build_root(builddir)                   builddir= as an absolute path (relative: to the caller's
                                           directory with ./kiln, else to the checkout); KilnError for
                                           a file or a name the compiler's shell would misread
    cache_root(cache)                      cache= as an absolute, existing, writable directory (made)
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
    cycles_plugin(target)                  <target>/_kiln/qemu-cycles/tkcycles.so: the cycle-estimate
                                           QEMU plugin (tinykiln.cycles), built with the host gcc
    sconsign(build)                        SCons' state file of a build folder
    matrix_dir(build)                      <build>/matrix/: matrix=1 rows, logs and reports
"""
from __future__ import annotations

import os
from pathlib import Path

from tinykiln import KilnError

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_BUILDDIR = "build"
CALLER_DIR_VARIABLE = "KILN_CWD"
# SCons runs the compiler through `sh -c` and quotes only words with spaces: these characters in
# a build path would be read by the shell (a `;` runs what follows it).
SHELL_SPECIAL = set("'\"`$;&|<>()\\*?[\n\t")


def caller_dir(default: Path | None = None) -> Path:
    """The directory relative paths on the command line are meant from. ./kiln changes to the
    checkout and exports the one it was started in; scons run directly (the tests' scons -C)
    keeps today's rule: `default`, else the working directory."""
    where = os.environ.get(CALLER_DIR_VARIABLE)
    return Path(where) if where else (default or Path.cwd())


def user_path(text: str | os.PathLike, default: Path | None = None) -> Path:
    """A path as the user typed it, absolute: ~ expanded even when the shell did not (quoted),
    relative ones against caller_dir(default). Lexically normalized, symlinks kept."""
    path = Path(os.path.expanduser(os.fspath(text)))
    if not path.is_absolute():
        path = caller_dir(default) / path
    return Path(os.path.normpath(path))


def user_file(text: str | os.PathLike) -> Path:
    path = user_path(text)
    if not path.exists() and not Path(os.path.expanduser(os.fspath(text))).is_absolute() \
            and (ROOT / text).exists():
        return Path(os.path.normpath(ROOT / text))
    return path


def build_root(builddir: str | os.PathLike = DEFAULT_BUILDDIR) -> Path:
    path = user_path(builddir, default=ROOT)
    if path.exists() and not path.is_dir():
        raise KilnError(f"builddir={builddir} is a file ({path}), not a folder: give a folder to build "
                        f"in (it is made if missing)")
    odd = sorted(SHELL_SPECIAL & set(str(path)))
    if odd:
        raise KilnError(f"builddir={builddir} holds {' '.join(odd)} (in {path}), which the compiler's "
                        f"shell would misread: choose a folder without them")
    return path


def cache_root(cache: str | os.PathLike) -> Path:
    """cache= ready for SCons' CacheDir: made if missing (~/.cache may not exist yet), and
    a clear error for a file or a folder this account cannot write."""
    path = user_path(cache)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise KilnError(f"cache={cache}: {path} is a file, not a folder: give a folder for the shared "
                        f"cache (it is made if missing)") from None
    except OSError as e:
        raise KilnError(f"cache={cache}: cannot make the folder {path}: {e.strerror}: give a folder "
                        f"you can write") from None
    if not path.is_dir():
        raise KilnError(f"cache={cache}: {path} is not a folder")
    if not os.access(path, os.W_OK | os.X_OK):
        raise KilnError(f"cache={cache}: the folder {path} is not writable by you: give a folder you "
                        f"can write")
    return path


def target_dir(build: Path, board: str, variant: str) -> Path:
    return Path(build) / board / variant


def firmware_dir(build: Path, board: str, variant: str, name: str) -> Path:
    return target_dir(build, board, variant) / name


def common_dir(target: Path) -> Path:
    return Path(target) / "_kiln"


def cycles_plugin(target: Path) -> Path:
    return common_dir(target) / "qemu-cycles" / "tkcycles.so"


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
