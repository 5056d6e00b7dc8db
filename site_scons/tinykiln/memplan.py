"""Static arena planner: every intermediate tensor and every kernel's scratch space gets a fixed offset
in one activation arena, computed at build time.

Time is measured in steps: step i is the i-th kernel call of the LoweredModel. A buffer is live over
an inclusive interval of steps [first, last]; two buffers whose intervals intersect must not overlap in
the arena. Graph inputs are live from step 0 (the caller writes them before the run) and graph outputs
until the last step (the caller reads them after the run). Reshape-like ops alias their input: the
whole alias group is one buffer, live over the union of its members' lifetimes.

Placing intervals at minimum total height is NP-hard, so the planner tries several greedy orders (by
size, by lifetime, by area, by start, plus a few seeded shuffles) with first-fit and best-fit gap
choice, then bisects a ceiling below that result with two-sided placement (a buffer may sit at the
top of a gap, so a chain can ping-pong between the arena's ends), and keeps the smallest arena. The
lower bound it reports is the largest sum of sizes of
buffers live at the same step: no plan can beat it, and the gap between the two is the planner's loss.

Variable tensors (a stateful model's state, graph.Tensor.variable) are not in the arena: they live
from one run to the next, so they are laid out one after the other in a region of their own, the
state (`state_offsets`, `state_size`), which AOT makes a static buffer cleared by reset.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from . import KilnError
from .graph import Graph
from .kernel import LoweredModel

DEFAULT_ALIGNMENT = 16


@dataclass(frozen=True)
class Buffer:
    """One thing that needs arena bytes over a range of steps."""

    key: object  # ("tensor", root tensor index) or ("scratch", call index, param index)
    size: int
    first: int
    last: int

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class MemoryPlan:
    arena_size: int  # bytes, a multiple of the alignment
    lower_bound: int  # largest sum of sizes of buffers live at one step (unaligned sizes)
    alignment: int
    tensor_offsets: dict[int, int]  # every arena tensor, aliases included -> byte offset
    scratch_offsets: dict[tuple[int, int], int]  # (call index, param index) -> byte offset
    buffers: list[Buffer] = field(default_factory=list)
    offsets: dict[object, int] = field(default_factory=dict)  # Buffer.key -> offset
    strategy: str = ""  # which ordering won, for reports and curiosity
    state_offsets: dict[int, int] = field(default_factory=dict)  # variable tensor -> offset in the state
    state_size: int = 0  # bytes of the state region, a multiple of the alignment (0: a stateless model)


def _align(value: int, alignment: int) -> int:
    return (value + alignment - 1) // alignment * alignment


def lower_bound(buffers: list[Buffer]) -> int:
    """The largest sum of sizes of buffers live at the same step."""
    if not buffers:
        return 0
    events: dict[int, int] = {}
    for b in buffers:
        events[b.first] = events.get(b.first, 0) + b.size
        events[b.last + 1] = events.get(b.last + 1, 0) - b.size
    best = live = 0
    for step in sorted(events):
        live += events[step]
        best = max(best, live)
    return best


def _place(order: list[Buffer], alignment: int, best_fit: bool) -> tuple[dict[object, int], int]:
    """Greedy placement: each buffer goes into a gap between the buffers already placed that are live
    at the same time (the lowest gap that fits, or the tightest one), else on top of them."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[object, int] = {}
    top = 0
    for buf in order:
        busy = sorted(
            (off, off + b.size) for b, off in placed if b.overlaps_in_time(buf)
        )
        choice = None
        choice_gap = None
        cursor = 0
        for start, end in busy:
            candidate = _align(cursor, alignment)
            gap = start - candidate
            if gap >= buf.size:
                if not best_fit:
                    choice = candidate
                    break
                if choice_gap is None or gap < choice_gap:
                    choice, choice_gap = candidate, gap
            cursor = max(cursor, end)
        if choice is None:
            choice = _align(cursor, alignment)
        offsets[buf.key] = choice
        placed.append((buf, choice))
        top = max(top, choice + buf.size)
    return offsets, _align(top, alignment)


def _place_under(order: list[Buffer], alignment: int, ceiling: int) -> dict[object, int] | None:
    """Placement under a fixed arena size, or None if this order does not fit. Each buffer may go to
    the bottom or the top of any free gap; it takes the spot that leaves the largest free gap among
    the buffers live with it. Top placement is what lets a chain ping-pong between the two ends of
    the arena, which bottom-first greedy cannot do. Spots flush against either end of the arena win
    over spots in the middle."""
    placed: list[tuple[Buffer, int]] = []
    offsets: dict[object, int] = {}
    for buf in order:
        busy = sorted((off, off + b.size) for b, off in placed if b.overlaps_in_time(buf))
        gaps = []
        cursor = 0
        for start, end in busy:
            if start > cursor:
                gaps.append((cursor, start))
            cursor = max(cursor, end)
        if ceiling > cursor:
            gaps.append((cursor, ceiling))
        candidates = set()
        for start, end in gaps:
            low = _align(start, alignment)
            if low + buf.size <= end:
                candidates.add(low)
                high = (end - buf.size) // alignment * alignment
                candidates.add(high)
        if not candidates:
            return None

        def largest_gap_left(off: int) -> int:
            intervals = sorted(busy + [(off, off + buf.size)])
            best, cur = 0, 0
            for start, end in intervals:
                best = max(best, start - cur)
                cur = max(cur, end)
            return max(best, ceiling - cur)

        def score(off: int) -> tuple[bool, int, int]:
            # Flush against either end of the arena first: the free space stays in one piece.
            flush = off == 0 or off + buf.size > ceiling - alignment
            return (flush, largest_gap_left(off), -off)

        choice = max(candidates, key=score)
        offsets[buf.key] = choice
        placed.append((buf, choice))
    return offsets


_ORDERINGS = {
    "size": lambda b: (-b.size, b.first, str(b.key)),
    "lifetime": lambda b: (-(b.last - b.first), -b.size, str(b.key)),
    "area": lambda b: (-b.size * (b.last - b.first + 1), str(b.key)),
    "start": lambda b: (b.first, -b.size, str(b.key)),
    "conflicts": None,  # filled in per problem: most time-overlapping neighbours first
}


def place_buffers(
    buffers: list[Buffer], alignment: int = DEFAULT_ALIGNMENT, shuffles: int = 8, seed: int = 0
) -> tuple[dict[object, int], int, str]:
    """Offsets for every buffer, the arena size, and the name of the winning strategy.

    Deterministic for a given input (seeded shuffles), so rebuilds produce the same model.c."""
    if alignment <= 0 or alignment & (alignment - 1):
        raise KilnError(f"arena alignment must be a power of two, got {alignment}")
    if not buffers:
        return {}, 0, "empty"
    orders: dict[str, list[Buffer]] = {}
    for name, key in _ORDERINGS.items():
        if key is None:
            degree = {b.key: sum(b.overlaps_in_time(o) for o in buffers) for b in buffers}
            orders[name] = sorted(buffers, key=lambda b: (-degree[b.key], -b.size, str(b.key)))
        else:
            orders[name] = sorted(buffers, key=key)
    rng = random.Random(seed)
    for i in range(shuffles):
        order = list(orders["size"])
        rng.shuffle(order)
        orders[f"shuffle{i}"] = order
    best: tuple[int, str, dict[object, int]] | None = None
    for name, order in orders.items():
        for best_fit in (False, True):
            offsets, size = _place(order, alignment, best_fit)
            label = f"{name}/{'best' if best_fit else 'first'}-fit"
            if best is None or size < best[0]:
                best = (size, label, offsets)
    size, label, offsets = best
    # Then try to squeeze below the greedy result with two-sided placement under a ceiling, by
    # bisection per order (fitting is not strictly monotonic in the ceiling; close enough to search).
    floor = _align(lower_bound(buffers), alignment)
    for name, order in orders.items():
        lo, hi = floor, size - alignment
        while lo <= hi:
            mid = _align((lo + hi) // 2, alignment)
            if mid > hi:
                mid = hi
            attempt = _place_under(order, alignment, mid)
            if attempt is None:
                lo = mid + alignment
            else:
                size, label, offsets = mid, f"{name}/two-sided", attempt
                hi = mid - alignment
    return offsets, size, label


def resolve_alias(aliases: dict[int, int], tensor: int) -> int:
    seen = set()
    while tensor in aliases:
        if tensor in seen:
            raise KilnError(f"tensor {tensor} aliases itself through a cycle: a lowering bug")
        seen.add(tensor)
        tensor = aliases[tensor]
    return tensor


def collect_buffers(graph: Graph, lowered: LoweredModel) -> list[Buffer]:
    """Arena buffers of a lowered graph: alias groups of non-constant tensors, and kernel scratch."""
    n = len(lowered.calls)
    last_step = max(n - 1, 0)
    spans: dict[int, list[int]] = {}  # root tensor -> [first, last]
    sizes: dict[int, int] = {}

    def touch(tensor: int, step: int, constant_too: bool = False) -> None:
        if graph.tensor(tensor).variable or (graph.tensor(tensor).is_constant and not constant_too):
            return
        root = resolve_alias(lowered.aliases, tensor)
        if graph.tensor(root).is_constant and not constant_too:
            return
        span = spans.setdefault(root, [step, step])
        span[0] = min(span[0], step)
        span[1] = max(span[1], step)
        sizes[root] = max(sizes.get(root, 0), graph.tensor(tensor).nbytes, graph.tensor(root).nbytes)

    for t in graph.inputs:
        touch(t, 0)
    scratch: list[Buffer] = []
    for step, call in enumerate(lowered.calls):
        if len(call.args) != len(call.spec.params):
            raise KilnError(
                f"call {step} ({call.spec.function_name}) has {len(call.args)} args for "
                f"{len(call.spec.params)} params: a lowering bug"
            )
        for p_index, (param, arg) in enumerate(zip(call.spec.params, call.args)):
            if param.role in ("input", "output"):
                touch(int(arg), step)
            elif param.role == "scratch" and param.nbytes > 0:
                scratch.append(Buffer(("scratch", step, p_index), param.nbytes, step, step))
    # a constant model output (an SSD's anchors, folded at import) gets a slot too: model.c copies
    # the constant there after the last kernel (aot.py)
    for t in graph.outputs:
        touch(t, last_step, constant_too=True)
    tensors = [
        Buffer(("tensor", root), sizes[root], first, last)
        for root, (first, last) in sorted(spans.items())
        if sizes[root] > 0
    ]
    return tensors + scratch


def plan(graph: Graph, lowered: LoweredModel, alignment: int = DEFAULT_ALIGNMENT) -> MemoryPlan:
    buffers = collect_buffers(graph, lowered)
    offsets, arena_size, strategy = place_buffers(buffers, alignment)
    tensor_offsets: dict[int, int] = {}
    scratch_offsets: dict[tuple[int, int], int] = {}
    for key, off in offsets.items():
        if key[0] == "tensor":
            tensor_offsets[key[1]] = off
        else:
            scratch_offsets[(key[1], key[2])] = off
    # Aliases share their root's bytes.
    for t in lowered.aliases:
        root = resolve_alias(lowered.aliases, t)
        if root in tensor_offsets:
            tensor_offsets[t] = tensor_offsets[root]
    state_offsets, state_size = plan_state(graph, alignment)
    return MemoryPlan(
        state_offsets=state_offsets,
        state_size=state_size,
        arena_size=arena_size,
        lower_bound=lower_bound(buffers),
        alignment=alignment,
        tensor_offsets=tensor_offsets,
        scratch_offsets=scratch_offsets,
        buffers=buffers,
        offsets=offsets,
        strategy=strategy,
    )


def plan_state(graph: Graph, alignment: int = DEFAULT_ALIGNMENT) -> tuple[dict[int, int], int]:
    """The state region: every variable tensor the ops use, one after the other (all live always)."""
    offsets: dict[int, int] = {}
    top = 0
    for index in graph.variables:
        offsets[index] = top
        top = _align(top + graph.tensor(index).nbytes, alignment)
    return offsets, top
