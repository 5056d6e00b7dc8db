"""The TFLite schema as data: every table's fields, their slots and types, for the verifier.

The facts come from LiteRT's own generated Python schema (ai_edge_litert.schema_py_generated, the
schema of the LiteRT that validation runs), not from a copy typed here: flatc writes one accessor
per field in a fixed pattern (a scalar read at `o + self._tab.Pos`, a vector through
`self._tab.Vector(o)`, a table through `self._tab.Indirect`, a union through `self._tab.Union`),
and the object API's `<Union>Creator` functions map each union's members to their tables. A pattern
this module does not know raises SchemaError, so a new flatc or schema cannot be misread silently.

    tables()["Tensor"]   -> (Field("shape", 4, VECTOR, 4), Field("type", 6, SCALAR, 1), ...)
"""
from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass

import flatbuffers

SCALAR, STRING, TABLE, UNION, VECTOR, STRINGS, TABLES = (
    "scalar", "string", "table", "union", "vector", "vector of strings", "vector of tables")


class SchemaError(Exception):
    """The generated schema has an accessor this module does not understand."""


@dataclass(frozen=True)
class Field:
    name: str  # the schema's snake_case name
    slot: int  # the field's byte offset in the vtable (4 + 2 * id)
    kind: str  # one of the kinds above
    size: int = 0  # SCALAR / VECTOR: the element's bytes
    table: str = ""  # TABLE / TABLES: the table; UNION: the union's name


_CLASS = re.compile(r"^class (\w+)\(object\):\n(.*?)(?=^\S|\Z)", re.M | re.S)
_METHOD = re.compile(r"^    def (\w+)\(self(, j)?\):\n(.*?)(?=^    \S|\Z)", re.M | re.S)
_SLOT = re.compile(r"self\._tab\.Offset\((\d+)\)")
_GET = re.compile(r"self\._tab\.Get\(flatbuffers\.number_types\.(\w+), (o|a) \+")
_OBJ = re.compile(r"obj = (\w+)\(\)")
_CREATOR = re.compile(r"^def (\w+)Creator\(unionType, table\):\n(.*?)(?=^\S|\Z)", re.M | re.S)
_MEMBER = re.compile(r"if unionType == \w+\.(\w+):\n\s+return (\w+)T\.InitFromBuf")
_HELPERS = ("GetVectorAsNumpy(", "VectorLen(o)", "return o == 0")
_UNION_FIELD = re.compile(r"= (\w+)Creator\(self\.\w+, \w+\.(\w+)\(\)\)")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _kind(cls: str, name: str, vector: bool, body: str, slot: int, unions: dict) -> Field:
    get = _GET.search(body)
    obj = _OBJ.search(body)
    where = f"{cls}.{name}"
    if "self._tab.Union(" in body:
        if (cls, name) not in unions:
            raise SchemaError(f"{where}: a union whose members no Creator function names")
        return Field(_snake(name), slot, UNION, table=unions[cls, name])
    if not vector:
        if "self._tab.String(o + self._tab.Pos)" in body:
            return Field(_snake(name), slot, STRING)
        if obj and "self._tab.Indirect(o + self._tab.Pos)" in body:
            return Field(_snake(name), slot, TABLE, table=obj.group(1))
        if get and get.group(2) == "o":
            return Field(_snake(name), slot, SCALAR, _width(get.group(1), where))
    elif "self._tab.Vector(o)" in body:
        if obj and "self._tab.Indirect(x)" in body:
            return Field(_snake(name), slot, TABLES, 4, obj.group(1))
        if "self._tab.String(a +" in body:
            return Field(_snake(name), slot, STRINGS, 4)
        if get and get.group(2) == "a":
            return Field(_snake(name), slot, VECTOR, _width(get.group(1), where))
    raise SchemaError(f"{where}: an accessor of a kind the verifier does not know (struct?)")


def _width(flags: str, where: str) -> int:
    number = getattr(flatbuffers.number_types, flags, None)
    if number is None:
        raise SchemaError(f"{where}: unknown number type {flags}")
    return number.bytewidth


def _parse(source: str) -> tuple[dict, dict]:
    """(table name -> fields in slot order, union name -> {member code: table name})."""
    unions = {union: dict(_MEMBER.findall(body)) for union, body in _CREATOR.findall(source)}
    classes = dict(_CLASS.findall(source))
    codes: dict[str, dict[int, str]] = {}
    for union, members in unions.items():
        values = dict(re.findall(r"^    (\w+) = (\d+)$", classes.get(union, ""), re.M))
        codes[union] = {int(values[m]): t for m, t in members.items() if m in values}
    # which accessor of which table holds which union, from the object API's _UnPack
    owner = {}
    for cls, body in classes.items():
        if cls.endswith("T") and cls[:-1] in classes:
            for union, accessor in _UNION_FIELD.findall(body):
                owner[cls[:-1], accessor] = union
    tables: dict[str, tuple[Field, ...]] = {}
    for cls, body in classes.items():
        if "def Init(self, buf, pos):" not in body or "self._tab = flatbuffers.table.Table" not in body:
            continue  # an enum, or an object-API class
        fields: dict[int, Field] = {}
        for name, vector, method in _METHOD.findall(body):
            slot = _SLOT.search(method)
            if not slot or any(helper in method for helper in _HELPERS):
                continue  # not a field, or a vector field's AsNumpy / Length / IsNone helper
            field = _kind(cls, name, bool(vector), method, int(slot.group(1)), owner)
            fields[field.slot] = field
        tables[cls] = tuple(fields[s] for s in sorted(fields))
    return tables, codes


@functools.cache
def _schema() -> tuple[dict, dict]:
    from ai_edge_litert import schema_py_generated

    return _parse(inspect.getsource(schema_py_generated))


def tables() -> dict[str, tuple[Field, ...]]:
    """Every table of the TFLite schema: its fields in slot order."""
    return _schema()[0]


def union_members(union: str) -> dict[int, str]:
    """A union's type codes and the table each names (NONE, code 0, names none)."""
    return _schema()[1][union]
