"""Read the FlexBuffer map a custom op carries in `custom_options` (TFLite_Detection_PostProcess's
attributes), trusting nothing in the bytes.

The format (flatbuffers.dev, "FlexBuffers"): the buffer ends with the root's byte width and its
packed type (type << 2 | log2 of the child width); the root value sits just before those two bytes.
A map is reached through an unsigned offset back from where the offset is stored; at the map lie
`size` values of the map's width, followed by one packed type byte per value; before it, three
words of that width: the offset back to the keys vector, the keys' width, and `size`. Keys are a
vector of offsets back to NUL-terminated strings, sorted. Scalars are stored inline (INT, UINT,
FLOAT, BOOL, of the parent's width) or behind an offset (INDIRECT_*, of the packed width).

The `flatbuffers` package has a reader, but it follows offsets without checks: a negative position
wraps around to the end of the buffer and a truncated vector reads as a shorter one, so a corrupt
map would read as plausible values. This one checks every position against the buffer and raises
FlexError instead; it reads the scalar values the importer needs (other kinds read as None).
"""
from __future__ import annotations

import struct

# type codes (the upper six bits of a packed type)
NULL, INT, UINT, FLOAT, KEY = 0, 1, 2, 3, 4
INDIRECT_INT, INDIRECT_UINT, INDIRECT_FLOAT, MAP, BOOL = 6, 7, 8, 9, 26
_INT_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}
_MAX_KEYS = 4096  # far more than any op's attributes: a corrupt size is refused before the loop


class FlexError(Exception):
    """The bytes are not a readable FlexBuffer map."""


class _Bytes:
    def __init__(self, data: bytes):
        self.data = data

    def span(self, pos: int, n: int, what: str) -> bytes:
        if n < 0 or pos < 0 or pos + n > len(self.data):
            raise FlexError(f"{what} at byte {pos} lies outside the {len(self.data)}-byte options")
        return self.data[pos:pos + n]

    def uint(self, pos: int, width: int, what: str) -> int:
        if width not in _INT_FORMATS:
            raise FlexError(f"{what}: width {width} is not 1, 2, 4 or 8 bytes")
        return int.from_bytes(self.span(pos, width, what), "little")

    def int(self, pos: int, width: int, what: str) -> int:
        return struct.unpack("<" + _INT_FORMATS[width], self.span(pos, width, what))[0]

    def float(self, pos: int, width: int, what: str) -> float:
        if width == 4:
            return struct.unpack("<f", self.span(pos, 4, what))[0]
        if width == 8:
            return struct.unpack("<d", self.span(pos, 8, what))[0]
        raise FlexError(f"{what}: a float of {width} bytes")

    def back(self, pos: int, width: int, what: str) -> int:
        """The position an offset stored at `pos` points to (offsets point backwards)."""
        target = pos - self.uint(pos, width, what)
        if not 0 <= target < len(self.data):
            raise FlexError(f"{what}: offset at byte {pos} points outside the options")
        return target

    def key(self, pos: int) -> str:
        end = self.data.find(b"\0", pos)
        if end < 0:
            raise FlexError(f"key at byte {pos} is not NUL-terminated")
        return self.data[pos:end].decode("utf-8", errors="replace")


def read_map(data: bytes) -> dict[str, int | float | bool | None]:
    """The root map's keys and scalar values (bool, int or float; None for other kinds)."""
    b = _Bytes(bytes(data))
    if len(b.data) < 3:
        raise FlexError(f"only {len(b.data)} bytes")
    root_width = b.data[-1]
    packed = b.data[-2]
    root = len(b.data) - 2 - root_width
    if packed >> 2 != MAP:
        raise FlexError(f"the root is of type {packed >> 2}, not a map")
    pos = b.back(root, root_width, "root")
    width = 1 << (packed & 3)
    size = b.uint(pos - width, width, "map size")
    if size > _MAX_KEYS or pos + size * (width + 1) > len(b.data):
        raise FlexError(f"a map of {size} entries does not fit in the options")
    keys = b.back(pos - 3 * width, width, "keys vector")
    key_width = b.uint(pos - 2 * width, width, "key width")
    if b.uint(keys - key_width, key_width, "keys size") != size:
        raise FlexError("the map's keys and values differ in number")
    out: dict[str, int | float | bool | None] = {}
    for i in range(size):
        slot = keys + i * key_width
        name = b.key(b.back(slot, key_width, f"key {i}"))
        out[name] = _scalar(b, pos + i * width, width, b.data[pos + size * width + i], name)
    return out


def _scalar(b: _Bytes, pos: int, width: int, packed: int, name: str):
    kind, child = packed >> 2, 1 << (packed & 3)
    what = f"value of '{name}'"
    if kind == BOOL:
        return b.uint(pos, width, what) != 0
    if kind == INT:
        return b.int(pos, width, what)
    if kind == UINT:
        return b.uint(pos, width, what)
    if kind == FLOAT:
        return b.float(pos, width, what)
    if kind in (INDIRECT_INT, INDIRECT_UINT, INDIRECT_FLOAT):
        target = b.back(pos, width, what)
        if kind == INDIRECT_FLOAT:
            return b.float(target, child, what)
        return b.int(target, child, what) if kind == INDIRECT_INT else b.uint(target, child, what)
    return None
