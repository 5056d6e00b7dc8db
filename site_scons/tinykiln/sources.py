"""Which source files make a generated artifact: the one staleness rule of the build.

    module_files(["tinykiln.ops.conv2d"]) -> [Path, ...]   the modules and every tinykiln module
                                             they import, directly or not (read from their source:
                                             nothing is imported)
    generator_files(module) -> [Path]        what generates one kernel family's C: the family's
                                             module, what it imports, and tinykiln.codegen (the
                                             registry that codegen looks families up in counts,
                                             the other families it lists do not)
    generator_digest(module) -> str          12 hex digits of those files (names and bytes)
    kernel_tool_versions(module) -> dict     what lowering stamps into a spec of that family:
                                             TVM's version and the generator digest
    pipeline_files() / pipeline_digest()     what the pipeline's result (graph, lowering, plan, AOT
                                             text) depends on: tinykiln.pipeline and everything it
                                             imports, the importer, the op families and codegen
    package_versions() -> [str]              TVM, tflite, numpy, ai-edge-litert (whose schema the
                                             importer's verifier walks): the packages the pipeline runs

A kernel's spec carries its family's generator digest (KernelSpec.tool_versions), so its C file name
and its cache keys (SCons, the shared kernel cache, the test suite's cache) change exactly when a
file that generates it changes, and only then. The pipeline cache keys on pipeline_digest.
Imports are followed through `import`, `from ... import` and relative imports anywhere in a module
(lazy imports in functions included). tinykiln.ops loads its family modules by name (importlib), so
the pipeline counts that package whole; a kernel counts only its own family's module.
"""
from __future__ import annotations

import ast
import functools
import hashlib
from importlib import metadata
from pathlib import Path

PACKAGE = "tinykiln"
_ROOT = Path(__file__).resolve().parent  # site_scons/tinykiln

# What the pipeline's result depends on beyond what tinykiln.pipeline imports by name: the importer,
# the op families (registered by importlib) and codegen (whose digest is in every lowered spec).
_PIPELINE_ROOTS = ("tinykiln.pipeline", "tinykiln.tflite", "tinykiln.codegen")
_PIPELINE_WHOLE = ("tinykiln.ops",)
_PACKAGES = ("apache-tvm", "tflite", "numpy", "ai-edge-litert")
# Codegen finds a spec's family by name through these; what they import (every family) does not
# generate this family's code.
_FAMILY_LOOKUP = ("tinykiln.ops", "tinykiln.ops.registry")


def _path_of(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] != PACKAGE:
        return None
    base = _ROOT.joinpath(*parts[1:])
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _imports(path: Path, module: str) -> set[str]:
    """The tinykiln modules `path` (module `module`) names in its import statements."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            # `from pkg import name` may name a submodule; then it needs that, not pkg's own code
            names = [f"{origin}.{alias.name}" for alias in node.names]
            found.update(names)
            if not all(_path_of(n) is not None for n in names):
                found.add(origin)
    return {m for m in found if m.split(".")[0] == PACKAGE and _path_of(m) is not None}


def module_files(modules, whole=(), unfollowed=()) -> list[Path]:
    """The files of `modules` and of every tinykiln module they import. A subpackage in `whole`
    counts with all its modules (they may be loaded by name, as tinykiln.ops loads its families);
    a module in `unfollowed` counts, but not what it imports."""
    seen: dict[str, Path] = {}
    todo = list(modules) + list(whole)
    while todo:
        module = todo.pop()
        path = _path_of(module)
        if path is None or module in seen:
            continue
        seen[module] = path
        if module in whole and path.name == "__init__.py":
            todo.extend(f"{module}.{p.stem}" for p in path.parent.glob("*.py") if p.stem != "__init__")
        if module not in unfollowed:
            todo.extend(_imports(path, module))
    return sorted(set(seen.values()))


def _digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


@functools.cache
def generator_files(module: str) -> tuple[Path, ...]:
    return tuple(module_files([module, "tinykiln.codegen"], unfollowed=_FAMILY_LOOKUP))


@functools.cache
def generator_digest(module: str) -> str:
    return _digest(list(generator_files(module)))


def kernel_tool_versions(module: str) -> dict[str, str]:
    import tvm  # lowering has imported it already

    return {"tvm": tvm.__version__, "tinykiln-codegen": generator_digest(module)}


@functools.cache
def pipeline_files() -> tuple[Path, ...]:
    return tuple(module_files(_PIPELINE_ROOTS, whole=_PIPELINE_WHOLE))


@functools.cache
def pipeline_digest() -> str:
    return _digest(list(pipeline_files()))


def package_versions() -> list[str]:
    versions = []
    for package in _PACKAGES:
        try:
            versions.append(metadata.version(package))
        except metadata.PackageNotFoundError:
            versions.append("none")
    return versions
