"""One validation session against built firmware: start it (host process or QEMU), connect AiRunner,
validate against LiteRT, write the verdict into report.json, stop it.

    ok, line = validate_firmware(board, "build/host/release/hello/hello.elf", model, n=10)

board=host runs the ELF as a process on a pipe; an emulated board boots in QEMU with its console on a
TCP port (socket://); hardware takes a port (serial URL) after flashing.
"""
from __future__ import annotations

import contextlib

from tinykiln import KilnError, report

from . import validate as v
from .airunner import AiRunner
from .reference import Reference


@contextlib.contextmanager
def device_url(board, elf: str, port: str = ""):
    """A URL AiRunner can connect to, for as long as the context lasts."""
    if board.is_host:
        yield f"pipe:{elf}"
    elif port:
        yield port
    elif board.emulator:
        from . import qemu

        with qemu.start(board, elf, serial="tcp") as session:
            yield session.url
    else:
        raise KilnError(f"board {board.name} is hardware: give its console with port=/dev/ttyACM0 "
                        f"(after flash=1)")


def validate_firmware(board, elf: str, model, *, n: int = 10, seed: int = v.DEFAULT_SEED,
                      report_path: str | None = None, timeout: float = 60.0, port: str = "",
                      profile: bool = False) -> tuple[bool, str]:
    """Validate; returns (passed, the verdict line). Raises KilnError if the device misbehaves."""
    from tinykiln import models

    reference = Reference(model.path)
    with device_url(board, elf, port) as url:
        runner = AiRunner(timeout=min(timeout, 10.0), invoke_timeout=timeout)
        with runner.connect(url, timeout=timeout):
            info = runner.info
            samples = models.load_samples(model, info.inputs)
            input_sets = v.random_inputs(info.inputs, n, seed) + samples
            result = v.validate(runner, reference, input_sets, sample_runs=len(samples))
            layers = None
            if profile and input_sets:
                _, prof = runner.invoke(input_sets[0], profile=True)
                layers = prof.get("layers")
            with contextlib.suppress(KilnError):
                runner.exit(0)
    line = v.verdict_line(result, model.name, board.name)
    if report_path:
        block = result.to_json()
        block["seed"] = seed
        blocks = {"validation": block}
        if layers is not None:
            blocks["profile"] = layers
        report.merge(report_path, **blocks)
    return result.passed, line
