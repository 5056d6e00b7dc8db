"""What the importer tolerates that LiteRT refuses, and a corrected copy of the file LiteRT can run.

The importer accepts a few deviations from LiteRT's load-time rules on purpose, where the file's
meaning is not in doubt and TFLite Micro runs it (importer._quant). Validation still needs LiteRT's
reference kernels, so it runs them on a copy with exactly these deviations corrected, and says so:

- a rank-0 or rank-1 tensor (a bias, a scalar) whose quantized_dimension is not 0: such a tensor
  can only be quantized along axis 0, so the value is meaningless (converters leave stale values on
  biases); LiteRT refuses a quantized_dimension outside the tensor's axes, TFLite Micro and the
  importer ignore it. The copy has quantized_dimension 0.
- a buffer whose data vector is present but empty (how PyTorch exporters mark activations): TFLite
  Micro and the importer read it as no data, LiteRT 2.3 takes it for a 0-byte constant and refuses
  it. The copy has no data vector there.
- a string that is not UTF-8 (a tensor's name, a signature's key or tensor names, ...): a name is
  only a label to the importer (and to TFLite Micro); LiteRT's Python API cannot decode it. The
  copy has the string with U+FFFD for the bad bytes.

    data, corrections = corrected_copy(original)   # corrections: [] when there is nothing to correct

One tolerance has no correction, and validation then compares nothing (runner/reference.py says why,
with `explain`): op versions. The importer, like TFLite Micro, does not check an op's version (the
op's options and tensors say what it computes); LiteRT refuses a version its kernels do not have,
and a lower version in a copy could mean another computation.

The copy is written through flatc's object API (ai_edge_litert.schema_py_generated): the same model,
only the listed fields differ; constant data is kept 16-byte aligned and inline.
"""
from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np

from .verify import IDENTIFIER

DATA_ALIGNMENT = 16  # the schema's force_align on Buffer.data, which the Python object API drops


@dataclass(frozen=True)
class Correction:
    where: str  # "tensor 3 'conv/bias'"
    change: str  # "quantized_dimension 3 -> 0"
    why: str

    def __str__(self) -> str:
        return f"{self.where}: {self.change} ({self.why})"


RANK1_AXIS = ("a rank-0/1 tensor is quantized along axis 0 whatever the file says; LiteRT refuses the "
              "stale value, TFLite Micro ignores it")
EMPTY_DATA = ("an empty data vector means no data to TFLite Micro; LiteRT takes it for a 0-byte constant "
              "and refuses it")
NOT_UTF8 = "a name is a label; LiteRT's Python API cannot decode a name that is not UTF-8"
# LiteRT's refusals the importer tolerates without a correction: (what LiteRT says, why)
UNCORRECTED = (
    ("Didn't find op for builtin opcode", "tinykiln, like TFLite Micro, does not check op versions: the "
     "op's options and tensors say what it computes; this LiteRT has no kernel of that version"),
)


def explain(litert_error: str) -> str:
    """Why the importer accepts what LiteRT refused with `litert_error` ("" if that is no tolerance)."""
    return next((why for said, why in UNCORRECTED if said in litert_error), "")


def _correct(model) -> list[Correction]:
    """Correct the object-API model in place; what was changed."""
    out = _utf8(model, "model")
    for b, buf in enumerate(model.buffers or []):
        if buf.data is not None and len(buf.data) == 0:
            out.append(Correction(f"buffer {b}", "empty data vector -> none", EMPTY_DATA))
            buf.data = None
    for s, sg in enumerate(model.subgraphs or []):
        for i, t in enumerate(sg.tensors or []):
            q = t.quantization
            rank = 0 if t.shape is None else len(t.shape)
            if q is not None and rank <= 1 and q.quantizedDimension != 0:
                name = (t.name or b"").decode(errors="replace")
                where = f"tensor {i} '{name}'" + (f" of subgraph {s}" if s else "")
                out.append(Correction(where, f"quantized_dimension {q.quantizedDimension} -> 0", RANK1_AXIS))
                q.quantizedDimension = 0
    return out


def _utf8(obj, where: str) -> list[Correction]:
    """Every string of the object tree made UTF-8 (strings are the object API's only bytes values)."""
    out = []
    for key, value in list(vars(obj).items()):
        here = f"{where}.{key}"
        if isinstance(value, bytes):
            text = value.decode(errors="replace")
            if text.encode() != value:
                out.append(Correction(here, f"{value!r} -> {text!r}", NOT_UTF8))
                setattr(obj, key, text.encode())
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if hasattr(item, "__dict__"):
                    out += _utf8(item, f"{here}[{i}]")
        elif hasattr(value, "__dict__") and not isinstance(value, type):
            out += _utf8(value, here)
    return out


def corrected_copy(data: bytes) -> tuple[bytes, list[Correction]]:
    """The file with every tolerated deviation corrected, and the corrections (the input itself and
    [] if there are none)."""
    from ai_edge_litert import schema_py_generated as schema

    data = bytes(data)
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    corrections = _correct(model)
    if not corrections:
        return data, []
    model.buffers = [_InlineBuffer(b, data, schema) for b in model.buffers or []]
    builder = flatbuffers.Builder(1024 + len(data))
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    return bytes(builder.Output()), corrections


class _InlineBuffer:
    """A buffer written 16-byte aligned, its data inline: data the original kept after the
    flatbuffer (offset/size, models over 2 GB) moves into the copy, whose layout differs."""

    def __init__(self, b, data: bytes, schema):
        self.schema = schema
        self.raw = None
        if b.data is not None:
            self.raw = np.ascontiguousarray(b.data).view(np.uint8).tobytes()
        elif b.offset > 1:
            self.raw = data[b.offset:b.offset + b.size]

    def Pack(self, builder):  # noqa: N802 - the object API's name
        vector = None
        if self.raw is not None:
            builder.StartVector(1, len(self.raw), DATA_ALIGNMENT)
            builder.head -= len(self.raw)
            builder.Bytes[builder.head:builder.head + len(self.raw)] = self.raw
            vector = builder.EndVector()
        self.schema.BufferStart(builder)
        if vector is not None:
            self.schema.BufferAddData(builder, vector)
        return self.schema.BufferEnd(builder)
