"""The lowering framework every op family module uses: the family and context types and the helpers
that read the graph.

A family module (ops/<family>.py) defines lowering functions, which ops/registry.py lists by op kind,
and exports the kernel families it computes:

    FAMILIES = {"conv2d_int8": KernelFamily(...)}   kernel family name -> compute, schedule, knobs

A lowering function `lower_x(ctx, op) -> list[KernelCall]` reads the graph through `ctx`, folds
constants (zero points into biases, weights re-laid out for the chosen knobs, per-channel
multipliers), and builds specs with `ctx.spec(...)`, which fills in the knobs. It may instead call
`ctx.alias(output, input)` and return [] for ops that only reinterpret bytes (reshape).

A KernelFamily turns a KernelSpec into TE tensors (`compute(spec)`, one per spec param, in order) and
schedules the resulting PrimFunc from `spec.knobs` (`schedule(sch, spec)`). `knob_space(spec)` lists
the candidate values of each knob for that spec, the first being the default: this is the search
space of tuning. Specs never mention tensor names or op indices, so identical layers share a kernel.

The other shared pieces of the families: epilogue.py (requantization and clamps of the output
stage), accumulate.py (the padded input and the schedule of conv-like kernels), tir_rewrites.py (edits
of scheduled PrimFuncs), rules.py (TFLite's shape rules), microkernel.py (hand-written tile calls).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from tinykiln import KilnError
from tinykiln.graph import Graph, Op, Tensor
from tinykiln.kernel import KernelSpec, Param


def _no_knobs(spec: KernelSpec) -> dict[str, list]:
    return {}


def _no_schedule(sch, spec: KernelSpec) -> None:
    return None


@dataclass(frozen=True)
class KernelFamily:
    compute: Callable[[KernelSpec], list]
    schedule: Callable[[Any, KernelSpec], None] = _no_schedule
    knob_space: Callable[[KernelSpec], dict[str, list]] = _no_knobs
    # the knob values that keep a spec's weights int8 in flash (optimize=, ops/footprint.py); None
    # for families without int16 weight layouts, {} for a spec that has no int8 choice
    int8_weights: Callable[[KernelSpec], dict[str, Any]] | None = None


def workload_key(spec: KernelSpec) -> str:
    """What a kernel computes (family, params, attrs), without its knobs or the generator's version:
    the key of a schedule file entry and of a tuning record (KernelSpec.workload_key)."""
    return spec.workload_key


@dataclass
class LowerContext:
    graph: Graph
    families: dict[str, KernelFamily]  # the registry's kernel families (ops/registry.py)
    knobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # workload_key -> knob values
    aliases: dict[int, int] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # workload keys of the specs made so far
    warnings: list[str] = field(default_factory=list)  # about the schedule knobs (LoweredModel.warnings)
    plan: Any = None  # ops/footprint.py Plan: which ops keep int8 weights (None: every default)
    op: Op | None = None  # the op being lowered (set by ops.lower)

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def alias(self, tensor: int, reuses: int) -> None:
        """`tensor` shares the bytes of `reuses` (always recorded against the root of a chain)."""
        self.aliases[tensor] = self.aliases.get(reuses, reuses)

    def spec(self, family: str, params: list[Param], attrs: dict[str, Any]) -> KernelSpec:
        """A spec with its knobs resolved: tuned values for this workload if any, else defaults."""
        from tinykiln import sources

        generator = self.families[family].compute.__module__
        spec = KernelSpec(family=family, params=tuple(params), attrs=attrs,
                          tool_versions=sources.kernel_tool_versions(generator))
        space = self.families[family].knob_space(spec)
        chosen = {name: values[0] for name, values in space.items()}
        int8 = self._int8_knobs(family, spec, space)
        chosen.update(int8)
        key = workload_key(spec)
        self.used.add(key)
        # A schedule file outlives generator edits (its key has no generator digest), so a knob it
        # names may since have left the space: warn and keep that knob's default, never guess.
        for name, value in self.knobs.get(key, {}).items():
            if name not in space:
                self._warn_once(f"kernel {spec.function_name} ({family}): schedule knob '{name}' is "
                                f"not a knob of this family any more: using the defaults for it "
                                f"(re-run tune=1 to refresh the schedule file)")
            elif _normal(value) not in [_normal(v) for v in space[name]]:
                self._warn_once(f"kernel {spec.function_name} ({family}): schedule knob "
                                f"{name}={value!r} is not in its space {space[name]}: using the "
                                f"default {space[name][0]!r} (re-run tune=1 to refresh the schedule file)")
            else:
                chosen[name] = value
        if self.plan is not None and self.plan.forced:
            chosen.update(int8)  # optimize=size: int8 weights whatever the schedule file says
        return replace(spec, knobs=chosen, workload=key, naming=spec.name_key)

    def _int8_knobs(self, family: str, spec: KernelSpec, space: dict) -> dict[str, Any]:
        """The knob values that keep this spec's weights int8, if the plan wants that for this op."""
        hook = self.families[family].int8_weights
        if hook is None or self.plan is None or self.op is None or not self.plan.int8(self.op.index):
            return {}
        return {k: v for k, v in hook(spec).items() if k in space and v in space[k]}

    def _warn_once(self, message: str) -> None:
        if message not in self.warnings:  # identical layers share a kernel: one line for them all
            self.warnings.append(message)

    def stale_warning(self) -> str | None:
        """One line about the schedule entries no kernel of this model asked for (none: None)."""
        stale = sorted(set(self.knobs) - self.used)
        if not stale:
            return None
        one = len(stale) == 1
        return (f"{len(stale)} schedule entr{'y matches' if one else 'ies match'} no kernel of "
                f"this model (stale, ignored; re-run tune=1 to refresh the file): {', '.join(stale)}")


def _normal(value: Any) -> str:
    return json.dumps(value, default=list)


# --------------------------------------------------------------------------- helpers for families

def param(name: str, dtype: str, shape, role: str) -> Param:
    return Param(name, dtype, tuple(int(d) for d in shape), role)


def quant_params(tensor: Tensor, what: str, op: Op) -> tuple[float, int]:
    """(scale, zero_point) of a per-tensor quantized tensor."""
    if tensor.quant is None or tensor.quant.per_channel:
        raise KilnError(f"op {op.index} ({op.kind}): {what} '{tensor.name}' needs per-tensor quantization")
    return float(tensor.quant.scale[0]), int(tensor.quant.zero_point[0])


def constant(ctx: LowerContext, index: int, op: Op, what: str) -> np.ndarray:
    tensor = ctx.tensor(index)
    if tensor.data is None:
        raise KilnError(f"op {op.index} ({op.kind}): {what} '{tensor.name}' must be a constant tensor")
    return tensor.data


def unsupported(op: Op, why: str) -> KilnError:
    return KilnError(f"op {op.index} ({op.kind}) is not supported: {why}")
