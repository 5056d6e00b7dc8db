"""A device behind TVM's RPC tracker (the way microTVM's tuning farm worked): a device server on
some host registered under its board's name runs what it is sent on its own device (QEMU or a real
board; tinykiln.tune.rpc is that server) and answers with one line.

    with RpcDevice(board, DeviceOptions(tracker="10.0.0.5:9190", timeout=60)) as dev:
        dev.flash(elf)            # a free device of board.name, the ELF uploaded to it
        dev.start(elf)            # the server runs it: FUNCTION(board name, file name, timeout)
        line = dev.output()       # its answer, e.g. "1234 instructions 00112233aabbccdd"
"""
from __future__ import annotations

from pathlib import Path

from tinykiln import KilnError

from .devices import CAPTURE, Device

FUNCTION = "tinykiln.run_bench"  # what a device server registers (tinykiln.tune.rpc)


def address(text: str) -> tuple[str, int]:
    """tracker=host:port -> (host, port)."""
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise KilnError(f"tracker={text}: give the tracker as host:port, e.g. tracker=127.0.0.1:9190")
    return host, int(port)


class RpcDevice(Device):
    kind = "rpc"

    def __init__(self, board, options):
        super().__init__(board, options)
        self.address = address(options.tracker)
        self.remote = None
        self._text = ""

    def _failed(self, elf, e: Exception) -> KilnError:
        return KilnError(f"{Path(elf).name} via tracker {self.options.tracker}: {type(e).__name__}: "
                         f"{str(e).strip()[-300:]}")

    def flash(self, elf) -> None:
        from tvm import rpc

        elf = Path(elf)
        try:
            client = rpc.connect_tracker(*self.address)
            self.remote = client.request(self.board.name, priority=1,
                                         session_timeout=self.options.timeout + 60)
            self.remote.upload(str(elf), target=elf.name)
        except Exception as e:  # TVM raises its own error types for remote failures
            raise self._failed(elf, e) from None

    def start(self, elf, console: str = CAPTURE) -> None:
        elf = Path(elf)
        try:
            text = self.remote.get_function(FUNCTION)(self.board.name, elf.name, float(self.options.timeout))
        except Exception as e:
            raise self._failed(elf, e) from None
        self._text = str(text)

    def wait(self, timeout: float) -> int:
        return 0  # the server answered: the run is over

    def output(self) -> str:
        return self._text

    def stop(self) -> None:
        self.remote = None  # the session ends with its last reference
