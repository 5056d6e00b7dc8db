"""Which kind of device a board + options mean: the one place that decides where firmware runs.

    kind(board, options, RUN)      run=1 / flash=1 of an app: flasher=, else the board's first method
    kind(board, options, SESSION)  a model run that talks to the firmware over its console
                                   (validate=1, run=1 model=, profile=1): QEMU when nothing names
                                   hardware (no port=, flash=1 or flasher=) and the board has an
                                   emulator; hardware needs port= (its console)
    kind(board, options, BENCH)    a tune=1 kernel benchmark: with tracker= an RPC device, with
                                   port= the real board (its first probe method, or flasher=),
                                   else the host process or QEMU
    local_kind(board)              "qemu" / "host" when a model runs here with no options, else None

The kinds: QEMU, HOST (the host build as a process), OPENOCD / PYOCD (a real board programmed
through its debug probe, console on port=) and RPC (a device server behind a tracker).
Every wrong combination is a KilnError saying what to give instead.
"""
from __future__ import annotations

from tinykiln import KilnError

QEMU, HOST, OPENOCD, PYOCD, RPC = "qemu", "host", "openocd", "pyocd", "rpc"
PROBES = (OPENOCD, PYOCD)
RUN, SESSION, BENCH = "run", "session", "bench"


def _method(board, flasher: str) -> str:
    """flasher= if the board offers it, else the board's first flash method."""
    methods = board.flash_methods
    if not methods:
        raise KilnError(f"board {board.name} has no flash method in board.toml")
    if not flasher:
        return methods[0]
    if flasher not in methods:
        raise KilnError(f"flasher={flasher} is not available for board {board.name}; "
                        f"it supports: {', '.join(methods)}")
    return flasher


def _bench_kind(board, options) -> str:
    if options.tracker:
        return RPC
    if options.port:  # a real board, flashed per benchmark
        real = [m for m in board.flash_methods if m in PROBES]
        if not real:
            raise KilnError(f"board {board.name} has no flash method for a real board (openocd or "
                            f"pyocd in board.toml [flash]): tune=1 port= cannot program it")
        method = _method(board, options.flasher or real[0])
        if method not in PROBES:
            raise KilnError(f"flasher={method} does not program a board: with port= pick one of "
                            f"{', '.join(real)}")
        return method
    if board.is_host:
        return HOST
    if board.emulator:
        return QEMU
    raise KilnError(f"tune=1 on {board.name} (no emulator) measures on the board itself: give "
                    f"its console with port=/dev/ttyACM0 (it is flashed for each trial), or "
                    f"pick a QEMU board (./kiln -h)")


def kind(board, options, purpose: str = RUN) -> str:
    """The kind of device (QEMU, HOST, OPENOCD, PYOCD, RPC) `board` (tinykiln.boards.Board) and
    `options` (DeviceOptions) mean for `purpose` (RUN, SESSION or BENCH; see the module doc)."""
    if purpose == BENCH:
        return _bench_kind(board, options)
    if purpose not in (RUN, SESSION):
        raise ValueError(f"purpose must be RUN, SESSION or BENCH, not {purpose!r}")
    # pynq-z1 is hardware first: a run that needs the console emulates unless told otherwise.
    if purpose == SESSION and not (options.flasher or options.port or options.flash) and board.emulator:
        return QEMU
    method = _method(board, options.flasher)
    if purpose == SESSION and method in PROBES and not options.port:
        raise KilnError(f"board {board.name} is hardware: validation talks to it over its console; "
                        f"give port=/dev/ttyACM0 (add flash=1 to program it first)")
    if method == QEMU and not board.emulator:
        raise KilnError(f"board {board.name} has no emulator")
    return method


def local_kind(board) -> str | None:
    """QEMU or HOST when a model on `board` runs on this machine without port= or a probe; None
    for hardware (it can only be built here)."""
    from .options import DeviceOptions

    try:
        found = kind(board, DeviceOptions(), SESSION)
    except KilnError:  # hardware: it needs port=
        return None
    return found if found in (QEMU, HOST) else None
