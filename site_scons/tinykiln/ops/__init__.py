"""Lowering: graph ops -> kernel calls (see tinykiln.kernel for the contract).

    lower(graph, knobs=None) -> LoweredModel
        knobs: {workload_key: {knob: value}} from a schedule file; missing workloads get defaults.
        A knob outside its family's space falls back to its default and entries no kernel uses are
        ignored; both are reported in LoweredModel.warnings (one line each), never an error.
        plan: an ops.footprint.Plan (optimize=): the ops whose defaults keep int8 weights; None:
        every family's own defaults (optimize=speed with room to spare).
    kernel_family(name) -> KernelFamily       compute / schedule / knob space of a kernel family
    knob_space(spec, plan=None, op_index=None) -> {knob: [values]}
                                              the tuning space of one kernel (first value = default)
    workload_key(spec) -> str                 what a spec computes, without knobs or generator
                                              version (schedule file and tuning record key)

What is supported, and by which function, is the op registry (ops/registry.py), which the importer
reads too; each op family lives in one module of this package (see ops/base.py for what it exports).
"""
from __future__ import annotations

from typing import Any

from tinykiln import KilnError
from tinykiln.graph import Graph
from tinykiln.kernel import KernelSpec, LoweredModel

from .base import KernelFamily, LowerContext, workload_key
from .registry import FAMILIES, OPS


def kernel_family(name: str) -> KernelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise KilnError(f"no kernel family '{name}' (known: {', '.join(sorted(FAMILIES))})") from None


def knob_space(spec: KernelSpec, plan=None, op_index: int | None = None) -> dict[str, list]:
    """The spec's knob space; with a footprint plan (optimize=) that keeps op `op_index`'s weights
    int8, only the int8 values of the knobs that decide it (what tune=1 may try)."""
    family = kernel_family(spec.family)
    space = family.knob_space(spec)
    if plan is None or op_index is None or family.int8_weights is None or not plan.int8(op_index):
        return space
    for name, value in family.int8_weights(spec).items():
        if name in space and value in space[name]:
            space[name] = [value]
    return space


def lower(graph: Graph, knobs: dict[str, dict[str, Any]] | None = None, plan=None) -> LoweredModel:
    missing = [op for op in graph.ops if op.kind not in OPS]
    if missing:
        listed = "; ".join(f"op {op.index} {op.kind} (output '{graph.tensors[op.outputs[0]].name}')"
                           for op in missing)
        raise KilnError(f"no kernel generator for: {listed}")
    ctx = LowerContext(graph, FAMILIES, dict(knobs or {}), plan=plan)
    calls = []
    for op in graph.ops:
        ctx.op = op
        calls.extend(OPS[op.kind].lower(ctx, op))
    stale = ctx.stale_warning()
    return LoweredModel(calls=calls, aliases=ctx.aliases,
                        warnings=ctx.warnings + ([stale] if stale else []))


__all__ = ["lower", "kernel_family", "knob_space", "workload_key", "KernelFamily", "LowerContext"]
