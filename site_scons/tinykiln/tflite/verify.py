"""Verify a .tflite file the way LiteRT does before it reads it, naming the first thing that is wrong.

LiteRT loads a model only after flatbuffers' Verifier has walked it with the TFLite schema
(VerifyModelBuffer; a file that fails is "not a valid Flatbuffer buffer"). This module applies the
same rules over the same schema (tinykiln.tflite.schema, read from LiteRT's generated Python), so a
file LiteRT would refuse is refused at build time, with the field that is bad:

- the file is at least 12 bytes and carries the file identifier 'TFL3' at byte 4;
- every offset (the root's, a table field's) is 4-byte aligned, non-zero, below 2^31 and lands
  inside the file;
- every table starts with a 4-byte aligned vtable offset inside the file; its vtable is 2-byte
  aligned, of even size, and lies wholly inside the file;
- every scalar field present lies inside the file, aligned to its size;
- every vector (and string) has its 4-byte aligned length inside the file, fewer than 2^31 bytes of
  elements, and all of them inside the file; a string ends with a 0 byte inside the file;
- every table reached (through a field, a vector of tables, or a union member of a known type) is
  verified the same way, at most 64 tables deep and at most 1,000,000 tables in all.

What the Verifier does not check (the table's declared size, vector element alignment, union
types the schema does not know) is not checked here either. Flatbuffers' range rule is kept
exactly: a range of `n` bytes at `pos` is inside a file of `size` bytes when n < size and
pos <= size - n.
"""
from __future__ import annotations

import struct

from . import schema

MIN_SIZE = 12  # root offset, vtable offset, vtable size, table size
MAX_SIZE = (1 << 31) - 1  # flatbuffers' 32-bit limit: offsets and vector bytes stay below it
MAX_DEPTH = 64
MAX_TABLES = 1_000_000
IDENTIFIER = b"TFL3"
ROOT = "Model"


class CorruptFile(Exception):
    """The bytes are not a readable TFLite flatbuffer (the reason names the bad part)."""


def verify(data: bytes) -> None:
    """Raise CorruptFile naming the first part of the file LiteRT's verifier would refuse."""
    _Verifier(bytes(data)).buffer()


class _Verifier:
    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)
        self.depth = 0
        self.tables = 0
        self.schema = schema.tables()

    # -- the primitive rules -----------------------------------------------------------------------

    def _inside(self, pos: int, n: int) -> bool:
        return n < self.size and 0 <= pos <= self.size - n

    def _scalar(self, pos: int, n: int, what: str) -> None:
        if pos % n:
            raise CorruptFile(f"{what}: {n}-byte value at byte {pos} is not {n}-byte aligned")
        if not self._inside(pos, n):
            raise CorruptFile(f"{what}: {n}-byte value at byte {pos} is outside the file ({self.size} bytes)")

    def _u32(self, pos: int) -> int:
        return struct.unpack_from("<I", self.data, pos)[0]

    def _offset(self, pos: int, what: str) -> int:
        """The target of the offset stored at pos."""
        self._scalar(pos, 4, what)
        o = self._u32(pos)
        if o == 0:
            raise CorruptFile(f"{what}: offset at byte {pos} is 0 (points at itself)")
        if o >= 1 << 31:
            raise CorruptFile(f"{what}: offset {o} at byte {pos} is negative as a signed offset")
        if not self._inside(pos + o, 1):
            raise CorruptFile(f"{what}: offset at byte {pos} points to byte {pos + o}, outside the file "
                              f"({self.size} bytes)")
        return pos + o

    def _vector(self, pos: int, elem_size: int, what: str) -> int:
        """The element count of the vector at pos, checked to fit in the file."""
        self._scalar(pos, 4, f"{what} length")
        n = self._u32(pos)
        if n >= MAX_SIZE // elem_size:
            raise CorruptFile(f"{what}: vector of {n} elements at byte {pos} is larger than a flatbuffer can be")
        if not self._inside(pos, 4 + n * elem_size):
            raise CorruptFile(f"{what}: vector of {n} elements at byte {pos} runs past the end of the file "
                              f"({self.size} bytes)")
        return n

    def _string(self, pos: int, what: str) -> None:
        end = pos + 4 + self._vector(pos, 1, what)
        if not self._inside(end, 1) or self.data[end] != 0:
            raise CorruptFile(f"{what}: string at byte {pos} is not terminated by a 0 byte")

    # -- the schema walk -----------------------------------------------------------------------------

    def buffer(self) -> None:
        if self.size < MIN_SIZE:
            raise CorruptFile(f"the file is only {self.size} bytes long" if self.size else "the file is empty")
        if self.size >= MAX_SIZE:
            raise CorruptFile(f"the file is {self.size} bytes long: flatbuffers end at 2 GiB")
        if self.data[4:8] != IDENTIFIER:
            raise CorruptFile("no TFLite file identifier ('TFL3' at byte 4)")
        self._table(self._offset(0, "root offset"), ROOT, "model")

    def _table(self, pos: int, name: str, what: str) -> None:
        self._scalar(pos, 4, f"{what} (table)")
        vtable = pos - struct.unpack_from("<i", self.data, pos)[0]
        self.depth += 1
        self.tables += 1
        if self.depth > MAX_DEPTH:
            raise CorruptFile(f"{what}: tables nested more than {MAX_DEPTH} deep")
        if self.tables > MAX_TABLES:
            raise CorruptFile(f"{what}: more than {MAX_TABLES:,} tables")
        self._scalar(vtable, 2, f"{what} vtable")
        vsize = struct.unpack_from("<H", self.data, vtable)[0]
        if vsize % 2 or not self._inside(vtable, vsize):
            raise CorruptFile(f"{what}: vtable at byte {vtable} of {vsize} bytes is odd-sized or runs past "
                              f"the end of the file ({self.size} bytes)")
        present = {}
        for field in self.schema[name]:
            if field.slot < vsize:
                at = struct.unpack_from("<H", self.data, vtable + field.slot)[0]
                if at:
                    present[field.slot] = (field, pos + at)
        for field, at in present.values():
            self._field(field, at, present, f"{what}.{field.name}")
        self.depth -= 1

    def _field(self, field: schema.Field, at: int, present: dict, what: str) -> None:
        kind = field.kind
        if kind == schema.SCALAR:
            self._scalar(at, field.size, what)
            return
        target = self._offset(at, what)
        if kind == schema.STRING:
            self._string(target, what)
        elif kind == schema.TABLE:
            self._table(target, field.table, what)
        elif kind == schema.VECTOR:
            self._vector(target, field.size, what)
        elif kind == schema.STRINGS:
            for i in range(self._vector(target, 4, what)):
                slot = target + 4 + 4 * i
                self._string(slot + self._u32(slot), f"{what}[{i}]")
        elif kind == schema.TABLES:
            for i in range(self._vector(target, 4, what)):
                slot = target + 4 + 4 * i
                self._table(slot + self._u32(slot), field.table, f"{what}[{i}]")
        else:  # a union: its type is the field before it; NONE and unknown types are not verified
            type_field = present.get(field.slot - 2)
            code = self.data[type_field[1]] if type_field else 0
            member = schema.union_members(field.table).get(code)
            if member:
                self._table(target, member, f"{what} ({member})")
