"""Host side of the tinykiln device protocol (the device side is runtime/protocol/tk_proto.h).

Frame, both directions, little-endian:

    offset size
    0      2    magic b"TK"
    2      1    protocol version (VERSION)
    3      1    command; replies carry command | 0x80
    4      1    sequence number; the reply echoes the request's
    5      1    status: 0 in requests; in replies ST_OK or an error code (payload = message text)
    6      2    payload length N (at most the device's max payload, from INFO)
    8      N    payload
    8+N    4    CRC-32 (zlib.crc32) of bytes 2 .. 8+N-1

Bytes 0..7 keep this layout in every version, so a version mismatch is always readable. Bytes
outside frames are skipped and kept: they are what the device printed (a banner, a fault report),
and errors show them to the user.

Commands (request payload -> reply payload; str = u8 length + UTF-8):

    INFO         -> u8 version, u16 max_payload, u8 n_inputs, u8 n_outputs, u16 n_layers,
                    u32 arena, u32 weights, u32 clock_hz, str model, str build_id, str board,
                    str core, str cycle_unit
    TENSOR_INFO  u8 kind (0 input, 1 output), u8 index -> u8 dtype, u8 rank, i32 shape[rank],
                    u32 bytes, f32 scale, i32 zero_point, str name
    SET_INPUT    u8 index, u32 offset, bytes -> empty
    INVOKE       u8 flags (bit 0: profile layers) -> u32 cycles
    GET_OUTPUT   u8 index, u32 offset, u16 length -> bytes
    LAYER_INFO   u16 index -> i32 op_index, str op, str kernel
    GET_PROFILE  u16 first, u16 count -> u32 cycles[count]
    ECHO         bytes -> the same bytes
    EXIT         u8 status -> empty, then the app ends with that status
    RESET        -> u32 state bytes; the model's state is cleared (a stateful model's sequences start
                    here; a no-op, 0 bytes, for a stateless one). Added within version 1: a device
                    built before it answers ST_UNKNOWN; every other command is unchanged
"""
from __future__ import annotations

import struct
import time
import zlib
from dataclasses import dataclass

from tinykiln import KilnError

VERSION = 1
MAGIC = b"TK"
HEADER = struct.Struct("<2sBBBBH")  # magic, version, cmd, seq, status, length
CRC = struct.Struct("<I")
REPLY_FLAG = 0x80

CMD_INFO = 0x01
CMD_TENSOR_INFO = 0x02
CMD_SET_INPUT = 0x03
CMD_INVOKE = 0x04
CMD_GET_OUTPUT = 0x05
CMD_LAYER_INFO = 0x06
CMD_GET_PROFILE = 0x07
CMD_ECHO = 0x08
CMD_EXIT = 0x09
CMD_RESET = 0x0A

ST_OK = 0
ST_VERSION = 1
ST_CHECKSUM = 2
ST_TOO_LONG = 3
ST_UNKNOWN = 4
ST_ARGUMENT = 5
ST_RUN = 6
STATUS_NAMES = {
    ST_VERSION: "protocol version mismatch",
    ST_CHECKSUM: "bad checksum",
    ST_TOO_LONG: "frame too long",
    ST_UNKNOWN: "unknown command",
    ST_ARGUMENT: "bad argument",
    ST_RUN: "model run failed",
}

# Element type codes (runtime/ai/tk_model.h tk_dtype).
DTYPES = {1: "int8", 2: "uint8", 3: "int16", 4: "int32", 5: "int64", 6: "float32", 7: "bool"}

# A device's garbage shown in an error is cut to this many bytes (the tail: the latest is the news).
_GARBAGE_SHOWN = 600


class ProtocolError(KilnError):
    """The device did not answer as the protocol says: timeout, garbage, bad checksum, version."""


class DeviceError(KilnError):
    """The device answered with an error status."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@dataclass
class Frame:
    version: int
    cmd: int
    seq: int
    status: int
    payload: bytes


def encode(cmd: int, seq: int, payload: bytes = b"", status: int = 0, version: int = VERSION) -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload of {len(payload)} bytes does not fit a frame")
    head = HEADER.pack(MAGIC, version, cmd, seq & 0xFF, status, len(payload))
    crc = zlib.crc32(head[2:] + payload)
    return head + payload + CRC.pack(crc)


class FrameReader:
    """Reads frames from a transport, keeping every byte that was not part of a frame."""

    def __init__(self, transport):
        self.transport = transport
        self.buffer = bytearray()
        self.garbage = bytearray()  # non-frame bytes since the last clear_garbage()

    def clear_garbage(self) -> None:
        self.garbage.clear()

    def garbage_text(self) -> str:
        shown = bytes(self.garbage[-_GARBAGE_SHOWN:])
        text = shown.decode("utf-8", "replace")
        text = "".join(c if c.isprintable() or c in "\n\t" else "." for c in text).strip()
        if not text:
            return ""
        cut = "..." if len(self.garbage) > _GARBAGE_SHOWN else ""
        return f"\nthe device printed:\n{cut}{text}"

    def _fill(self, deadline: float, what: str) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProtocolError(f"no reply from the device within the timeout while waiting for {what}"
                                f"{self.garbage_text() or ' (it sent nothing)'}")
        chunk = self.transport.read(4096, remaining)
        if chunk is None:  # end of stream: the device (process) is gone
            raise ProtocolError(f"the device closed the connection while we waited for {what}"
                                f"{self.transport.exit_note()}{self.garbage_text()}")
        self.buffer += chunk

    def read_frame(self, deadline: float, what: str) -> Frame:
        while True:
            start = self.buffer.find(MAGIC)
            if start < 0:
                # keep a trailing 'T' in case the magic is split across reads
                keep = 1 if self.buffer.endswith(MAGIC[:1]) else 0
                self.garbage += self.buffer[: len(self.buffer) - keep]
                del self.buffer[: len(self.buffer) - keep]
                self._fill(deadline, what)
                continue
            if start:
                self.garbage += self.buffer[:start]
                del self.buffer[:start]
            if len(self.buffer) < HEADER.size:
                self._fill(deadline, what)
                continue
            _, version, cmd, seq, status, length = HEADER.unpack_from(self.buffer)
            total = HEADER.size + length + CRC.size
            while len(self.buffer) < total:
                self._fill(deadline, what)
            frame_bytes = bytes(self.buffer[:total])
            (crc,) = CRC.unpack_from(frame_bytes, HEADER.size + length)
            if zlib.crc32(frame_bytes[2: HEADER.size + length]) != crc:
                del self.buffer[:total]
                raise ProtocolError(
                    f"bad checksum on the device's reply to {what}: the link corrupts bytes (wrong "
                    f"baud rate? another program on the port?){self.garbage_text()}"
                )
            del self.buffer[:total]
            return Frame(version, cmd, seq, status, frame_bytes[HEADER.size: HEADER.size + length])


class Reader:
    """Cursor over a reply payload."""

    def __init__(self, data: bytes, what: str):
        self.data = data
        self.at = 0
        self.what = what

    def take(self, fmt: str):
        size = struct.calcsize("<" + fmt)
        if self.at + size > len(self.data):
            raise ProtocolError(f"the device's reply to {self.what} is too short: firmware and runner "
                                f"disagree on the protocol (rebuild the firmware)")
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += size
        return values if len(values) > 1 else values[0]

    def string(self) -> str:
        n = self.take("B")
        if self.at + n > len(self.data):
            raise ProtocolError(f"the device's reply to {self.what} is too short")
        text = self.data[self.at: self.at + n].decode("utf-8", "replace")
        self.at += n
        return text

    def rest(self) -> bytes:
        out = self.data[self.at:]
        self.at = len(self.data)
        return out
