"""AiRunner: drive a model on a device (or a host build) over the tinykiln protocol.

    from tinykiln.runner.airunner import AiRunner
    with AiRunner().connect("pipe:build/host/release/hello/firmware") as runner:
        print(runner.info.model, [t.shape for t in runner.info.inputs])
        outputs, profile = runner.invoke([x])            # x: numpy array per input
        outputs, profile = runner.invoke([x], profile=True)
        state_bytes = runner.reset()                     # a stateful model: clear its state
        # profile = {"cycles": 1234, "unit": "ns", "layers": [{"kernel", "op", "op_index", "cycles"}]}

URLs: see transports.open_url. Every wait has a deadline: a silent device, garbage, a bad checksum or
a version mismatch raise ProtocolError (a KilnError) with what the device printed, never hang.
"""
from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

import numpy as np

from tinykiln import KilnError

from . import protocol as p
from .transports import open_url


@dataclass
class TensorDesc:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int
    scale: float
    zero_point: int


@dataclass
class DeviceInfo:
    protocol_version: int
    max_payload: int
    model: str
    build_id: str
    board: str
    core: str
    cycle_unit: str
    clock_hz: int
    arena_size: int
    weights_size: int
    inputs: list[TensorDesc] = field(default_factory=list)
    outputs: list[TensorDesc] = field(default_factory=list)
    layers: list[dict] = field(default_factory=list)


INFO_RETRY = 1.0  # seconds between INFO requests while connecting


class AiRunner:
    def __init__(self, timeout: float = 5.0, invoke_timeout: float = 120.0, run_timeout: float | None = None):
        """timeout: per reply; invoke_timeout: per inference; run_timeout: the whole session, from
        now (timeout= of a build: the run may last that long, however many replies it takes)."""
        self.timeout = timeout
        self.invoke_timeout = invoke_timeout
        self.run_timeout = run_timeout
        self.run_deadline = None if run_timeout is None else time.monotonic() + run_timeout
        self.transport = None
        self.reader: p.FrameReader | None = None
        self.info: DeviceInfo | None = None
        self._seq = 0
        self.url = ""

    # --- connection -------------------------------------------------------------------------

    def connect(self, console, timeout: float | None = None) -> "AiRunner":
        """Open `console` (a URL, see transports.open_url, or a transport already open, as a host
        Device's console is), then read the model description. `timeout` bounds the first reply
        (a board that boots slowly may need more than the per-command timeout)."""
        self.close()
        if isinstance(console, str):
            self.url = console
            self.transport = open_url(console)
        else:
            self.transport = console
        self.reader = p.FrameReader(self.transport)
        try:
            self.info = self._read_info(timeout or max(self.timeout, 10.0))
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.transport = None
        self.reader = None

    def __enter__(self) -> "AiRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def exit(self, status: int = 0) -> None:
        """Ask the app to end with `status` (the host process exits; QEMU stops)."""
        self._request(p.CMD_EXIT, bytes([status & 0xFF]), "EXIT")
        self.close()

    # --- the model ----------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [self._info().model]

    def invoke(self, inputs, profile: bool = False) -> tuple[list[np.ndarray], dict]:
        info = self._info()
        if isinstance(inputs, np.ndarray):
            inputs = [inputs]
        inputs = list(inputs)
        if len(inputs) != len(info.inputs):
            raise KilnError(f"model '{info.model}' takes {len(info.inputs)} input(s), got {len(inputs)}")
        for index, (array, desc) in enumerate(zip(inputs, info.inputs)):
            self._set_input(index, self._as_input(array, desc, index))
        reply = self._request(p.CMD_INVOKE, bytes([1 if profile else 0]), "INVOKE", self.invoke_timeout)
        cycles = p.Reader(reply, "INVOKE").take("I")
        outputs = [self._get_output(i, desc) for i, desc in enumerate(info.outputs)]
        result = {"cycles": cycles, "unit": info.cycle_unit}
        if profile:
            result["layers"] = self._profile()
        return outputs, result

    def reset(self) -> int:
        """Clear the model's state (variable tensors) before a new sequence of invokes; returns the
        state's bytes (0: a stateless model, for which reset does nothing)."""
        try:
            reply = self._request(p.CMD_RESET, b"", "RESET")
        except p.DeviceError as e:
            if e.status == p.ST_UNKNOWN:
                return 0  # firmware from before RESET: it cannot hold a stateful model either
            raise
        return int(p.Reader(reply, "RESET").take("I"))

    def echo(self, data: bytes) -> bytes:
        return self._request(p.CMD_ECHO, data, "ECHO")

    def resync(self, settle: float = 0.5) -> None:
        """Bring the link back to a frame boundary after an error (a timeout, a cut frame): zeros
        complete any frame the device is still reading (it answers it with a checksum error and
        then skips zeros as noise), and every reply still in flight is dropped."""
        if self.transport is None:
            raise KilnError("AiRunner is not connected: call connect(url) first")
        max_payload = self.info.max_payload if self.info else 0xFFFF
        self.transport.write(bytes(max_payload + p.HEADER.size + p.CRC.size))
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            if self.transport.read(4096, deadline - time.monotonic()) is None:
                break
        self.reader.buffer.clear()
        self.reader.clear_garbage()

    # --- internals ------------------------------------------------------------------------------

    def _info(self) -> DeviceInfo:
        if self.info is None:
            raise KilnError("AiRunner is not connected: call connect(url) first")
        return self.info

    def _request(self, cmd: int, payload: bytes, what: str, timeout: float | None = None,
                 keep_garbage: bool = False) -> bytes:
        if self.transport is None:
            raise KilnError("AiRunner is not connected: call connect(url) first")
        self._seq = (self._seq + 1) & 0xFF
        if not keep_garbage:
            self.reader.clear_garbage()
        self.transport.write(p.encode(cmd, self._seq, payload))
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        if self.run_deadline is not None and self.run_deadline < deadline:
            deadline = self.run_deadline
        while True:
            try:
                frame = self.reader.read_frame(deadline, what)
            except p.ProtocolError:
                if self.run_deadline is not None and time.monotonic() >= self.run_deadline:
                    raise KilnError(f"the run did not end within timeout={self.run_timeout:g} s (while waiting "
                                    f"for {what}); it was stopped. Raise the limit with timeout=SECONDS "
                                    "(it bounds the whole run), or ask for fewer inputs with n=") from None
                raise
            if frame.version != p.VERSION:
                raise p.ProtocolError(
                    f"the device speaks protocol version {frame.version}, this runner version "
                    f"{p.VERSION}: rebuild the firmware with this tinykiln (or update tinykiln)"
                )
            if frame.status == p.ST_VERSION:
                raise p.ProtocolError(
                    f"the device rejected protocol version {p.VERSION}: rebuild the firmware with this "
                    f"tinykiln"
                )
            if frame.cmd != (cmd | p.REPLY_FLAG) or frame.seq != self._seq:
                # A late reply to an earlier request (after a timeout): not ours, skip it.
                if frame.status == p.ST_CHECKSUM:
                    raise p.ProtocolError(f"the device received a corrupted frame ({what}): the link "
                                          f"corrupts bytes{self.reader.garbage_text()}")
                continue
            if frame.status != p.ST_OK:
                name = p.STATUS_NAMES.get(frame.status, f"status {frame.status}")
                message = frame.payload.decode("utf-8", "replace")
                raise p.DeviceError(f"device error on {what}: {name}: {message}", frame.status)
            return frame.payload

    def _first_info(self, timeout: float) -> bytes:
        """INFO, asked again every INFO_RETRY seconds until `timeout`: a device that is still
        booting may drop what arrives before its UART is on (QEMU's STM32 USART does), and a lost
        request gets no reply. Late replies to earlier asks are skipped (their sequence differs)."""
        deadline = time.monotonic() + timeout
        self.reader.clear_garbage()
        while True:
            attempt = min(INFO_RETRY, deadline - time.monotonic())
            try:
                return self._request(p.CMD_INFO, b"", "INFO", attempt, keep_garbage=True)
            except p.ProtocolError as e:
                if not str(e).startswith("no reply") or time.monotonic() >= deadline - 0.01:
                    raise

    def _read_info(self, timeout: float) -> DeviceInfo:
        r = p.Reader(self._first_info(timeout), "INFO")
        version, max_payload, n_in, n_out, n_layers, arena, weights, clock = r.take("BHBBHIII")
        info = DeviceInfo(
            protocol_version=version, max_payload=max_payload, model=r.string(), build_id=r.string(),
            board=r.string(), core=r.string(), cycle_unit=r.string(), clock_hz=clock,
            arena_size=arena, weights_size=weights,
        )
        if max_payload < 16:
            raise p.ProtocolError(f"the device's max payload ({max_payload} bytes) is too small")
        self.info = info
        info.inputs = [self._tensor_info(0, i) for i in range(n_in)]
        info.outputs = [self._tensor_info(1, i) for i in range(n_out)]
        info.layers = [self._layer_info(i) for i in range(n_layers)]
        return info

    def _tensor_info(self, kind: int, index: int) -> TensorDesc:
        what = f"TENSOR_INFO {'input' if kind == 0 else 'output'} {index}"
        r = p.Reader(self._request(p.CMD_TENSOR_INFO, bytes([kind, index]), what), what)
        code, rank = r.take("BB")
        shape = tuple(int(r.take("i")) for _ in range(rank))
        nbytes, scale, zero_point = r.take("Ifi")
        name = r.string()
        if code not in p.DTYPES:
            raise p.ProtocolError(f"{what}: unknown dtype code {code}")
        return TensorDesc(name, p.DTYPES[code], shape, nbytes, float(scale), zero_point)

    def _layer_info(self, index: int) -> dict:
        what = f"LAYER_INFO {index}"
        r = p.Reader(self._request(p.CMD_LAYER_INFO, struct.pack("<H", index), what), what)
        op_index = r.take("i")
        op = r.string()
        kernel = r.string()
        return {"kernel": kernel, "op": op, "op_index": op_index}

    @staticmethod
    def _as_input(array, desc: TensorDesc, index: int) -> bytes:
        array = np.asarray(array)
        dtype = np.dtype("int8" if desc.dtype == "bool" else desc.dtype)
        if array.dtype != dtype:
            raise KilnError(f"input {index} ('{desc.name}') is {desc.dtype}, got {array.dtype}: "
                            f"quantize it first (scale {desc.scale}, zero point {desc.zero_point})")
        if array.size * dtype.itemsize != desc.nbytes:
            raise KilnError(f"input {index} ('{desc.name}') has shape {list(desc.shape)}, got "
                            f"{list(array.shape)}")
        return np.ascontiguousarray(array).astype(dtype.newbyteorder("<"), copy=False).tobytes()

    def _set_input(self, index: int, data: bytes) -> None:
        chunk = self._info().max_payload - 5
        for offset in range(0, len(data), chunk) or [0]:
            piece = data[offset: offset + chunk]
            self._request(p.CMD_SET_INPUT, struct.pack("<BI", index, offset) + piece, f"SET_INPUT {index}")

    def _get_output(self, index: int, desc: TensorDesc) -> np.ndarray:
        chunk = self._info().max_payload
        data = bytearray()
        while len(data) < desc.nbytes:
            n = min(chunk, desc.nbytes - len(data))
            piece = self._request(p.CMD_GET_OUTPUT, struct.pack("<BIH", index, len(data), n),
                                  f"GET_OUTPUT {index}")
            if len(piece) != n:
                raise p.ProtocolError(f"GET_OUTPUT {index}: asked {n} bytes, got {len(piece)}")
            data += piece
        dtype = np.dtype("int8" if desc.dtype == "bool" else desc.dtype).newbyteorder("<")
        return np.frombuffer(bytes(data), dtype=dtype).astype(dtype.newbyteorder("="))\
            .reshape(desc.shape)

    def _profile(self) -> list[dict]:
        layers = self._info().layers
        per_frame = self._info().max_payload // 4
        cycles: list[int] = []
        while len(cycles) < len(layers):
            count = min(per_frame, len(layers) - len(cycles))
            reply = self._request(p.CMD_GET_PROFILE, struct.pack("<HH", len(cycles), count), "GET_PROFILE")
            cycles += list(struct.unpack(f"<{count}I", reply))
        return [dict(layer, cycles=c) for layer, c in zip(layers, cycles)]
