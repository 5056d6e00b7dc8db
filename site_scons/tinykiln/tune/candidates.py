"""Which knob sets a kernel is measured with, and which measured one wins.

    candidates(spec, space, trials) -> [Candidate]   the default first, then a seeded draw
    choose_best(records) -> record | None             the fastest correct one, or a smaller close one
"""
from __future__ import annotations

import itertools
import json
import math
import random
from dataclasses import dataclass

# Unrolling and wide tiles buy a fraction of a percent at times for kilobytes of flash on every
# board the model ships to (resnet8's fastest schedules: 0.3% fewer instructions, 18 KB more code).
# A candidate this close to the fastest count wins if its kernel is smaller.
CODE_SLACK = 0.005


@dataclass
class Candidate:
    index: int  # 0 = the default knobs
    knobs: dict

    @property
    def key(self) -> str:
        return json.dumps(self.knobs, sort_keys=True)

    @property
    def tag(self) -> str:
        return "default" if self.index == 0 else f"c{self.index}"


def candidates(spec, space: dict, trials: int, committed: dict | None = None) -> list[Candidate]:
    """The default knobs, then the committed ones (the schedule file's, when they are still a point
    of `space`: a short re-tune must not lose them), then up to trials-1 other points of `space`,
    drawn without repeats with a generator seeded by the workload key (the same list on every run)."""
    names = sorted(space)
    default = {n: space[n][0] for n in names}
    out = [Candidate(0, default)]
    # a knob newer than the schedule file takes its default; a knob no longer in the space makes it stale
    knobs = {n: (committed or {}).get(n, default[n]) for n in names}
    if committed and set(committed) <= set(names) and all(knobs[n] in space[n] for n in names) \
            and knobs != default:
        out.append(Candidate(1, knobs))
        trials += 1
    total = math.prod(len(space[n]) for n in names)
    rng = random.Random(spec.workload_key)
    if total <= 4096:
        points = list(itertools.product(*(range(len(space[n])) for n in names)))
        rng.shuffle(points)
    else:
        points = (tuple(rng.randrange(len(space[n])) for n in names) for _ in range(20 * trials))
    seen = {out[0].key}
    for point in points:
        if len(out) >= trials:
            break
        knobs = {n: space[n][i] for n, i in zip(names, point)}
        c = Candidate(len(out), knobs)
        if c.key not in seen:
            seen.add(c.key)
            out.append(c)
    return out


def choose_best(records: list[dict], slack: float = CODE_SLACK) -> dict | None:
    """The fastest correct record, or, among those within `slack` of its count, the one with the
    least code (records without code_bytes compete on count alone)."""
    ok = [r for r in records if r.get("ok")]
    if not ok:
        return None
    fastest = min(ok, key=lambda r: r["count"])
    close = [r for r in ok if r["count"] <= fastest["count"] * (1 + slack) and r.get("code_bytes") is not None]
    if fastest.get("code_bytes") is None or not close:
        return fastest
    return min(close, key=lambda r: (r["code_bytes"], r["count"]))
