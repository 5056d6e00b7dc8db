"""Kernel benchmarks measured on devices behind TVM's RPC tracker (the way microTVM's tuning farm
worked): device servers on any host register with the tracker under their board's name; tune=1 with
tracker=host:port asks the tracker for a free device of its board for each trial, uploads the
benchmark ELF and runs it there (tinykiln.device.rpc's RpcDevice is that client side).

    python -m tvm.exec.rpc_tracker --host 127.0.0.1 --port 9190            # once
    python -m tinykiln.tune_rpc --tracker 127.0.0.1:9190 --board mps2-an500  # one per device
    ./kiln board=mps2-an500 model=cifar10 tune=1 tracker=127.0.0.1:9190 devices=2

A device server runs the ELF on the emulated board (QEMU -icount, tune.measure.run_bench), or, with
--port URL (the board's console: /dev/ttyACM0, serial:/dev/ttyACM0:921600, socket://...), flashes it
into the real board next to it and reads the TKBENCH line from that port (tinykiln.tune.ports):

    python -m tinykiln.tune_rpc --tracker 10.0.0.5:9190 --board nucleo-f746zg --port /dev/ttyACM0

The RPC server executes what it is sent: run it on a trusted network only (TVM's own warning).

    runner(tracker) -> run(board, elf, timeout) -> (count, unit, digest)   the client side
    serve(tracker, board_name, host="127.0.0.1", rpc_port=9091, console="", flasher="")
                                                                             a device server (blocks)
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from tinykiln import KilnError, boards, device
from tinykiln.device.rpc import FUNCTION, address

from . import measure as local
from . import ports

ROOT = Path(__file__).resolve().parents[3]  # site_scons/tinykiln/tune/ -> the project
# The server's worker processes inherit these: the board's console port and flash method, if real.
CONSOLE_ENV, FLASHER_ENV = "TINYKILN_TUNE_CONSOLE", "TINYKILN_TUNE_FLASHER"


def _register_function():
    """Runs in the RPC server's process before it serves (server_init_callback): the function a
    client calls; the server's forked session processes inherit it."""
    import tvm_ffi

    @tvm_ffi.register_global_func(FUNCTION, override=True)
    def run_bench(board_name: str, file_name: str, timeout: float) -> str:

        path = tvm_ffi.get_global_func("tvm.rpc.server.workpath")(file_name)
        count, unit, digest = measure(board_name, Path(path), float(timeout))
        return f"{count} {unit} {digest}"


def measure(board_name: str, elf: Path, timeout: float) -> tuple[int, str, str]:
    """One benchmark on this server's device: the real board on its console port when the server
    was started with --port, else QEMU."""
    board = boards.load_board(ROOT, board_name)
    console = os.environ.get(CONSOLE_ENV, "")
    if console:
        return ports.PortDevice(board, console, os.environ.get(FLASHER_ENV, "")).run(elf, timeout)
    return local.run_bench(board, elf, timeout)


def serve(tracker: str, board_name: str, host: str = "127.0.0.1", rpc_port: int = 9091,
          console: str = "", flasher: str = "") -> None:
    """A device server for `board_name`, registered with the tracker; serves until killed.
    `console`: the real board's console port (it is flashed per benchmark); empty: QEMU."""
    from tvm import rpc

    board = boards.load_board(ROOT, board_name)
    if console:
        ports.open_port(console).close()  # a wrong port fails here, not at the first trial
        os.environ[CONSOLE_ENV], os.environ[FLASHER_ENV] = console, flasher
    elif device.local_kind(board) is None:
        raise KilnError(f"board {board_name} has no emulator: give the real board's console with "
                        f"--port /dev/ttyACM0 (this server then flashes it for each benchmark)")
    port = rpc_port
    server = rpc.Server(host=host, port=port, port_end=port + 100, tracker_addr=address(tracker),
                        key=board_name, server_init_callback=_register_function)
    where = f"the board on {console}" if console else "QEMU"
    print(f"tinykiln device server for {board_name} ({where}) on {host}:{server.port}, tracker "
          f"{tracker}", flush=True)
    try:
        # The server lives in a worker process (TVM's PopenWorker); it ends if the tracker cannot be
        # reached: end with it rather than look registered while serving nothing.
        worker = getattr(server.proc, "_proc", None)
        while worker is None or worker.poll() is None:
            time.sleep(1)
        raise KilnError(f"the RPC server for {board_name} stopped (tracker {tracker} unreachable?)")
    finally:
        server.terminate()


def runner(tracker: str):
    """run(board, elf, timeout) measuring on a device the tracker hands out for board.name."""
    address(tracker)  # a malformed tracker= fails now, not at the first trial

    def run(board, elf: Path, timeout: float):
        with device.open(board, device.DeviceOptions(tracker=tracker, timeout=timeout), device.BENCH) as dev:
            dev.flash(elf)
            dev.start(elf)
            text = dev.output()
        count, unit, digest = text.split()
        return int(count), unit, digest

    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tinykiln.tune_rpc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracker", required=True, help="the RPC tracker, host:port")
    parser.add_argument("--board", required=True, help="the board this device server runs (its key)")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--rpc-port", type=int, default=9091, help="first port to serve on")
    parser.add_argument("--port", default="", help="the real board's console (pyserial URL, e.g. "
                        "/dev/ttyACM0): flash and read it instead of running QEMU")
    parser.add_argument("--flasher", default="", help="with --port: openocd or pyocd (default: "
                        "the board's first)")
    args = parser.parse_args(argv)
    try:
        serve(args.tracker, args.board, args.host, args.rpc_port, args.port, args.flasher)
    except KilnError as e:
        parser.exit(2, f"tinykiln.tune_rpc: error: {e}\n")
    return 0
