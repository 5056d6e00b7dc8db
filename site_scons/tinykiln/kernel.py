"""The contract between lowering (ops/), kernel codegen (codegen/), memory planning and AOT.

Lowering turns each graph op into zero or more KernelCalls. A KernelSpec is everything that decides a
kernel's C text; two calls with equal specs share one C file and one function. A kernel is a plain C
function whose parameters are pointers, in the order of `KernelSpec.params`:

    void tk_<family>_<workload key>(const int8_t* input, const int8_t* weights, ..., int8_t* output);

Names: `spec_hash` hashes the whole spec (knobs and tool versions included): it identifies the C
text (caches key on it). `name_key` hashes the spec without its knobs (tool versions included): the
function and file name (kernels/<function_name>.c). Naming by the job means a knob change rewrites
that kernel's C file only (then its object and the link): model.c calls the same function.
`workload_key` hashes only what the kernel computes (family, params, attrs: no knobs, no tool
versions): the key of a schedule file entry, so an edit of the generator (the digest of the files
that generate the family, tinykiln.sources, is in tool_versions) keeps committed schedule files
valid; the knobs they hold are checked against the family's current knob space when lowering
(ops/base.py). A knob that changes a const or scratch param (a weight layout, int16 weights, a
scratch copy) also changes what the AOT step writes: weights.c (all kernels' constants in one file),
model.h (the weights' size, the arena size if a scratch param changes size) and model.c (the
kernel's prototype, the plan); those two C files recompile too (tests/e2e/test_incremental.py pins both
rebuild sets). Within one model a workload has one set of knobs, so a name has one body; two models
linked together that give one workload different knobs must not share that kernel's object
(site_tools/kiln_embed.py checks).

Scalars (shapes, zero points, activation bounds, per-tensor multipliers) are baked into the C text via
`attrs`; arrays (weights re-laid out for the schedule, folded biases, per-channel multipliers and
shifts) are `const` params whose data the AOT step writes into weights.c.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ROLES = ("input", "output", "const", "scratch")


@dataclass(frozen=True)
class Param:
    name: str
    dtype: str
    shape: tuple[int, ...]
    role: str  # one of ROLES

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class KernelSpec:
    family: str  # e.g. "conv2d_int8"; names the TE compute and schedule space in ops/
    params: tuple[Param, ...]
    attrs: dict[str, Any]  # JSON-serialisable: shapes, strides, scalar quantization, ...
    knobs: dict[str, Any] = field(default_factory=dict)  # schedule knobs; empty = defaults
    tool_versions: dict[str, str] = field(default_factory=dict)
    # The workload key (ops.workload_key) and the name key of the spec as lowered before its knobs
    # were applied. A family whose knobs re-lay out constants or add scratch changes `params` after
    # choosing the knobs; both keys stay those of the knob-free spec, so a schedule file finds the
    # kernel, and model.c calls it by one name, whatever its knobs.
    workload: str = field(default="", compare=False)
    naming: str = field(default="", compare=False)

    def canonical(self, knobs: bool = True, tools: bool = True) -> str:
        data = {
            "family": self.family,
            "params": [[p.name, p.dtype, list(p.shape), p.role] for p in self.params],
            "attrs": self.attrs,
        }
        if knobs:
            data["knobs"] = self.knobs
        if tools:
            data["tools"] = self.tool_versions
        return json.dumps(data, sort_keys=True, separators=(",", ":"), default=_jsonable)

    @property
    def spec_hash(self) -> str:
        return _digest(self.canonical())

    @property
    def workload_key(self) -> str:
        """What the kernel computes, without knobs or tool versions (see the module docstring)."""
        return self.workload or _digest(self.canonical(knobs=False, tools=False))

    @property
    def name_key(self) -> str:
        """The spec's hash without its knobs, tool versions included (see the module docstring)."""
        return self.naming or _digest(self.canonical(knobs=False))

    @property
    def function_name(self) -> str:
        return f"tk_{self.family}_{self.name_key}"


@dataclass
class KernelCall:
    """One call in model.c. `args[i]` feeds `spec.params[i]`:
    role input/output -> a graph tensor index (int); const -> a numpy array; scratch -> None
    (the planner gives each scratch param its own arena slice of `param.nbytes`)."""

    spec: KernelSpec
    op_index: int
    args: list[Any]


@dataclass
class LoweredModel:
    """A graph ready for planning: kernel calls in order, and tensors that share storage
    (reshape-like ops): aliases[t] = the tensor whose bytes t reuses."""

    calls: list[KernelCall]
    aliases: dict[int, int] = field(default_factory=dict)
    # One line each about the schedule knobs given to lowering: a knob that is not in its family's
    # space (the default was used instead), entries that match no kernel. The build prints them.
    warnings: list[str] = field(default_factory=list)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON-serialisable in a kernel spec: {value!r}")
