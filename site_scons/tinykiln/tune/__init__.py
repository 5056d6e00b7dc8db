"""Autotuning on the device: `./kiln board=X model=Y tune=1 [trials=N] [devices=K]`.

For each distinct kernel of the model (one per workload key), candidate knob sets are measured in
isolation on the device:

    candidates   the default knobs first, then knob sets drawn without repeats from the family's
                 knob space (ops.knob_space), trials= in all; the draw is seeded by the workload key,
                 so a resumed run draws the same candidates (candidates.py)
    benchmark    one small firmware per candidate: the app runtime/apps/kernelbench plus a generated
                 bench.c and the kernel's C from TVM (bench.py). Built by a child scons run
                 (tune_bench=<manifest>, see declare_benches), run on the emulated board under QEMU
                 -icount shift=0 (deterministic instruction counts), devices= QEMUs at a time; the
                 firmware prints `TKBENCH count=N unit=U digest=D`
    checking     every candidate's output digest must equal the default's on the same input bytes:
                 a mismatch (or a build / run failure) is logged and the candidate never wins
    devices      (backends.py) devices= QEMUs on this machine (measure.py), or with tracker=host:port
                 the devices registered with a TVM RPC tracker under the board's name (rpc.py), or
                 with port=/dev/ttyACM0[,...] real boards on this machine, one per console port: each
                 trial flashes the board and reads its line from the port, counting its cycle
                 counter (ports.py; the only way for a board without an emulator). All of them run
                 the firmware through tinykiln.device.
    log          build/<board>/<variant>/<model>/tune/log.jsonl, one JSON line per trial; a trial
                 already in the log is not measured again (an interrupted run resumes; log.py)
    result       the fastest correct candidate of each kernel goes into the schedule file
                 (models/<model>/schedules/<board>.json, or schedules=<path>), unless one within
                 CODE_SLACK of its count has less code (the kernel function's bytes in the bench
                 ELF): then the smallest of those (choose_best); then the model is validated
                 untuned and tuned (the validation app, n=1) for the before/after summary (driver.py)

Plain Python (no SCons import): SConstruct calls main() for tune=1 and declare_benches(env, ...)
for the child builds.
"""
from .bench import declare_benches
from .driver import main

__all__ = ["declare_benches", "main"]
