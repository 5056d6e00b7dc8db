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


def workload_key(spec: KernelSpec) -> str:
    """What a kernel computes (family, params, attrs), without its knobs or the generator's version:
    the key of a schedule file entry and of a tuning record (KernelSpec.workload_key)."""
    return spec.workload_key


@dataclass
class LowerContext:
    graph: Graph
    knobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # workload_key -> knob values
    aliases: dict[int, int] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)  # workload keys of the specs made so far
    warnings: list[str] = field(default_factory=list)  # about the schedule knobs (LoweredModel.warnings)

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
        return replace(spec, knobs=chosen, workload=key, naming=spec.name_key)

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


def requantize(acc, attrs: dict, multiplier=None, shift=None, offset=None):
    """int32 accumulator -> int8 output value: MultiplyByQuantizedMultiplier (double rounding, or
    single rounding when attrs["rounding"] == "single"), + output zero point, clamp to the fused
    activation's range.

    Per-tensor multipliers come from attrs (TFLite's pair), per-channel ones are PrimExprs (loads
    from the multiplier/shift params). Unless attrs["requant"] == "tflite" (the generic step-by-step
    form, for what the fused forms cannot take: see int8_accumulate_quant), the fused forms of
    tinykiln.fixedpoint.fused are used: then a per-channel shift holds rs - 1 (double rounding) or
    31 - shift - 32 (single), and single rounding adds `offset` (int64 PrimExpr: bias * m + rounding
    + zero point, the bias already in it) to acc * m."""

    from tinykiln.fixedpoint import fused, te as fte

    per_tensor = multiplier is None
    if per_tensor:
        multiplier, shift = int(attrs["multiplier"]), int(attrs["shift"])
    zp = int(attrs["output_zp"])
    single = attrs.get("rounding") == "single"
    if attrs.get("requant") == "tflite":
        if single:
            scaled = fte.te_multiply_by_quantized_multiplier_single(acc, multiplier, shift)
        else:
            # multipliers come from quantize_multiplier: positive, so SRDHM cannot saturate
            scaled = fte.te_multiply_by_quantized_multiplier(acc, multiplier, shift, may_saturate=False)
        scaled = scaled + zp
    elif single:
        if per_tensor:
            scaled = fused.te_requantize_fused_single(acc, multiplier, offset, shift=shift)
        else:
            scaled = fused.te_requantize_fused_single(acc, multiplier, offset, post=shift)
    else:
        if per_tensor:
            shift = fused.fused_double_shift(multiplier, shift)
        scaled = fused.te_requantize_fused_double(acc, multiplier, shift, zp)
    return clamp_int8(scaled, attrs["act"])


def clamp_int8(value, act):
    """int32 -> int8 clamped to the activation range [lo, hi]: tk_rq_sat8 (runtime/kernels/tk_rq.h,
    one SSAT on Cortex-M DSP cores), then whichever bound of the activation is narrower."""
    from tvm import tirx

    lo, hi = act
    value = tirx.call_pure_extern("int32", "tk_rq_sat8", value)
    if hi < 127:
        value = tirx.min(value, tirx.const(hi, "int32"))
    if lo > -128:
        value = tirx.max(value, tirx.const(lo, "int32"))
    return value.astype("int8")


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
    from tinykiln.fixedpoint.prepare import activation_range_float

    try:
        lo, hi = activation_range_float(activation)
    except ValueError:
        raise unsupported(op, f"fused activation {activation}") from None
    return [None if np.isinf(lo) else lo, None if np.isinf(hi) else hi]


def int8_act_attr(activation: str, scale: float, zero_point: int, op: Op) -> list:
    from tinykiln.fixedpoint.prepare import activation_range_int8

    try:
        return list(activation_range_int8(activation, scale, zero_point))
    except ValueError:
        raise unsupported(op, f"fused activation {activation}") from None


def int8_accumulate_quant(op, x, w, y, weight_sums, bias, attrs, activation, float_product=False):
    """Folded bias and requantization of an int8 op that accumulates w * (x - input_zp) per output
    channel (conv, depthwise, fully connected). weight_sums[c] = sum of channel c's weights.
    Returns (params after the weights, their const args, attrs with zero points and act range).

    Multipliers as TFLite's Prepare computes them: double(input_scale) * double(filter_scale) /
    double(output_scale) (PopulateConvolutionQuantizationParams), or, with float_product, the
    product taken in float first (GetQuantizedConvolutionMultipler, per-tensor FULLY_CONNECTED)."""
    from tinykiln.fixedpoint.prepare import quantize_multiplier

    channels = len(weight_sums)
    in_scale, in_zp = quant_params(x, "input", op)
    out_scale, out_zp = quant_params(y, "output", op)
    if w.quant is None:
        raise unsupported(op, "int8 weights without quantization")
    if any(z != 0 for z in w.quant.zero_point):
        raise unsupported(op, "int8 weights with a non-zero zero point (TFLite requires symmetric weights)")
    w_scales = list(w.quant.scale)
    if len(w_scales) == 1:
        w_scales = w_scales * channels
    elif len(w_scales) != channels:
        raise unsupported(op, f"{len(w_scales)} weight scales for {channels} output channels")
    f32 = np.float32
    if float_product:
        reals = [float(f32(in_scale) * f32(s)) / float(f32(out_scale)) for s in w_scales]
    else:
        reals = [float(f32(in_scale)) * float(f32(s)) / float(f32(out_scale)) for s in w_scales]
    pairs = [quantize_multiplier(r) for r in reals]
    attrs = dict(attrs, input_zp=in_zp, output_zp=out_zp, act=int8_act_attr(activation, out_scale, out_zp, op))
    # sum(w * (x - zp)) = sum(w * x) - zp * sum(w): the second term joins the bias
    base = np.zeros(channels, np.int64) if bias is None else np.asarray(bias, dtype=np.int64).reshape(-1)
    folded = base - in_zp * np.asarray(weight_sums, dtype=np.int64)
    if folded.min() < -(1 << 31) or folded.max() >= (1 << 31):
        raise unsupported(op, "the bias with the input zero point folded in overflows int32")
    # |acc| <= 128 * 128 per tap (int8 times int8), whatever the input (padding taps included)
    taps = int(np.asarray(w.data).size) // channels if w.data is not None else None
    acc_bound = None if taps is None else 128 * 128 * taps
    if op.kind == "FULLY_CONNECTED":
        attrs["rounding"] = "single"
        return _single_rounding_quant(folded, pairs, acc_bound, attrs)
    return _double_rounding_quant(folded, pairs, acc_bound, attrs)


def _double_rounding_quant(folded, pairs, acc_bound, attrs):
    """Params/args of a double-rounding requantization: the bias, and per-channel multipliers
    with, in the fused form, shift = rs - 1 (tinykiln.fixedpoint.fused.te_requantize_fused_double); the
    generic form (TFLite's shifts, attrs["requant"] = "tflite") where a channel has a left shift
    or rs = 0, or the accumulator could reach 2^30."""
    from tinykiln.fixedpoint.fused import FUSED_X_LIMIT, fused_double_shift

    channels = len(folded)
    shifts1 = [fused_double_shift(m, s) for m, s in pairs]
    fused = (acc_bound is not None and acc_bound + int(np.abs(folded).max()) < FUSED_X_LIMIT
             and all(s is not None for s in shifts1))
    if not fused:
        attrs["requant"] = "tflite"
    params = [param("bias", "int32", (channels,), "const")]
    args = [folded.astype(np.int32)]
    if len(set(pairs)) == 1:
        attrs["multiplier"], attrs["shift"] = pairs[0]
    else:
        params += [param("multiplier", "int32", (channels,), "const"),
                   param("shift", "int32", (channels,), "const")]
        args += [np.array([m for m, _ in pairs], dtype=np.int32),
                 np.array(shifts1 if fused else [s for _, s in pairs], dtype=np.int32)]
    return params, args, attrs


def _single_rounding_quant(folded, pairs, acc_bound, attrs):
    """Params/args of a single-rounding requantization (FULLY_CONNECTED). Fused form: an int64
    offset per channel (bias * m + rounding + zero point) replaces the bias; per-channel multipliers
    with shift = 31 - s - 32, which needs s <= -1 (a zero multiplier takes -1: its result is the
    zero point anyway). Else the generic form (attrs["requant"] = "tflite", the int32 bias)."""
    from tinykiln.fixedpoint.fused import fused_single_fits, fused_single_offset

    channels = len(folded)
    zp = attrs["output_zp"]
    per_channel = len(set(pairs)) > 1
    if per_channel:
        pairs = [(m, s if m else -1) for m, s in pairs]
    fused = acc_bound is not None and all(
        fused_single_fits(acc_bound, int(b), m, s, zp) and (s <= -1 or not per_channel)
        for b, (m, s) in zip(folded, pairs))
    if fused:
        params = [param("offset", "int64", (channels,), "const")]
        args = [np.array([fused_single_offset(int(b), m, s, zp) for b, (m, s) in zip(folded, pairs)],
                         dtype=np.int64)]
    else:
        attrs["requant"] = "tflite"
        params = [param("bias", "int32", (channels,), "const")]
        args = [folded.astype(np.int32)]
    if not per_channel:
        attrs["multiplier"], attrs["shift"] = pairs[0]
    else:
        params += [param("multiplier", "int32", (channels,), "const"),
                   param("shift", "int32", (channels,), "const")]
        args += [np.array([m for m, _ in pairs], dtype=np.int32),
                 np.array([-1 - s if fused else s for _, s in pairs], dtype=np.int32)]
    return params, args, attrs


def divisors_up_to(n: int, limit: int) -> list[int]:
    return [d for d in range(1, min(n, limit) + 1) if n % d == 0]


# --------------------------------------------------------------------------- shared TE stages and schedules

def padded_input(x, attrs, fill, channels_fn=None):
    """TE stage: the input with `fill` around it (inlined by the schedule into a select)."""
    from tvm import te, tirx

    n, h, w, c = attrs["in_shape"]
    pt, pb, pl, pr = attrs["pad"]
    if not any(attrs["pad"]):
        return x
    fill = tirx.const(fill, x.dtype)

    def value(b, r, s, ch):
        inside = tirx.all(r >= pt, r < pt + h, s >= pl, s < pl + w)
        return tirx.if_then_else(inside, x[b, r - pt, s - pl, ch], fill)

    return te.compute((n, h + pt + pb, w + pl + pr, c), value, name="pad")


def epilogue(spec, acc, oc_axis, bias_in_acc=False):
    """Params after the weights and the output stage: bias (or the int64 offset of a fused single
    rounding), requantization / clamp. bias_in_acc: the accumulators already start from the bias
    (double rounding only: the offset of a single rounding holds bias * multiplier)."""
    from tvm import te

    a = spec.attrs
    names = [p.name for p in spec.params]
    shape = acc.shape
    oc = spec.params[names.index("output")].shape[oc_axis]
    if spec.family.endswith("int8"):
        has_offset = "offset" in names
        first = (te.placeholder((oc,), "int64", name="offset") if has_offset
                 else te.placeholder((oc,), "int32", name="bias"))
        per_channel = "multiplier" in names
        mult = te.placeholder((oc,), "int32", name="multiplier") if per_channel else None
        shift = te.placeholder((oc,), "int32", name="shift") if per_channel else None

        def out(*idx):
            o = idx[oc_axis]
            offset = first[o] if has_offset else None
            total = acc[idx] if has_offset or bias_in_acc else acc[idx] + first[o]
            if per_channel:
                return requantize(total, a, mult[o], shift[o], offset=offset)
            return requantize(total, a, offset=offset)

        output = te.compute(shape, out, name="output")
        return [first, *([mult, shift] if per_channel else []), output]
    bias = te.placeholder((oc,), "float32", name="bias") if a["bias"] else None

    def out_f(*idx):
        value = acc[idx] + bias[idx[oc_axis]] if bias is not None else acc[idx]
        return clamp_float(value, a)

    output = te.compute(shape, out_f, name="output")
    return [*([bias] if bias is not None else []), output]


def schedule_accumulate(sch, spec, n_reduce):
    """Shared schedule of conv-like kernels (acc = reduction; output = epilogue, oc innermost):
    output channels split by oc_tile; the accumulators of one tile live in a small array on the C
    stack (TVM keeps temporaries under 1 KiB there), computed at the tile's loop, with the oc tile
    innermost so each input load feeds the tile. n_reduce: reduction axes of acc (documentation;
    the loops are found in the schedule, as compute_at drops unit ones)."""
    try:
        sch.compute_inline(sch.get_sblock("pad"))
    except Exception:  # no padding stage: nothing to inline
        pass
    tile = spec.knobs.get("oc_tile", 1)
    out = sch.get_sblock("output")
    acc = sch.get_sblock("acc")
    loops = sch.get_loops(out)
    oc_outer, oc_inner = sch.split(loops[-1], [None, tile])
    sch.compute_at(acc, oc_outer)
    # compute_at drops unit loops (a tile of 1, a 1x1 window): find what is left under the tile
    acc_loops = sch.get_loops(acc)
    outer = sch.get(oc_outer)
    depth = next(i for i, loop in enumerate(acc_loops) if sch.get(loop).same_as(outer))
    below = acc_loops[depth + 1:]
    spatial_inner = below[0] if tile > 1 else None
    reduce = below[1:] if tile > 1 else below
    if spatial_inner is not None and reduce:
        sch.reorder(*reduce, spatial_inner)
    if reduce:
        sch.decompose_reduction(acc, reduce[0])
    if spec.knobs.get("unroll") and tile > 1:
        sch.unroll(oc_inner)
        sch.unroll(spatial_inner)
        if reduce:
            sch.unroll(sch.get_loops(sch.get_sblock("acc_init"))[-1])


def _with_root(func, params, alloc_buffers):
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock, SBlockRealize

    realize = func.body
    root = realize.block
    block = SBlock(root.iter_vars, root.reads, root.writes, root.name_hint, root.body, root.init,
                   alloc_buffers, root.match_buffers, root.annotations)
    return tirx.PrimFunc(params, SBlockRealize(realize.iter_values, realize.predicate, block),
                         ret_type=func.ret_type, attrs=func.attrs)


def param_to_alloc(func, name):
    """`func` with its buffer param `name` turned into a buffer allocated in the root block, and the
    param's position. A scratch param is an output of the TE compute, and TVM's schedule does not
    compute_at an output block; as a temporary it can be computed per tile (and re-shaped by
    transform_layout to one tile's size). alloc_to_param puts it back."""
    index = next(i for i, p in enumerate(func.params) if p.name == name)
    params = [p for i, p in enumerate(func.params) if i != index]
    return _with_root(func, params, [*func.body.block.alloc_buffers, func.params[index]]), index


def alloc_to_param(func, name, index):
    """Undo param_to_alloc: the root block's buffer `name` becomes param number `index` again."""
    allocs = list(func.body.block.alloc_buffers)
    buffer = next(b for b in allocs if b.name == name)
    params = list(func.params)
    params.insert(index, buffer)
    return _with_root(func, params, [b for b in allocs if not b.same_as(buffer)])


def unmark_opaque(func, keep):
    """rolling_buffer marks the rolling loop's block iter vars opaque in every block under it (so no
    later schedule step reorders that loop); once scheduling is done, make them spatial again in
    the blocks other than `keep`: lowering only shrinks a block's temporaries (the accumulators) to
    one tile when its iter vars are not opaque."""
    import tvm_ffi
    from tvm import tirx
    from tvm.s_tir.stmt import SBlock

    def fix(block):
        if block.name_hint == keep or not any(v.iter_type == tirx.IterVar.Opaque for v in block.iter_vars):
            return block
        iter_vars = [tirx.IterVar(v.dom, v.var, tirx.IterVar.DataPar if v.iter_type == tirx.IterVar.Opaque
                                  else v.iter_type, v.thread_tag) for v in block.iter_vars]
        return SBlock(iter_vars, block.reads, block.writes, block.name_hint, block.body, block.init,
                      block.alloc_buffers, block.match_buffers, block.annotations)

    return tvm_ffi.structural_map(func, (SBlock, fix), order="post")


def widen_rolling(func, name, rows, axis=1):
    """Make the rolling buffer param `name` (rolling_buffer folded axis `axis` to `rows` rows, row r in
    slot r % rows) `pow2_at_least(rows)` rows deep, row r in slot r % that: the same rolling buffer
    (a slot is overwritten only by a row at least that many rows later, after every window that
    reads the older row), but the slot is a mask instead of a division where the consumer computes it
    per call."""
    import tvm
    import tvm_ffi
    from tvm import tirx

    deep = pow2_at_least(rows)
    if deep == rows:
        return func
    old = next(p for p in func.params if p.name == name)
    shape = list(old.shape)
    shape[axis] = deep
    new = tirx.decl_buffer(shape, old.dtype, name)

    def slot(index):
        if isinstance(index, tirx.FloorMod) and isinstance(index.b, tirx.IntImm) and index.b.value == rows:
            return tirx.floormod(index.a, deep)
        raise AssertionError(f"{name}: rolling index {index} is not (row % {rows})")

    def indices(values):
        return [slot(v) if i == axis else v for i, v in enumerate(values)]

    def load(node):
        return tirx.BufferLoad(new, indices(node.indices)) if node.source.same_as(old) else node

    def store(node):
        return tirx.BufferStore(new, node.value, indices(node.indices)) if node.buffer.same_as(old) else node

    def region(node):
        if not node.source.same_as(old):
            return node
        ranges = [tvm.ir.Range.from_min_extent(slot(r.min), r.extent) if i == axis else r
                  for i, r in enumerate(node.region)]
        return tirx.BufferRegion(new, ranges)

    params = [new if p.same_as(old) else p for p in func.params]
    body = tvm_ffi.structural_map(func.body, [(tvm.ir.TensorLoad, load), (tirx.BufferStore, store),
                                              (tvm.ir.TensorRegion, region)], order="post")
    return tirx.PrimFunc(params, body, ret_type=func.ret_type, attrs=func.attrs)


def pow2_at_least(n: int) -> int:
    return 1 << (n - 1).bit_length()
