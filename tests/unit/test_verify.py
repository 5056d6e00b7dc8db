"""The flatbuffer verifier (tinykiln.tflite.verify): files LiteRT refuses as invalid flatbuffers are
refused at import, naming the bad field; every valid model still imports. Each corrupt file is also
shown to LiteRT, in a child process (LiteRT may crash on files it has not verified), which must
refuse it the same way."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

import modelgen
from tinykiln import KilnError, tflite
from tinykiln.tflite import schema
from tinykiln.tflite.verify import CorruptFile, verify

SHARED = Path(__file__).resolve().parents[3] / "shared" / "models"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/models")
LITERT_INVALID = "The model is not a valid Flatbuffer buffer"


# -- where things are in a small model -------------------------------------------------------------

def _model() -> bytes:
    return modelgen.example("CONV_2D", "int8", 1)[0]


def _root(data: bytes):
    from ai_edge_litert import schema_py_generated as s

    return s.Model.GetRootAs(data, 0)


def _field(obj, slot: int) -> int:
    """Where a table's field is stored."""
    off = obj._tab.Offset(slot)
    assert off, f"field at slot {slot} is absent"
    return obj._tab.Pos + off


def _target(data: bytes, at: int) -> int:
    return at + struct.unpack_from("<I", data, at)[0]


def _put(data: bytes, at: int, fmt: str, value) -> bytes:
    buf = bytearray(data)
    struct.pack_into(fmt, buf, at, value)
    return bytes(buf)


def _tensor0(data):
    return _root(data).Subgraphs(0).Tensors(0)


def _name_offset_past_end(data):
    at = _field(_tensor0(data), 10)
    return _put(data, at, "<I", len(data) + 64 - at)


def _zero_name_offset(data):
    return _put(data, _field(_tensor0(data), 10), "<I", 0)


def _shape_too_long(data):
    return _put(data, _target(data, _field(_tensor0(data), 4)), "<I", 1 << 24)


def _unterminated_name(data):
    name = _target(data, _field(_tensor0(data), 10))
    length = struct.unpack_from("<I", data, name)[0]
    return _put(data, name + 4 + length, "<B", ord("x"))


def _vtable_outside(data):
    return _put(data, _tensor0(data)._tab.Pos, "<i", -len(data))


def _vtable_odd_size(data):
    t = _tensor0(data)
    vtable = t._tab.Pos - struct.unpack_from("<i", data, t._tab.Pos)[0]
    return _put(data, vtable, "<H", 7)


def _unaligned_tensors(data):
    at = _field(_root(data).Subgraphs(0), 4)
    return _put(data, at, "<I", struct.unpack_from("<I", data, at)[0] + 1)


def _bad_options_table(data):
    op = _root(data).Subgraphs(0).Operators(0)
    table = _target(data, _field(op, 12))
    return _put(data, table, "<i", 1 << 30)


def _truncated(data):
    return data[: len(data) // 3]


# (corruption, what the message must name)
CORRUPTIONS = [
    (_name_offset_past_end, "model.subgraphs[0].tensors[0].name: offset at byte"),
    (_zero_name_offset, "model.subgraphs[0].tensors[0].name: offset at byte"),
    (_shape_too_long, "model.subgraphs[0].tensors[0].shape: vector of 16777216 elements"),
    (_unterminated_name, "model.subgraphs[0].tensors[0].name: string at byte"),
    (_vtable_outside, "model.subgraphs[0].tensors[0] vtable"),
    (_vtable_odd_size, "model.subgraphs[0].tensors[0]: vtable at byte"),
    (_unaligned_tensors, "model.subgraphs[0].tensors length: 4-byte value at byte"),
    (_bad_options_table, "model.subgraphs[0].operators[0].builtin_options (Conv2DOptions) vtable"),
    (_truncated, "outside the file"),
]


@pytest.mark.parametrize("corrupt, named", CORRUPTIONS, ids=[c.__name__.strip("_") for c, _ in CORRUPTIONS])
def test_corrupt_file_is_refused_naming_the_field_as_litert_refuses_it(corrupt, named):
    data = corrupt(_model())
    with pytest.raises(CorruptFile) as info:
        verify(data)
    assert named in str(info.value)
    with pytest.raises(KilnError) as load:
        tflite.load(data, name="broken")
    message = str(load.value)
    assert message.startswith("broken: not a valid TFLite model: ") and named in message
    assert "export it again" in message
    assert LITERT_INVALID in (modelgen.litert_error(data) or "LiteRT loaded it")


def test_identifier_and_size_rules():
    data = _model()
    for bad, named in ((b"", "empty"), (data[:11], "only 11 bytes"),
                       (data[:4] + b"TFL2" + data[8:], "identifier")):
        with pytest.raises(CorruptFile, match=named):
            verify(bad)
        if bad:
            assert LITERT_INVALID in (modelgen.litert_error(bad) or "")


def test_unknown_union_type_is_not_verified_like_litert():
    """A builtin options type the schema does not know is skipped by LiteRT's verifier: so here."""
    data = _model()
    op = _root(data).Subgraphs(0).Operators(0)
    broken = _bad_options_table(data)
    unknown = _put(broken, _field(op, 10), "<B", 250)
    verify(unknown)
    assert LITERT_INVALID not in (modelgen.litert_error(unknown) or "")


def test_every_valid_model_verifies_and_imports_as_before():
    files = sorted(SHARED.glob("*.tflite")) + sorted(SHARED.glob("zoo/*.tflite"))
    root = Path(__file__).resolve().parents[2]
    files += sorted(root.glob("models/*/*.tflite"))
    generated = [modelgen.example(kind, dtype, seed)[0] for kind in modelgen.OP_KINDS
                 for dtype in ("int8", "float32") for seed in (0, 1)]
    for data in [f.read_bytes() for f in files] + generated:
        verify(data)
    for source in [f for f in files if f.parent.name != "zoo"] + generated:
        tflite.load(source)
    for f in SHARED.glob("zoo/*.tflite"):  # models whose ops the importer may not support yet
        try:
            tflite.load(f)
        except KilnError as e:
            assert "not a valid TFLite model" not in str(e), str(e)


def test_schema_walk_covers_what_the_reader_reads():
    tables = schema.tables()
    kinds = {f.name: f.kind for f in tables["Tensor"]}
    assert kinds["shape"] == schema.VECTOR and kinds["name"] == schema.STRING
    assert kinds["quantization"] == schema.TABLE and kinds["type"] == schema.SCALAR
    assert {f.name: f.table for f in tables["Model"]}["subgraphs"] == "SubGraph"
    assert [f.size for f in tables["QuantizationParameters"] if f.name == "zero_point"] == [8]
    options = schema.union_members("BuiltinOptions")
    assert options[1] == "Conv2DOptions" and all(name in tables for name in options.values())


@pytest.mark.slow
def test_table_count_limit():
    """LiteRT's verifier stops at 1,000,000 tables: a vector of that many offsets to one buffer table."""
    import numpy as np

    model = _model()
    count = 1_000_001
    start = (len(model) + 3) // 4 * 4
    vtable = start + 4 + 4 * count  # an empty Buffer table after the vector: offsets only go forward
    table = vtable + 4
    slots = start + 4 + 4 * np.arange(count, dtype=np.int64)
    data = (model.ljust(start, b"\0") + struct.pack("<I", count) + (table - slots).astype("<u4").tobytes()
            + struct.pack("<HHi", 4, 4, table - vtable))
    at = _field(_root(model), 12)
    data = _put(data, at, "<I", start - at)
    with pytest.raises(CorruptFile, match="more than 1,000,000 tables"):
        verify(data)
    assert LITERT_INVALID in (modelgen.litert_error(data) or "")


def test_schema_version_other_than_3_is_refused_as_litert_refuses_it():
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(_model(), 0)
    model.version = 0
    data = modelgen.pack(model)
    with pytest.raises(KilnError, match="schema version 0; LiteRT and TFLite Micro load version 3 only: "
                                        "export it again"):
        tflite.load(data)
    assert "schema version 0 not equal to supported version 3" in (modelgen.litert_error(data) or "")


def test_int8_softmax_beta_litert_cannot_prepare_is_refused():
    """Found by fuzzing against LiteRT: a tiny beta makes SoftmaxPrepare abort (LiteRT and TFLite
    Micro: QuantizeMultiplierGreaterThanOne needs beta * input scale * 2^26 > 1)."""
    from ai_edge_litert import schema_py_generated as s

    model = s.ModelT.InitFromPackedBuf(modelgen.example("SOFTMAX", "int8", 0)[0], 0)
    tflite.load(modelgen.pack(model))
    model.subgraphs[0].operators[0].builtinOptions.beta = 1e-30
    data = modelgen.pack(model)
    with pytest.raises(KilnError, match=r"int8 SOFTMAX needs beta \* input scale \* 2\^26 > 1, has beta 1e-30"):
        tflite.load(data)
    assert "crashed" in (modelgen.litert_error(data, run=True) or "")
