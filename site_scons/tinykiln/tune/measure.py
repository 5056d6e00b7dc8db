"""Benchmarks measured on this machine: the host process or QEMU (-icount shift=0: deterministic
instruction counts), through tinykiln.device. devices= of them run at a time (the driver's pool).

    run_bench(board, elf, timeout) -> (count, unit, digest)    KilnError if the benchmark fails
"""
from __future__ import annotations

from pathlib import Path

from tinykiln import KilnError, device

from .bench import parse_result


def run_bench(board, elf: Path, timeout: float) -> tuple[int, str, str]:
    """(count, unit, digest) of one benchmark firmware; KilnError if it fails."""
    options = device.DeviceOptions(timeout=timeout)
    with device.open(board, options, device.BENCH) as dev:
        dev.start(elf, device.CAPTURE)
        status = dev.wait(timeout)
        text = dev.output()
    result = parse_result(text)
    if status != 0 or result is None:
        raise KilnError(f"{elf.name}: exit status {status}, no TKBENCH line: {text.strip()[-300:]}")
    return result
