"""The kernel generator's identity: what, besides a KernelSpec, decides a kernel's C text.

Lowering stamps it into every spec (KernelSpec.tool_versions), so it is part of each kernel's name and
cache key; codegen/ consumes the specs. It lives here, not in codegen/, so that lowering need not
import codegen.
"""
from __future__ import annotations

from pathlib import Path

# The generator's own sources (ops/, codegen/, fixedpoint/) are part of every spec's tool_versions: any
# change to a compute, a schedule or the rewrite renames the kernels, so no cache (the test cache,
# SCons) can serve C text from an older generator.
_PACKAGE = Path(__file__).resolve().parent
_SOURCES = (_PACKAGE / "codegen", _PACKAGE / "ops", _PACKAGE / "fixedpoint")


def _generator_digest() -> str:
    import hashlib

    digest = hashlib.sha256()
    for root in _SOURCES:
        for path in sorted([root] if root.is_file() else root.rglob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


GENERATOR_VERSION = _generator_digest()


def tool_versions() -> dict[str, str]:
    """What, besides the spec, decides a kernel's C text."""
    import tvm

    return {"tvm": tvm.__version__, "tinykiln-codegen": GENERATOR_VERSION}
