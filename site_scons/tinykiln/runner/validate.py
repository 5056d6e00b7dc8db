"""Validation: run inputs on the device, run them on LiteRT's reference kernels, compare every output.

    result = validate(runner, Reference(model.path), input_sets)
    print(verdict_line(result, model.name))

Integer outputs must be bit-exact (a difference is a bug, never a tolerance). float32 outputs pass
within FLOAT_RTOL relative: |device - ref| <= FLOAT_RTOL * max(|ref|, FLOAT_RTOL_FLOOR * max |ref of
that output|), so values near zero are compared against the output's scale, not against zero. This
module is the one owner of that tolerance. It is the same on every board: float kernels are built
without fused multiply-adds (boards.FLOAT_CFLAGS), so a core with FMA computes what LiteRT computes;
what remains is libm (expf, tanhf) against LiteRT's.

The reference may be a corrected copy of the file (runner/reference.py: LiteRT refuses a deviation
the importer tolerates): the result says what was corrected. When LiteRT cannot run the model at
all (`reference` is a NoReference), the inputs still run on the device but nothing is compared: the
result is not a pass (`compared` False), and the build fails saying so.

A stateful model (its state survives a run) is validated in sequences of SEQUENCE invocations: device
and LiteRT are both reset before each sequence, then every step of it is compared, so the state
carried from step to step is checked too (sequence_runs rounds a run count up to whole sequences).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinykiln import KilnError
from tinykiln.options import BY_KEY

from .reference import NoReference

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
    no_reference: str = ""  # why nothing was compared (LiteRT's error), "" when compared
    corrections: list[str] = field(default_factory=list)  # what the reference's copy corrected
    refused: str = ""  # LiteRT's error on the file as it is, when a corrected copy was the reference

    @property
    def compared(self) -> bool:
        return not self.no_reference
    sequence: int = 0  # a stateful model's invocations per sequence (0: independent runs)

    @property
    def passed(self) -> bool:
        return self.compared and all(o.runs_mismatching == 0 for o in self.outputs)

    @property
    def bit_exact(self) -> bool:
        return self.compared and all(o.max_abs_diff == 0 for o in self.outputs)

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
            "compared": self.compared,
            "reference": ("none" if not self.compared else
                          "litert (corrected copy)" if self.corrections else "litert"),
            "reference_error": self.no_reference or self.refused,
            "corrections": list(self.corrections),
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
    """Run every input set on the device and on the reference, compare. `reference` is a
    runner.reference.Reference, or the NoReference it raised: the inputs then run on the device
    (cycles counted) and nothing is compared. sequence > 0 (a stateful model): device and reference
    are reset before runs 0, sequence, 2 * sequence, ... and before the samples."""
    info = runner.info
    stats = [OutputStats(i, d.name, d.dtype) for i, d in enumerate(info.outputs)]
    result = ValidationResult(len(input_sets), len(input_sets) - sample_runs, sample_runs, stats,
                              cycle_unit=info.cycle_unit, sequence=sequence)
    if isinstance(reference, NoReference):
        result.no_reference = str(reference)
    else:
        if len(reference.outputs) != len(info.outputs):
            raise KilnError(f"the device has {len(info.outputs)} output(s), the .tflite "
                            f"{len(reference.outputs)}: the firmware was built from another model")
        result.corrections = [str(c) for c in getattr(reference, "corrections", ())]
        result.refused = getattr(reference, "refused", "")
    random_runs = len(input_sets) - sample_runs
    for run, inputs in enumerate(input_sets):
        if sequence and (run < random_runs and run % sequence == 0 or run == random_runs):
            runner.reset()
            if result.compared:
                reference.reset()
        outputs, profile = runner.invoke(inputs)
        result.cycles.append(profile["cycles"])
        if not result.compared:
            if progress:
                progress(run + 1, len(input_sets))
            continue
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
    runs = f"{result.runs} runs ({result.random_runs} random, {result.sample_runs} sample)"
    median = _median(result.cycles)
    cycles = f"; {median} {result.cycle_unit}/inference (median)" if median is not None else ""
    if not result.compared:
        return (f"validation NOT COMPARED: {model} on {board}, {runs} ran on the device, none compared "
                f"with a reference: {result.no_reference}{cycles}")
    kinds = "bit-exact" if result.bit_exact else (
        f"within rtol {FLOAT_RTOL:g}" if result.passed else "MISMATCH")
    verdict = "PASS" if result.passed else "FAIL"
    against = " (a corrected copy: see above)" if result.corrections else ""
    line = f"validation {verdict}: {model} on {board}, {runs}, {kinds} vs LiteRT reference kernels{against}"
    if not result.passed:
        bad = ", ".join(f"output {o.index} '{o.name}' in {o.runs_mismatching} run(s), "
                        f"{o.elements_mismatching} element(s), max |diff| {o.max_abs_diff:g}"
                        for o in result.outputs if o.runs_mismatching)
        line += f"; mismatching: {bad}"
    elif not result.bit_exact:
        line += f" (max |diff| {result.max_abs_diff:g})"
    return line + cycles


def reference_note(result: ValidationResult) -> str:
    """The lines saying what the reference was, when it was not the file as it is ("" otherwise)."""
    if not result.corrections:
        return ""
    lines = [f"LiteRT refuses the file as it is ({result.refused}); the reference ran a copy corrected "
             "for what the importer tolerates (tinykiln.tflite.tolerances):"]
    return "\n".join(lines + [f"  - {c}" for c in result.corrections])


def failure(result: ValidationResult, model: str, board: str) -> str:
    """Why a validate=1 build fails: mismatches, or nothing compared (never green without a compare)."""
    if not result.compared:
        return (f"validation of {model} on {board} compared nothing: no reference can run this model "
                f"(above). The firmware is built; build without validate=1 to skip the comparison")
    return f"validation of {model} on {board} failed (mismatches above)"
