"""run=1 / validate=1 / profile=1 for a model firmware: connect, show a sample's top classes,
validate against LiteRT, count cycles, profile the layers, print the summary, fill report.json.

    result = run_model(board, "build/mps2-an500/release/cifar10/cifar10.elf", model,
                       DeviceOptions(), n=10, report_path=".../report.json", profile=True)
    result.passed   # False on a mismatch, and when LiteRT could not run the model (nothing compared)

Where the firmware runs is tinykiln.device's decision (purpose SESSION); the same code path for
each, only the console differs:
    board=host        the ELF as a process on a pipe
    emulated board    QEMU with -icount shift=0 and the console on a TCP port (socket://): the
                      counter is then an instruction count, deterministic from run to run
    hardware          port= (a serial port or pyserial URL); with flash=1 it is programmed first

report.json gains "validation", the per-inference count under the name of what the device counts
("instructions_per_inference" under QEMU, "cycles_per_inference" on hardware, "ns_per_inference"
on host) and, with profile=1, "profile" (runner/profile.py) plus profile.png beside it. Under QEMU,
on a board with a timing model (tinykiln.cycles), also "cycles_estimated_per_inference",
"cycles_estimated_core" and "cycles_estimated_divides_per_inference", for the same runs.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from tinykiln import KilnError, cycles, device, interrupt, progress, report, sizes
from tinykiln.device.deploy import program

from . import profile as prof
from . import validate as v
from .airunner import AiRunner
from .reference import NoReference, Reference

# What the device's counter unit is called in report.json and in the summary.
COUNT_KEYS = {"instructions": "instructions_per_inference", "cpu-cycles": "cycles_per_inference",
              "ns": "ns_per_inference"}


def top_classes(output: np.ndarray, desc, labels: list[str], k: int = 3) -> str:
    """'cat 91.2%, dog 5.0%, ...' for a classifier output: dequantized, and through a softmax
    unless it already is a probability vector."""
    values = output.astype(np.float64).ravel()
    if desc.scale:
        values = (values - desc.zero_point) * desc.scale
    if not (np.all(values >= -1e-6) and np.all(values <= 1 + 1e-6) and abs(values.sum() - 1) < 0.05):
        e = np.exp(values - values.max())
        values = e / e.sum()
    order = np.argsort(-values, kind="stable")[:k]
    return ", ".join(f"{labels[i] if i < len(labels) else f'class {i}'} {100 * values[i]:.1f}%"
                     for i in order)


def image_bytes(elf: str) -> int:
    """What the firmware occupies in flash: every allocated section with contents."""
    return sum(s.size for s in sizes.read_sections(elf) if not s.nobits)


def _count_line(unit: str, median: int | None, runs: int, emulated: bool, estimate=None) -> str:
    if median is None:
        return "no inference ran (n=0 and no samples)"
    what = {"instructions": "instructions", "cpu-cycles": "cycles", "ns": "ns"}.get(unit, unit)
    note = " (QEMU -icount shift=0: one instruction per count)" if emulated and unit == "instructions" else ""
    line = f"{what} per inference: {median:,} (median of {runs} runs){note}"
    return f"{line}; {estimate.note()}" if estimate is not None and estimate.runs else line


def _estimate(board, marks, result, layers, say):
    """The cycle estimate of the session's counted runs, or None, saying once why there is none."""
    core = cycles.core_of(board)
    if core is None:
        return None
    if marks is None:
        reason = cycles.unavailable() or "the build made no cycle-estimate plugin"
        say(f"cycle estimate: none ({reason})")
        return None
    try:
        return cycles.session_estimate(core, marks, result.cycles,
                                       [layer["cycles"] for layer in layers] if layers is not None else None)
    except KilnError as e:
        say(f"cycle estimate: none (its records do not match the firmware's counts: {e})")
        return None


def run_model(board, elf: str, model, options: device.DeviceOptions, *, n: int = 10,
              seed: int = v.DEFAULT_SEED, profile: bool = False, report_path: str | None = None,
              out=None, graph=None) -> v.ValidationResult:
    """Everything run=1 does once the firmware is built: program it first when options say flash=1
    (hardware), then the session; the validation's result (.passed). Raises KilnError if the device
    misbehaves (with what it printed, e.g. a fault report). When LiteRT cannot run the model the
    inputs still run on the device, and the result says that nothing was compared."""
    from tinykiln import models

    out = out or sys.stdout
    timeout = options.timeout

    def say(line=""):
        print(line, file=out, flush=True)

    try:
        reference = Reference(model.path)
    except NoReference as e:
        reference = e
    with device.open(board, options, device.SESSION) as dev:
        if dev.kind in device.PROBES and options.flash:
            program(dev, elf)
        dev.start(elf, device.SERIAL)
        try:
            outcome = _session(dev.serial, model, reference, n, seed, profile, timeout, say, models, out)
        except interrupt.Interrupted:
            raise  # the user stopped it: no waiting for the device's last words
        except KilnError as e:
            note = dev.exit_note()
            if note:
                raise KilnError(f"{e}{note}") from None
            raise
        marks = None
        if dev.kind == device.QEMU:
            status = dev.wait(timeout=10)
            if status != 0:
                raise KilnError(f"QEMU ended with status {status} after the run{dev.exit_note()}")
            marks = dev.cycle_marks()
    result, info, layers, invoke_total, state_bytes = outcome
    estimate = _estimate(board, marks, result, layers, say) if dev.kind == device.QEMU else None

    note = v.reference_note(result)
    if note:
        say(note)
    say(v.verdict_line(result, model.name, board.name))
    median = v._median(result.cycles)
    emulated = dev.kind == device.QEMU
    say(_count_line(info.cycle_unit, median, len(result.cycles), emulated, estimate))
    flash_bytes = image_bytes(elf)
    state = f", state {state_bytes:,} B" if state_bytes else ""
    say(f"memory: arena {info.arena_size:,} B{state}, weights {info.weights_size:,} B, flash (image) "
        f"{flash_bytes:,} B")

    blocks = {}
    block = result.to_json()
    block["seed"] = seed
    block["where"] = {device.QEMU: "qemu", device.HOST: "host"}.get(dev.kind, "device")
    blocks["validation"] = block
    if median is not None:
        blocks[COUNT_KEYS.get(info.cycle_unit, "cycles_per_inference")] = median
    if estimate is not None and estimate.runs:
        blocks.update(estimate.report())
    if layers is not None:
        rows = prof.layer_rows(layers, graph)  # the compiled graph names the layers (None: kernels only)
        if estimate is not None and estimate.layers is not None:
            prof.add_estimate(rows, [w.cycles for w in estimate.layers], estimate.core)
        say("")
        say(f"per-layer profile ({info.cycle_unit}, one profiled inference):")
        say(prof.table(rows, info.cycle_unit))
        blocks["profile"] = prof.report_block(rows, info.cycle_unit, invoke_total)
        if report_path:
            png = Path(report_path).with_name("profile.png")
            prof.write_chart(rows, info.cycle_unit, png,
                             title=f"{model.name} on {board.name}: {info.cycle_unit} per layer")
            say(f"profile chart: {png}")
    if report_path:
        report.merge(report_path, **blocks)
    return result


def _session(console, model, reference, n, seed, profile, timeout, say, models, out):
    runner = AiRunner(timeout=min(timeout, 10.0), invoke_timeout=timeout, run_timeout=timeout)
    with runner.connect(console, timeout=timeout):
        info = runner.info
        say(f"{info.model} on {info.board} ({info.core}, {info.clock_hz / 1e6:g} MHz), counter: "
            f"{info.cycle_unit}, build {info.build_id}")
        samples = models.load_samples(model, info.inputs)
        state_bytes = runner.reset()
        if state_bytes:
            n = v.sequence_runs(n, state_bytes)
            say(f"stateful model ({state_bytes:,} B of state): validated in sequences of {v.SEQUENCE} "
                f"invocations, device and LiteRT reset before each")
        if samples:
            outputs, _ = runner.invoke(samples[0])
            entry = model.meta["samples"][0]
            expected = f" (labelled {entry['label']})" if "label" in entry else ""
            say(f"sample {entry['file']}{expected}: top classes "
                f"{top_classes(outputs[0], info.outputs[0], model.labels)}")
        input_sets = v.random_inputs(info.inputs, n, seed) + samples
        if isinstance(reference, NoReference):
            say(f"running {len(input_sets)} inputs ({n} random, {len(samples)} sample); no reference to "
                f"compare them with: {reference}")
        else:
            say(f"validating {len(input_sets)} inputs ({n} random, {len(samples)} sample) against "
                f"LiteRT's reference kernels...")
        with progress.Progress(len(input_sets), "validating", stream=out) as bar:
            result = v.validate(runner, reference, input_sets, sample_runs=len(samples),
                                progress=lambda done, total: bar.update(),
                                sequence=v.SEQUENCE if state_bytes else 0)
        layers = invoke_total = None
        if profile:
            profile_input = samples[0] if samples else v.random_inputs(info.inputs, 1, seed)[0]
            runner.reset()
            _, measured = runner.invoke(profile_input, profile=True)
            layers, invoke_total = measured["layers"], measured["cycles"]
        with contextlib.suppress(KilnError):
            runner.exit(0)
    return result, info, layers, invoke_total, state_bytes
