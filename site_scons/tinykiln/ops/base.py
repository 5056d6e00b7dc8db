"""The lowering framework every op family module uses.

A family module (ops/<family>.py) exports two dicts that ops/__init__.py merges:

    OPS      = {"CONV_2D": lower_conv2d}            graph op kind -> lowering function
    FAMILIES = {"conv2d_int8": KernelFamily(...)}   kernel family name -> compute, schedule, knobs

A lowering function `lower_x(ctx, op) -> list[KernelCall]` reads the graph through `ctx`, folds
constants (zero points into biases, weights re-laid out for the chosen knobs, per-channel
multipliers), and builds specs with `ctx.spec(...)`, which fills in the knobs. It may instead call
`ctx.alias(output, input)` and return [] for ops that only reinterpret bytes (reshape).

A KernelFamily turns a KernelSpec into TE tensors (`compute(spec)`, one per spec param, in order) and
schedules the resulting PrimFunc from `spec.knobs` (`schedule(sch, spec)`). `knob_space(spec)` lists
the candidate values of each knob for that spec, the first being the default: this is the search
space of tuning. Specs never mention tensor names or op indices, so identical layers share a kernel.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from tinykiln import KilnError
from tinykiln.graph import Graph, Op, Tensor
from tinykiln.kernel import KernelCall, KernelSpec, Param


def _no_knobs(spec: KernelSpec) -> dict[str, list]:
    return {}


def _no_schedule(sch, spec: KernelSpec) -> None:
    return None


@dataclass(frozen=True)
class KernelFamily:
    compute: Callable[[KernelSpec], list]
    schedule: Callable[[Any, KernelSpec], None] = _no_schedule
    knob_space: Callable[[KernelSpec], dict[str, list]] = _no_knobs


def workload_key(spec: KernelSpec) -> str:
    """Identity of a kernel's job, knobs aside: the key of a tuning record."""
    return hashlib.sha256(replace(spec, knobs={}).canonical().encode()).hexdigest()[:16]


@dataclass
class LowerContext:
    graph: Graph
    knobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # workload_key -> knob values
    aliases: dict[int, int] = field(default_factory=dict)

    def tensor(self, index: int) -> Tensor:
        return self.graph.tensors[index]

    def alias(self, tensor: int, reuses: int) -> None:
        """`tensor` shares the bytes of `reuses` (always recorded against the root of a chain)."""
        self.aliases[tensor] = self.aliases.get(reuses, reuses)

    def spec(self, family: str, params: list[Param], attrs: dict[str, Any]) -> KernelSpec:
        """A spec with its knobs resolved: tuned values for this workload if any, else defaults."""
        from tinykiln.codegen import tool_versions
        from tinykiln.ops import kernel_family

        spec = KernelSpec(family=family, params=tuple(params), attrs=attrs, tool_versions=tool_versions())
        space = kernel_family(family).knob_space(spec)
        chosen = {name: values[0] for name, values in space.items()}
        for name, value in self.knobs.get(workload_key(spec), {}).items():
            if name not in space or _normal(value) not in [_normal(v) for v in space[name]]:
                raise KilnError(
                    f"schedule knob {name}={value!r} is not valid for a {family} kernel "
                    f"(space: {space}); re-run tuning or delete the model's schedule file"
                )
            chosen[name] = value
        return replace(spec, knobs=chosen)


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


def conv_padding(padding: str, size: int, kernel: int, stride: int, dilation: int, out: int) -> tuple[int, int]:
    """Rows (or columns) of padding before and after, as TFLite's ComputePaddingHeightWidth: SAME puts
    the odd row after; VALID pads nothing (the output size then excludes the partial windows)."""
    if padding == "VALID":
        return 0, 0
    effective = (kernel - 1) * dilation + 1
    total = max(0, (out - 1) * stride + effective - size)
    return total // 2, total - total // 2


def window_padding(padding: str, size: int, kernel: int, stride: int, dilation: int, out: int) -> tuple[int, int]:
    """Like conv_padding, but `after` also covers windows that run off the end with VALID padding
    (never read: TFLite's output size excludes them), so computes can index a padded input safely."""
    before, _ = conv_padding(padding, size, kernel, stride, dilation, out)
    effective = (kernel - 1) * dilation + 1
    after = max(0, (out - 1) * stride + effective - size - before)
    return before, after


def requantize(acc, attrs: dict, multiplier=None, shift=None):
    """int32 accumulator -> int8 output value: MultiplyByQuantizedMultiplier, + output zero point,
    clamp to the fused activation's range. Per-tensor multipliers come from attrs, per-channel ones
    are PrimExprs (loads from the multiplier/shift params)."""
    from tvm import tirx

    from tinykiln.quant import te_multiply_by_quantized_multiplier

    if multiplier is None:
        multiplier, shift = int(attrs["multiplier"]), int(attrs["shift"])
    # multipliers come from quantize_multiplier: positive, so SRDHM cannot saturate
    scaled = te_multiply_by_quantized_multiplier(acc, multiplier, shift, may_saturate=False) + attrs["output_zp"]
    lo, hi = attrs["act"]
    return tirx.max(tirx.min(scaled, tirx.const(hi, "int32")), tirx.const(lo, "int32")).astype("int8")


def clamp_float(value, attrs: dict):
    """Fused activation of a float32 result (bounds in attrs["act"], None = unbounded)."""
    from tvm import tirx

    lo, hi = attrs["act"]
    if hi is not None:
        value = tirx.min(value, tirx.const(hi, "float32"))
    if lo is not None:
        value = tirx.max(value, tirx.const(lo, "float32"))
    return value


def float_act_attr(activation: str, op: Op) -> list:
    """JSON-friendly clamp bounds of a float fused activation ([lo, hi], None = unbounded)."""
    from tinykiln.quant import activation_range_float

    try:
        lo, hi = activation_range_float(activation)
    except ValueError:
        raise unsupported(op, f"fused activation {activation}") from None
    return [None if np.isinf(lo) else lo, None if np.isinf(hi) else hi]


def int8_act_attr(activation: str, scale: float, zero_point: int, op: Op) -> list:
    from tinykiln.quant import activation_range_int8

    try:
        return list(activation_range_int8(activation, scale, zero_point))
    except ValueError:
        raise unsupported(op, f"fused activation {activation}") from None


def divisors_up_to(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]
