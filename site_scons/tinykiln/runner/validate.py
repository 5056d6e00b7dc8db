"""Validation: run inputs on the device, run them on LiteRT's reference kernels, compare every output.

    result = validate(runner, Reference(model.path), input_sets)
    print(verdict_line(result, model.name))

Integer outputs must be bit-exact (a difference is a bug, never a tolerance). float32 outputs pass
within FLOAT_RTOL relative: |device - ref| <= FLOAT_RTOL * max(|ref|, FLOAT_RTOL_FLOOR * max |ref of
that output|), so values near zero are compared against the output's scale, not against zero.

A stateful model (its state survives a run) is validated in sequences of SEQUENCE invocations: device
and LiteRT are both reset before each sequence, then every step of it is compared, so the state
carried from step to step is checked too (sequence_runs rounds a run count up to whole sequences).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinykiln import KilnError
from tinykiln.options import BY_KEY

FLOAT_RTOL = 1e-5
FLOAT_RTOL_FLOOR = 1e-3
DEFAULT_SEED = BY_KEY["seed"].default  # seed= (tinykiln.options owns the default)
SEQUENCE = 10  # invocations per sequence of a stateful model, between resets


def sequence_runs(n: int, state_bytes: int) -> int:
    """How many random runs validate n for a model with that much state: whole sequences if stateful."""
    return n if not state_bytes else -(-n // SEQUENCE) * SEQUENCE


def random_inputs(descs, n: int, seed: int = DEFAULT_SEED) -> list[list[np.ndarray]]:
    """n seeded input sets: integers over their dtype's whole range, floats uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    sets = []
    for _ in range(n):
        arrays = []
        for d in descs:
            dtype = np.dtype("int8" if d.dtype == "bool" else d.dtype)
            if d.dtype == "bool":
                arrays.append(rng.integers(0, 2, d.shape, dtype=dtype))
            elif np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                lo, hi = (info.min, info.max) if dtype.itemsize <= 2 else (-1000, 1000)
                arrays.append(rng.integers(lo, hi, d.shape, dtype=dtype, endpoint=True))
            else:
                arrays.append(rng.uniform(-1.0, 1.0, d.shape).astype(dtype))
        sets.append(arrays)
    return sets


@dataclass
class OutputStats:
    index: int
    name: str
    dtype: str
    runs_mismatching: int = 0
    elements_mismatching: int = 0
    max_abs_diff: float = 0.0


@dataclass
class ValidationResult:
    runs: int
    random_runs: int
    sample_runs: int
    outputs: list[OutputStats]
    cycles: list[int] = field(default_factory=list)
    cycle_unit: str = ""
    sequence: int = 0  # a stateful model's invocations per sequence (0: independent runs)

    @property
    def passed(self) -> bool:
        return all(o.runs_mismatching == 0 for o in self.outputs)

    @property
    def bit_exact(self) -> bool:
        return all(o.max_abs_diff == 0 for o in self.outputs)

    @property
    def max_abs_diff(self) -> float:
        return max((o.max_abs_diff for o in self.outputs), default=0.0)

    def to_json(self) -> dict:
        return {
            "runs": self.runs,
            "random_runs": self.random_runs,
            "sample_runs": self.sample_runs,
            "passed": self.passed,
            "bit_exact": self.bit_exact,
            "max_abs_difference": self.max_abs_diff,
            "float_rtol": FLOAT_RTOL,
            "mismatching_outputs": [
                {"index": o.index, "name": o.name, "dtype": o.dtype, "runs": o.runs_mismatching,
                 "elements": o.elements_mismatching, "max_abs_difference": o.max_abs_diff}
                for o in self.outputs if o.runs_mismatching
            ],
            "cycles_per_inference": _median(self.cycles),
            "cycle_unit": self.cycle_unit,
            **({"sequence_length": self.sequence} if self.sequence else {}),
        }


def _median(values: list[int]) -> int | None:
    return int(np.median(values)) if values else None


def compare(device: np.ndarray, reference: np.ndarray) -> tuple[int, float]:
    """(elements out of tolerance, max abs difference) of one output."""
    if device.shape != reference.shape and device.size == reference.size:
        reference = reference.reshape(device.shape)
    if device.shape != reference.shape:
        raise KilnError(f"output shapes differ: device {list(device.shape)}, reference "
                        f"{list(reference.shape)}: the firmware was built from another model")
    if np.issubdtype(device.dtype, np.floating):
        ref = reference.astype(np.float64)
        dev = device.astype(np.float64)
        diff = np.abs(dev - ref)
        if not np.all(np.isfinite(dev) == np.isfinite(ref)):
            return int(np.count_nonzero(np.isfinite(dev) != np.isfinite(ref))), float("inf")
        finite = np.isfinite(ref)
        scale = np.max(np.abs(ref[finite])) if finite.any() else 0.0
        allowed = FLOAT_RTOL * np.maximum(np.abs(ref), FLOAT_RTOL_FLOOR * scale)
        bad = finite & (diff > allowed) | (~finite & (dev != ref))
        return int(np.count_nonzero(bad)), float(np.max(np.where(finite, diff, 0), initial=0.0))
    diff = np.abs(device.astype(np.int64) - reference.astype(np.int64))
    return int(np.count_nonzero(diff)), float(diff.max(initial=0))


def validate(runner, reference, input_sets: list[list[np.ndarray]], sample_runs: int = 0,
             progress=None, sequence: int = 0) -> ValidationResult:
    """sequence > 0 (a stateful model): device and reference are reset before runs 0, sequence,
    2 * sequence, ... and before the samples."""
    info = runner.info
    stats = [OutputStats(i, d.name, d.dtype) for i, d in enumerate(info.outputs)]
    if len(reference.outputs) != len(info.outputs):
        raise KilnError(f"the device has {len(info.outputs)} output(s), the .tflite "
                        f"{len(reference.outputs)}: the firmware was built from another model")
    result = ValidationResult(len(input_sets), len(input_sets) - sample_runs, sample_runs, stats,
                              cycle_unit=info.cycle_unit, sequence=sequence)
    random_runs = len(input_sets) - sample_runs
    for run, inputs in enumerate(input_sets):
        if sequence and (run < random_runs and run % sequence == 0 or run == random_runs):
            runner.reset()
            reference.reset()
        outputs, profile = runner.invoke(inputs)
        result.cycles.append(profile["cycles"])
        expected = reference.run(inputs)
        for s, dev, ref in zip(stats, outputs, expected):
            bad, max_diff = compare(dev, ref)
            if bad:
                s.runs_mismatching += 1
                s.elements_mismatching += bad
            s.max_abs_diff = max(s.max_abs_diff, max_diff)
        if progress:
            progress(run + 1, len(input_sets))
    return result


def verdict_line(result: ValidationResult, model: str, board: str) -> str:
    kinds = "bit-exact" if result.bit_exact else (
        f"within rtol {FLOAT_RTOL:g}" if result.passed else "MISMATCH")
    verdict = "PASS" if result.passed else "FAIL"
    runs = f"{result.runs} runs ({result.random_runs} random, {result.sample_runs} sample)"
    line = f"validation {verdict}: {model} on {board}, {runs}, {kinds} vs LiteRT reference kernels"
    if not result.passed:
        bad = ", ".join(f"output {o.index} '{o.name}' in {o.runs_mismatching} run(s), "
                        f"{o.elements_mismatching} element(s), max |diff| {o.max_abs_diff:g}"
                        for o in result.outputs if o.runs_mismatching)
        line += f"; mismatching: {bad}"
    elif not result.bit_exact:
        line += f" (max |diff| {result.max_abs_diff:g})"
    median = _median(result.cycles)
    if median is not None:
        line += f"; {median} {result.cycle_unit}/inference (median)"
    return line
