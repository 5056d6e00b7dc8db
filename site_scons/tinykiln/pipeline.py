"""The model pipeline: a .tflite to the C of its firmware, the one way every front end gets there.

    compiled = pipeline.compile(model, board="mps2-an500")        # a models.Model or a model= text
    compiled.kernels          {function name: KernelSpec}, each distinct kernel once, in call order
    compiled.kernel_c(name)   the C file of one kernel (TVM codegen, imported only here)
    compiled.texts            {"model.h", "model.c", "weights.c", "tk_models.c": C text}
    compiled.graph / .lowered / .plan / .aot    the stages' results (graph IR, kernel calls,
                              arena plan, AOT texts and sizes) for reports and run-time code
    pipeline.load_cached(path)  what a build cached there, for run-time code (no second import)

Stages, data flowing one way: tflite.load (graph IR) -> ops.lower (kernel calls, with the schedule
knobs) -> memplan.plan (static arena) -> aot.generate (model.c, model.h, weights.c). Kernel C is
generated per kernel, on demand, because the build makes one target per kernel file.

The knobs come from the schedule file for the board (schedules.resolve: schedules=, else
models/<name>/schedules/<board>.json; none with use_tuned=False), or are given as `knobs=`.

With cache=<path>, the result is pickled there and reused while its key is unchanged: SCons reads
SConstruct on every run and needs the lowered model to know which kernel files exist, and importing
TVM alone takes about two seconds, so a no-op rebuild must not run the stages again. The key covers
the .tflite bytes, the model's name and path, the knobs, the options below, the sources of the
pipeline and the versions of the packages it uses (tinykiln.sources owns that digest). The file is
written atomically; an unreadable or stale one is recomputed.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from tinykiln import KilnError, aot, memplan, models, paths, schedules, sources
from tinykiln.kernel import KernelSpec

# Bumped when the pickled objects change shape in a way the source digest would not show.
CACHE_FORMAT = 3


@dataclass
class Compiled:
    """What the pipeline made of one model; plain data, picklable, no TVM objects."""

    model: models.Model
    graph: Any  # tinykiln.graph.Graph
    lowered: Any  # tinykiln.kernel.LoweredModel
    plan: Any  # tinykiln.memplan.MemoryPlan
    aot: Any  # tinykiln.aot.AotResult
    knobs: dict = field(default_factory=dict)
    schedule_path: Path | None = None
    footprint: Any = None  # tinykiln.ops.footprint.Plan: optimize='s choice of int8 / int16 weights
    int16_extra: int = 0  # bytes its int16 weight layouts add over int8 weights (an estimate)

    @property
    def kernels(self) -> dict[str, KernelSpec]:
        specs: dict[str, KernelSpec] = {}
        for call in self.lowered.calls:
            specs.setdefault(call.spec.function_name, call.spec)
        return specs

    @property
    def texts(self) -> dict[str, str]:
        return {"model.h": self.aot.model_h, "model.c": self.aot.model_c,
                "weights.c": self.aot.weights_c, "tk_models.c": aot.registry_c([self.model.name])}

    @property
    def warnings(self) -> list[str]:
        """Lines about the schedule knobs (unknown knob values, entries no kernel uses)."""
        return list(self.lowered.warnings)

    def kernel_c(self, function_name: str, cache_dir: str | os.PathLike | None = None) -> str:
        from tinykiln import codegen  # TVM: only when a kernel is generated

        return codegen.kernel_c(self.kernels[function_name], cache_dir=cache_dir)


def compile(model: models.Model | str, board: str | None = None, *, root: Path | None = None,
            knobs: dict | None = None, schedules_file: str = "", use_tuned: bool = True,
            expose_layers: bool = False, cache: str | os.PathLike | None = None,
            optimize: str = "speed", weights_region: int | None = None) -> Compiled:
    """Import, lower, plan and write the AOT C of `model` (see the module docstring).

    model          a models.Model, or model= text resolved against `root` (the checkout)
    board          the board name whose schedule file gives the knobs (None: no schedule file)
    knobs          {workload key: {knob: value}}: used instead of any schedule file
    expose_layers  every op's output becomes a graph output too (the per-layer debugger)
    optimize       speed | balanced | size: which kernels keep int16 weights (ops/footprint.py);
                   the build's default is options.py's (speed), as is this function's
    weights_region bytes of the memory region the weights go to (None: no limit)
    """
    if not isinstance(model, models.Model):
        model = models.resolve(Path(root or paths.ROOT), str(model))
    schedule_path = None
    if knobs is None:
        schedule_path, knobs = (None, {}) if board is None else schedules.resolve(
            model.directory, board, schedules_file, use_tuned)

    def run() -> Compiled:
        return _run_stages(model, knobs, schedule_path, expose_layers, optimize, weights_region)

    if cache is None:
        return run()
    return _cached(Path(cache), cache_key(model, knobs, expose_layers, optimize, weights_region), run)


def _run_stages(model: models.Model, knobs: dict, schedule_path, expose_layers: bool,
                optimize: str = "speed", weights_region: int | None = None) -> Compiled:
    from tinykiln import ops, tflite  # the importer and the lowering (TVM) only on a cache miss
    from tinykiln.ops import footprint

    graph = tflite.load(str(model.path))
    graph.name = model.name
    if expose_layers:
        given = list(graph.outputs)
        graph.outputs = given + [o for op in graph.ops for o in op.outputs
                                 if o not in given and not graph.tensor(o).is_constant]
    weights_plan = footprint.plan(graph, optimize, weights_region)
    lowered = ops.lower(graph, knobs, weights_plan)
    plan = memplan.plan(graph, lowered)
    result = aot.generate(graph, lowered, plan, model.name, source_digest=model.digest())
    return Compiled(model, graph, lowered, plan, result, knobs=dict(knobs), schedule_path=schedule_path,
                    footprint=weights_plan, int16_extra=footprint.int16_extra(lowered))


def cache_key(model: models.Model, knobs: dict, expose_layers: bool = False, optimize: str = "speed",
              weights_region: int | None = None) -> str:
    parts = {
        "optimize": [optimize, weights_region],
        "format": CACHE_FORMAT,
        "model": [model.name, str(model.path), model.digest()],
        "knobs": knobs,
        "expose_layers": expose_layers,
        "sources": sources.pipeline_digest(),
        "packages": sources.package_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def load_cached(path: str | os.PathLike) -> Compiled | None:
    """The result a build compiled and cached at `path` (run-time code reads it instead of importing
    the model again); None if there is none."""
    stored = _read(Path(path))
    return stored["value"] if stored is not None else None


def _read(path: Path) -> dict | None:
    try:
        with path.open("rb") as f:
            stored = pickle.load(f)
    except (OSError, EOFError, pickle.UnpicklingError, AttributeError, ImportError, TypeError, ValueError):
        return None  # missing or from another tinykiln
    ok = isinstance(stored, dict) and isinstance(stored.get("value"), Compiled)
    return stored if ok else None


def _cached(path: Path, wanted: str, compute: Callable[[], Compiled]) -> Compiled:
    stored = _read(path)
    if stored is not None and stored.get("key") == wanted:
        return stored["value"]
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump({"key": wanted, "value": value}, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except BaseException as e:
        # A full disk or an interrupt must not leave a cache-sized temp file behind.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise KilnError(f"cannot write {path}: {e.strerror or e} (a full disk or a file size limit?): "
                            "make room and run again; the build goes on where it stopped") from None
        raise
    return value
