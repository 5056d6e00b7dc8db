"""optimize=speed|balanced|size: which kernels may keep their weights re-packed as int16 in flash.

The DSP micro-kernels of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED run fastest on weights
re-packed as int16 (two to three times the .tflite's weight bytes); each family also has layouts
that keep the weights int8 (its KernelFamily.int8_weights: the knob values that do). This module
decides, per weight-carrying op, which of the two the default knobs take:

  size      int8 weights everywhere (the overrides win over a schedule file's knobs too);
  speed     int16 wherever it applies, as long as the weights fit (FIT_SHARE of their region);
  balanced  int8 weights, except where int16 buys a meaningful speedup: int16 costs
            one extra byte per weight (depthwise ROW16 more) and saves SAVED_PER_MAC instructions
            on every multiply-accumulate (the micro-kernels' inner loops: the SXTB16s the int8
            layouts add); an op (with the ops of its shape) keeps int16 when that saving is at
            least BALANCED_MIN_SAVING of the model's conv / depthwise / FC MACs (about as much of
            its instructions) and the extra bytes stay within BALANCED_GROWTH of the model's int8
            weight bytes, best saving per extra byte first, and the whole fits.

plan(graph, mode, region_bytes) -> Plan   the decision, per op (ops of the same shapes decide alike:
                                          identical layers share one kernel, so one set of knobs)
Plan.int8(op_index) -> bool              that op's weights stay int8
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinykiln.options import OPTIMIZE_MODES as MODES
# balanced: int16 re-packing may add at most this share to the model's int8 weight bytes (the issue's
# goal: weights <= 1.05x the .tflite's constant bytes)
BALANCED_GROWTH = 0.05
# balanced: int16 only for an op whose saving is at least this share of the model's MACs
BALANCED_MIN_SAVING = 0.01
# instructions int16 weights save per MAC over the int8 layouts (from the inner loops: FC 4 rows x 4
# inputs 19 vs 11; conv 3 x 2 blocks 21 vs 17 per 24 MACs, 2 x 2 16 vs 12 per 16; depthwise three
# taps one LDR + 2 SXTB16 vs one LDRD per filter row and up to six outputs)
SAVED_PER_MAC = {"CONV_2D": 0.2, "DEPTHWISE_CONV_2D": 0.15, "FULLY_CONNECTED": 0.5}
# the weights may fill at most this share of their memory region: the rest is left for the code and
# the runtime, which share that region on most boards (the link still checks the real sizes)
FIT_SHARE = 0.75
# ops whose weights the int16 layouts re-pack, and the axis of their weights' output channels
WEIGHTED = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 3, "FULLY_CONNECTED": 0}


@dataclass(frozen=True)
class Plan:
    mode: str = "speed"
    int16_ops: frozenset | None = None  # op indices that may keep int16 weights; None: every op

    def int8(self, op_index: int) -> bool:
        return self.int16_ops is not None and op_index not in self.int16_ops

    @property
    def forced(self) -> bool:
        """The int8 choice wins over a schedule file's knobs (optimize=size)."""
        return self.mode == "size"


@dataclass(frozen=True)
class WeightedOp:
    op_index: int
    shape_key: tuple  # ops with equal keys lower to the same kernel specs
    weight_bytes: int  # int8, as in the .tflite
    extra_bytes: int  # what the int16 layouts add
    reuse: float  # MACs per weight

    @property
    def saving(self) -> float:
        """Instructions int16 weights save per inference (an estimate: SAVED_PER_MAC)."""
        return SAVED_PER_MAC[self.shape_key[0]] * self.reuse * self.weight_bytes


def weighted_ops(graph) -> list[WeightedOp]:
    """The ops whose weights an int16 layout would re-pack, with their bytes and reuse."""
    found = []
    for op in graph.ops:
        axis = WEIGHTED.get(op.kind)
        if axis is None or len(op.inputs) < 2:
            continue
        w, y = graph.tensors[op.inputs[1]], graph.tensors[op.outputs[0]]
        if not w.is_constant or w.dtype not in ("int8", "uint8"):
            continue
        count = int(np.prod(w.shape))
        channels = int(w.shape[axis])
        reuse = int(np.prod(y.shape)) / max(channels, 1)
        extra = count
        if op.kind == "DEPTHWISE_CONV_2D":
            from .depthwise_conv2d import row16_taps

            kw = int(w.shape[2])
            extra = 2 * count * row16_taps(kw)[0] // kw - count
        x = graph.tensors[op.inputs[0]]
        key = (op.kind, tuple(x.shape), tuple(w.shape), tuple(y.shape),
               repr(sorted(op.attrs.items())))
        found.append(WeightedOp(op.index, key, count, extra, reuse))
    return found


def constant_bytes(graph) -> int:
    """Bytes of every constant tensor of the graph as the .tflite stores them."""
    return sum(t.nbytes for t in graph.tensors if t.is_constant)


def plan(graph, mode: str = "balanced", region_bytes: int | None = None) -> Plan:
    """Which ops keep int16 weights under `mode`, with the weights' region of `region_bytes` (None:
    no limit)."""
    if mode not in MODES:
        raise ValueError(f"optimize={mode!r}: not one of {', '.join(MODES)}")
    if mode == "size":
        return Plan(mode, frozenset())
    ops = weighted_ops(graph)
    fit = float("inf") if region_bytes is None else FIT_SHARE * region_bytes - constant_bytes(graph)
    if mode == "speed" and sum(o.extra_bytes for o in ops) <= fit:
        return Plan(mode, None)  # today's choices: int16 wherever a family's defaults take it
    budget = fit if mode == "speed" else min(fit, BALANCED_GROWTH * sum(o.weight_bytes for o in ops))
    macs = sum(o.reuse * o.weight_bytes for o in ops)
    groups: dict[tuple, list[WeightedOp]] = {}
    for o in ops:
        groups.setdefault(o.shape_key, []).append(o)
    keep: set[int] = set()
    spent = 0.0
    # best saving per extra byte first (the reuse, scaled by the family's saving per MAC)
    for members in sorted(groups.values(), key=lambda g: (-g[0].saving / max(g[0].extra_bytes, 1), g[0].op_index)):
        extra = sum(o.extra_bytes for o in members)
        saving = sum(o.saving for o in members)
        meaningful = mode == "speed" or saving >= BALANCED_MIN_SAVING * macs
        if meaningful and spent + extra <= budget:
            spent += extra
            keep.update(o.op_index for o in members)
    return Plan(mode, frozenset(keep))


# the kernel families whose int16 weight layouts have an int8 twin (their KernelFamily.int8_weights)
INT8_TWINS = ("conv2d_int8", "depthwise_conv2d_int8", "fully_connected_int8")


def int16_extra(lowered) -> int:
    """The bytes the lowered model's int16 weight layouts take over int8 ones (half of each int16
    weight array whose family has an int8 twin, uint8 weights with a zero point excepted)."""
    extra = 0
    for call in lowered.calls:
        if call.spec.family not in INT8_TWINS or call.spec.attrs.get("wide_weights"):
            continue
        weights = call.args[1]
        if isinstance(weights, np.ndarray) and weights.dtype == np.int16:
            extra += weights.nbytes // 2
    return extra
