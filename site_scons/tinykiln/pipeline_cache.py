"""The model pipeline's result (graph, lowered model, memory plan, AOT texts), kept between builds.

SCons reads SConstruct on every run, and the build graph needs the lowered model (which kernel files
exist, what model.c says). Importing, lowering and planning costs seconds (TVM's import alone takes
about two), so a no-op rebuild would be slow. The result is pickled next to the build outputs and
reused while its key is unchanged:

    key(model, knobs) -> str         sha256 of the .tflite bytes, the model's name and path, the schedule
                                     knobs, every tinykiln source file and the versions of the packages
                                     the pipeline uses (TVM, tflite, numpy)
    cached(path, key, compute) -> the value of compute(), from path when its stored key matches

Any change to tinykiln's own code invalidates the cache (no finer bookkeeping to get wrong). The file
is written atomically; an unreadable or stale one is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

_TINYKILN = Path(__file__).resolve().parent
# Bumped when the pickled objects change shape in a way the source digest would not show.
FORMAT = 1


def _source_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(_TINYKILN.rglob("*.py")):
        digest.update(str(path.relative_to(_TINYKILN)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "none"


def key(model, knobs: dict) -> str:
    parts = {
        "format": FORMAT,
        "model": [model.name, str(model.path), model.digest()],
        "knobs": knobs,
        "sources": _source_digest(),
        "packages": [_version(p) for p in ("apache-tvm", "tflite", "numpy")],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cached(path: Path, wanted: str, compute: Callable[[], Any]) -> Any:
    path = Path(path)
    try:
        with path.open("rb") as f:
            stored = pickle.load(f)
        if isinstance(stored, dict) and stored.get("key") == wanted:
            return stored["value"]
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        pass  # missing or from another tinykiln: compute it again
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        pickle.dump({"key": wanted, "value": value}, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)
    return value
