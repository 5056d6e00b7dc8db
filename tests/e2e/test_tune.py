"""tune=1 (tinykiln/tune/): candidates measured on QEMU in kernel benchmark firmwares, a resumable
log, the schedule file, and a tuned build that validates bit-exact and is not slower."""
import json
import re

import modelgen as mg
import pytest
from conftest import ROOT

from tinykiln import KilnError, tune
from tinykiln.tune import candidates, driver, measure
from tinykiln.tune import log as tune_log
from tinykiln.kernel import KernelSpec, Param

BOARD = "mps2-an500"


def _tiny_model(path, conv=True):
    """conv=True: CONV_2D + DEPTHWISE_CONV_2D; else two FULLY_CONNECTED layers."""
    mb = mg.ModelBuilder(7)
    if conv:
        x = mb.input((1, 6, 6, 4), "int8", name="input")
        y = mg.conv2d(mb, x, 4, (3, 3), activation="RELU", name="conv")
        z = mg.depthwise_conv2d(mb, y, (3, 3), name="dw")
    else:
        x = mb.input((1, 16), "int8", name="input")
        y = mg.fully_connected(mb, x, 8, activation="RELU", name="fc1")
        z = mg.fully_connected(mb, y, 4, name="fc2")
    path.write_bytes(mb.build([x], [z]))
    return path


def _summary(output, what="whole model \\(validation app\\)"):
    m = re.search(what + r"\s+(\d+)\s+(\d+)", output)
    assert m, output
    return int(m.group(1)), int(m.group(2))


# The whole-model count comes from the validation app, which polls the UART before each inference:
# how long depends on the host, so the phase of the SysTick counter (25 MHz under QEMU: a tick is 40
# instructions) does too, and one count can differ by one tick between two runs of one firmware.
# The per-kernel benchmarks have no input to wait for: their counts repeat exactly.
TICK = 40


def test_candidates_default_first_no_repeats_and_stable():
    spec = KernelSpec("fully_connected_int8", (Param("x", "int8", (1, 8), "input"),), {"units": 8})
    space = {"a": [1, 2, 3], "b": [False, True], "c": ["x", "y"]}
    first = candidates.candidates(spec, space, 5)
    assert first[0].knobs == {"a": 1, "b": False, "c": "x"} and first[0].index == 0
    assert len({c.key for c in first}) == 5
    assert [c.knobs for c in candidates.candidates(spec, space, 5)] == [c.knobs for c in first]
    assert len(candidates.candidates(spec, space, 100)) == 12  # the whole space, once each


def test_read_log_skips_a_torn_last_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text(json.dumps({"kernel": "k", "knobs": {"a": 1}, "count": 5, "ok": True}) + "\n"
                   + '{"kernel": "k", "kno')
    done = tune_log.read_log(log)
    assert list(done) == [("k", '{"a": 1}')]


def test_trials_must_be_a_number():
    with pytest.raises(KilnError, match="trials=many takes a whole number"):
        tune.main(ROOT, {"board": BOARD, "model": "cifar10", "trials": "many"})


def test_a_wrong_output_never_wins(tmp_path, monkeypatch):
    """A candidate whose output differs from the default's is rejected and logged, even when it is
    the fastest; the schedule keeps the default knobs."""
    model = _tiny_model(tmp_path / "fc.tflite", conv=False)
    real = measure.run_bench

    def lying(board, elf, timeout):
        count, unit, digest = real(board, elf, timeout)
        if "default" in elf.name:
            return count, unit, digest
        return 1, unit, "0" * 16  # fast and wrong

    monkeypatch.setattr(measure, "run_bench", lying)
    sched = tmp_path / "s.json"
    opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / "build"), "model": str(model),
            "trials": "3", "devices": "2", "schedules": str(sched), "werror": True, "timeout": "60"}
    assert tune.main(ROOT, opts) == 0
    records = [json.loads(line) for line in
               (tmp_path / "build" / BOARD / "release" / "fc" / "tune" / "log.jsonl").read_text().splitlines()]
    rejected = [r for r in records if not r["ok"]]
    assert rejected and all("differs" in r["error"] for r in rejected)
    kernels = json.loads(sched.read_text())["kernels"]
    defaults = {r["kernel"]: r["knobs"] for r in records if r["candidate"] == 0}
    assert kernels and all(kernels[k]["knobs"] == defaults[k] for k in kernels)


def test_tune_end_to_end_resumes_and_validates(scons, tmp_path):
    model = _tiny_model(tmp_path / "tiny.tflite")
    sched = tmp_path / "schedules" / f"{BOARD}.json"
    build = tmp_path / "build"
    args = [f"board={BOARD}", f"model={model}", "tune=1", "trials=3", "devices=2",
            f"schedules={sched}", "werror=1"]
    first = scons(*args, builddir=build)
    assert first.returncode == 0, first.output
    assert re.search(r"TUNE kernel 1/2 trial 3/3  best \d+ instr", first.output), first.output
    before, after = _summary(first.output)
    kernels_before, kernels_after = _summary(first.output, "sum over kernels")
    assert kernels_after <= kernels_before
    assert after <= before + TICK

    data = json.loads(sched.read_text())
    assert data["board"] == BOARD and len(data["kernels"]) == 2
    log = build / BOARD / "release" / "tiny" / "tune" / "log.jsonl"
    lines = log.read_text().splitlines()
    assert len(lines) == 6 and all(json.loads(line)["ok"] for line in lines)

    # The tuned validation (n=1) ran last: its report says bit-exact with the tuned count.
    report = json.loads((build / BOARD / "release" / "tiny" / "report.json").read_text())
    assert report["validation"]["bit_exact"] and report["validation"]["cycles_per_inference"] == after

    # Resume: everything is in the log, nothing is generated, built or measured again.
    benches = {p: p.stat().st_mtime_ns for p in log.parent.glob("*/*/*.c")}
    assert len(benches) == 12  # kernel.c + bench.c per trial
    second = scons(*args, builddir=build)
    assert second.returncode == 0, second.output
    assert log.read_text().splitlines() == lines
    assert {p: p.stat().st_mtime_ns for p in log.parent.glob("*/*/*.c")} == benches
    assert "TUNE kernel 2/2 trial 3/3" in second.output, second.output
    assert _summary(second.output, "sum over kernels") == (kernels_before, kernels_after)
    assert json.loads(sched.read_text()) == data


def test_an_interrupted_run_resumes_without_measuring_again(tmp_path, monkeypatch):
    model = _tiny_model(tmp_path / "fc.tflite", conv=False)
    real = measure.run_bench
    calls = []

    def interrupted_after_four(board, elf, timeout):
        if len(calls) == 4:
            raise KeyboardInterrupt  # Ctrl-C while the fifth trial runs
        calls.append(elf)
        return real(board, elf, timeout)

    opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / "build"), "model": str(model),
            "trials": "3", "devices": "1", "schedules": str(tmp_path / "s.json"), "timeout": "60"}
    monkeypatch.setattr(measure, "run_bench", interrupted_after_four)
    with pytest.raises(KeyboardInterrupt):
        tune.main(ROOT, opts)
    log = tmp_path / "build" / BOARD / "release" / "fc" / "tune" / "log.jsonl"
    assert len(log.read_text().splitlines()) == 4 and not (tmp_path / "s.json").exists()

    again = []
    monkeypatch.setattr(measure, "run_bench", lambda *a: again.append(a[1]) or real(*a))
    assert tune.main(ROOT, opts) == 0
    assert len(again) == 2 and not set(again) & set(calls)  # only the two trials not yet logged
    assert len(log.read_text().splitlines()) == 6


def test_a_tuned_model_that_fails_validation_leaves_the_schedule_as_it_was(tmp_path, monkeypatch):
    model = _tiny_model(tmp_path / "fc.tflite", conv=False)
    sched = tmp_path / "s.json"
    sched.write_text('{"format": 1, "model": "fc", "board": "mps2-an500", "kernels": {}}\n')
    before = sched.read_text()
    real = driver._whole_model
    monkeypatch.setattr(driver, "_whole_model",
                        lambda *a: None if a[-1] == "tuned" else real(*a))  # as if validation failed
    opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / "build"), "model": str(model),
            "trials": "2", "devices": "2", "schedules": str(sched), "timeout": "60"}
    assert tune.main(ROOT, opts) == 1
    assert sched.read_text() == before


def test_a_close_candidate_with_less_code_wins():
    """Within CODE_SLACK of the fastest count the smallest kernel wins; farther, speed wins; a wrong
    or failed candidate never wins; records without code bytes compete on count alone."""
    fast_big = {"ok": True, "count": 100_000, "code_bytes": 9_000, "knobs": {"unroll": True}}
    close_small = {"ok": True, "count": 100_400, "code_bytes": 2_000, "knobs": {"unroll": False}}
    far_tiny = {"ok": True, "count": 101_000, "code_bytes": 500, "knobs": {"oc_tile": 1}}
    wrong_tiny = {"ok": False, "count": 90_000, "code_bytes": 100, "knobs": {"oc_tile": 2}}
    assert candidates.choose_best([fast_big, close_small, far_tiny, wrong_tiny]) is close_small
    assert candidates.choose_best([fast_big, far_tiny]) is fast_big
    assert candidates.choose_best([fast_big, close_small], slack=0.0) is fast_big
    assert candidates.choose_best([wrong_tiny]) is None
    old = {"ok": True, "count": 99_000, "knobs": {}}  # a log line from before code bytes were kept
    assert candidates.choose_best([old, close_small]) is old


@pytest.mark.slow
def test_a_short_retune_keeps_the_better_committed_schedule(tmp_path):
    """issue 15, item 4: tune=1 trials=1 used to write the default knobs over cifar10's tuned
    schedule (10,363,480 -> 10,364,440 instructions)."""
    sched = tmp_path / "s.json"
    sched.write_text((ROOT / "models" / "cifar10" / "schedules" / f"{BOARD}.json").read_text())
    committed = json.loads(sched.read_text())["kernels"]
    assert any(entry["knobs"] != _defaults(key) for key, entry in committed.items())  # a real test
    opts = {"board": BOARD, "variant": "release", "model": "cifar10", "devices": "2", "trials": "1",
            "schedules": str(sched), "timeout": "120", "builddir": str(tmp_path / "build")}
    assert tune.main(ROOT, opts) == 0
    after = json.loads(sched.read_text())["kernels"]
    for key, entry in committed.items():
        assert after[key]["knobs"] == entry["knobs"] or after[key]["instructions"] <= entry["instructions"]


def _defaults(key):
    from tinykiln import ops, pipeline

    lowered = pipeline.compile("cifar10", root=ROOT, knobs={}).lowered
    call = next(c for c in lowered.calls if c.spec.workload_key == key)
    return {name: values[0] for name, values in ops.knob_space(call.spec).items()}


def test_trials_that_failed_for_the_environment_are_measured_again(tmp_path, monkeypatch):
    """issue 15, item 4: a tool missing on one run used to stop every later run ('no kernel measured')."""
    model = _tiny_model(tmp_path / "fc.tflite", conv=False)
    opts = {"board": BOARD, "variant": "release", "builddir": str(tmp_path / "build"), "model": str(model),
            "trials": "2", "devices": "1", "schedules": str(tmp_path / "s.json"), "timeout": "60"}
    real = measure.run_bench

    def no_emulator(board, elf, timeout):
        raise KilnError("qemu-system-arm not found on PATH")

    monkeypatch.setattr(measure, "run_bench", no_emulator)
    assert tune.main(ROOT, opts) == 1 and not (tmp_path / "s.json").exists()
    log = tmp_path / "build" / BOARD / "release" / "fc" / "tune" / "log.jsonl"
    assert log.read_text().count("qemu-system-arm not found") == 4

    measured = []
    monkeypatch.setattr(measure, "run_bench", lambda *a: measured.append(a[1]) or real(*a))
    assert tune.main(ROOT, opts) == 0 and (tmp_path / "s.json").is_file()
    assert len(measured) == 4  # every trial again


def test_the_committed_knobs_are_a_candidate():
    spec = KernelSpec("conv2d_int8", (Param("x", "int8", (1, 4), "input"),), {"a": 1})
    space = {"u": [1, 2, 4], "t": [True, False]}
    cands = candidates.candidates(spec, space, 1, committed={"u": 4, "t": False})
    assert [c.knobs for c in cands] == [{"t": True, "u": 1}, {"t": False, "u": 4}]
    # stale committed knobs (no longer a point of the space) are not measured
    assert len(candidates.candidates(spec, space, 1, committed={"u": 3, "t": False})) == 1
