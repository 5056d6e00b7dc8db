"""Read a .tflite flatbuffer into plain Python records, trusting nothing in the file.

The flatbuffers reader of the `tflite` package follows whatever offsets the file holds: on a corrupt
file it raises assorted exceptions (struct.error, TypeError, ValueError, ...) or, given a hostile
vector length, loops for a very long time. So the file is first verified as LiteRT verifies it
(verify.py: a file LiteRT would refuse is refused here, naming the bad field), and the reading
still checks every vector length against the file size before it is iterated; any failure becomes
one CorruptFile exception. Nothing here judges whether the model is supported (see importer.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import tflite  # the `tflite` package (flatbuffer readers), not tinykiln.tflite
from tflite.BuiltinOperator import BuiltinOperator
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType

from .verify import CorruptFile, verify

# code -> name tables of the schema enums
OPERATOR_NAMES = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
OPTIONS_NAMES = {v: k for k, v in vars(BuiltinOptions).items() if not k.startswith("_")}
TENSOR_TYPE_NAMES = {v: k.lower() for k, v in vars(TensorType).items() if not k.startswith("_")}

# The builtin options the importer reads: union member name -> scalar getters. Vector-valued options
# (SqueezeDims, NewShape) are read separately. Absent fields read as the schema defaults.
OPTION_FIELDS = {
    "Conv2DOptions": ("Padding", "StrideW", "StrideH", "FusedActivationFunction", "DilationWFactor",
                      "DilationHFactor", "QuantizedBiasType"),
    "DepthwiseConv2DOptions": ("Padding", "StrideW", "StrideH", "DepthMultiplier", "FusedActivationFunction",
                               "DilationWFactor", "DilationHFactor"),
    "FullyConnectedOptions": ("FusedActivationFunction", "WeightsFormat", "KeepNumDims",
                              "AsymmetricQuantizeInputs", "QuantizedBiasType"),
    "Pool2DOptions": ("Padding", "StrideW", "StrideH", "FilterWidth", "FilterHeight", "FusedActivationFunction"),
    "AddOptions": ("FusedActivationFunction", "PotScaleInt16"),
    "SubOptions": ("FusedActivationFunction", "PotScaleInt16"),
    "MulOptions": ("FusedActivationFunction",),
    "SoftmaxOptions": ("Beta",),
    "ConcatenationOptions": ("Axis", "FusedActivationFunction"),
    "ReducerOptions": ("KeepDims",),
    "LeakyReluOptions": ("Alpha",),
    "StridedSliceOptions": ("BeginMask", "EndMask", "EllipsisMask", "NewAxisMask", "ShrinkAxisMask", "Offset"),
    "SqueezeOptions": (),
    "ReshapeOptions": (),
    # the reduce area's ops
    "ArgMaxOptions": ("OutputType",),
    "ArgMinOptions": ("OutputType",),
    "L2NormOptions": ("FusedActivationFunction",),
    "BatchMatMulOptions": ("AdjX", "AdjY", "AsymmetricQuantizeInputs"),
    "TransposeConvOptions": ("Padding", "StrideW", "StrideH", "FusedActivationFunction", "QuantizedBiasType"),
    # elementwise math (unary)
    "GeluOptions": ("Approximate",),
    # idioms: the options of the ops folded at import (tflite/fold.py)
    "PackOptions": ("ValuesCount", "Axis"),
    "UnpackOptions": ("Num", "Axis"),
    "GatherOptions": ("Axis", "BatchDims"),
    "ShapeOptions": ("OutType",),
    "DivOptions": ("FusedActivationFunction",),
    # -- data movement and resampling (the movement area) --
    "ResizeNearestNeighborOptions": ("AlignCorners", "HalfPixelCenters"),
    "ResizeBilinearOptions": ("AlignCorners", "HalfPixelCenters"),
    "SplitOptions": ("NumSplits",),
    "SplitVOptions": ("NumSplits",),
    "SpaceToDepthOptions": ("BlockSize",),
    "DepthToSpaceOptions": ("BlockSize",),
    "MirrorPadOptions": ("Mode",),
    # -- stateful ops (the state area) --
    "SVDFOptions": ("Rank", "FusedActivationFunction", "AsymmetricQuantizeInputs"),
    "UnidirectionalSequenceLSTMOptions": ("FusedActivationFunction", "CellClip", "ProjClip", "TimeMajor",
                                          "AsymmetricQuantizeInputs", "DiagonalRecurrentTensors"),
}
OPTION_VECTORS = {"SqueezeOptions": "SqueezeDims", "ReshapeOptions": "NewShape"}


@dataclass
class RawQuant:
    scale: np.ndarray  # float32
    zero_point: np.ndarray  # int64
    quantized_dimension: int
    has_details: bool  # custom quantization details (unsupported)


@dataclass
class RawTensor:
    name: str
    shape: tuple[int, ...]
    shape_signature: tuple[int, ...] | None
    type: int  # TensorType code
    buffer: int
    quant: RawQuant | None
    is_variable: bool
    sparse: bool


@dataclass
class RawOp:
    opcode_index: int
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options_type: str  # union member name, "NONE" when absent
    options: dict = field(default_factory=dict)  # snake_case field -> raw value
    custom_options: bytes = b""  # a custom op's attributes (a FlexBuffer map: tflite/flexbuffer.py)


@dataclass
class RawOpcode:
    builtin: int
    custom_code: str | None
    version: int

    @property
    def name(self) -> str:
        return OPERATOR_NAMES.get(self.builtin, f"UNKNOWN_OP_{self.builtin}")


@dataclass
class RawSubgraph:
    name: str
    tensors: list[RawTensor]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    ops: list[RawOp]


@dataclass
class RawModel:
    version: int
    opcodes: list[RawOpcode]
    subgraphs: list[RawSubgraph]
    buffers: list[bytes | None]  # None or b"" for "no data"


def read(data: bytes) -> RawModel:
    """Parse the flatbuffer; raise CorruptFile (with a short reason) for anything unreadable."""
    data = bytes(data)
    verify(data)
    try:
        return _Reader(data).model()
    except CorruptFile:
        raise
    except RecursionError:  # pragma: no cover - the reader does not recurse; belt and braces
        raise CorruptFile("offsets form a cycle") from None
    except Exception as e:  # the flatbuffers reader's many ways of failing on bad offsets
        raise CorruptFile(f"unreadable flatbuffer ({type(e).__name__}: {e})") from None


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return out and "".join(out) or name


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.size = len(data)
        self._defaults: dict[str, object] = {}

    # -- bounds ------------------------------------------------------------------------------------

    def _count(self, obj, slot: int, length: int, elem_size: int, what: str) -> int:
        """Check that a vector of `length` elements at vtable slot `slot` of obj fits in the file."""
        if length == 0:
            return 0
        tab = obj._tab
        start = tab.Vector(tab.Offset(slot))
        if length < 0 or start + length * elem_size > self.size:
            raise CorruptFile(f"{what}: vector of {length} elements runs past the end of the file")
        return length

    def _table(self, obj, what: str):
        """Check that a table and its vtable lie inside the file (the flatbuffers verifier rule)."""
        tab = obj._tab
        pos = tab.Pos
        if not 0 <= pos <= self.size - 4:
            raise CorruptFile(f"{what}: table offset {pos} outside the file")
        vtable = pos - tab.Get(flatbuffers.number_types.SOffsetTFlags, pos)
        if not 0 <= vtable <= self.size - 4:
            raise CorruptFile(f"{what}: vtable outside the file")
        vt_len = tab.Get(flatbuffers.number_types.VOffsetTFlags, vtable)
        obj_len = tab.Get(flatbuffers.number_types.VOffsetTFlags, vtable + 2)
        if vt_len < 4 or vt_len % 2 or vtable + vt_len > self.size or pos + obj_len > self.size:
            raise CorruptFile(f"{what}: vtable or table runs past the end of the file")
        return obj

    def _ints(self, obj, getter: str, slot: int) -> tuple[int, ...]:
        """An int vector (numpy reads are bounds-checked by numpy itself)."""
        arr = getattr(obj, getter + "AsNumpy")()
        if isinstance(arr, int):  # the generated code returns 0 for an absent vector
            return ()
        return tuple(int(v) for v in arr)

    @staticmethod
    def _str(raw: bytes | None) -> str:
        return raw.decode("utf-8", errors="replace") if raw else ""

    # -- schema ------------------------------------------------------------------------------------

    def model(self) -> RawModel:
        m = self._table(tflite.Model.GetRootAs(self.data, 0), "model")
        opcodes = []
        for i in range(self._count(m, 6, m.OperatorCodesLength(), 4, "operator codes")):
            oc = self._table(m.OperatorCodes(i), f"operator code {i}")
            # builtin_code superseded the int8 deprecated_builtin_code; TFLite takes the larger
            code = max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))
            custom = oc.CustomCode()
            opcodes.append(RawOpcode(code, self._str(custom) if custom is not None else None, int(oc.Version())))
        buffers = []
        for i in range(self._count(m, 12, m.BuffersLength(), 4, "buffers")):
            buffers.append(self._buffer(self._table(m.Buffers(i), f"buffer {i}"), i))
        subgraphs = []
        for i in range(self._count(m, 8, m.SubgraphsLength(), 4, "subgraphs")):
            subgraphs.append(self._subgraph(self._table(m.Subgraphs(i), f"subgraph {i}"), i))
        return RawModel(int(m.Version()), opcodes, subgraphs, buffers)

    def _buffer(self, b, index: int) -> bytes | None:
        if not b.DataIsNone():
            arr = b.DataAsNumpy()
            return None if isinstance(arr, int) else arr.tobytes()
        # Models over 2 GB keep data after the flatbuffer: offset/size relative to the file start.
        offset, size = int(b.Offset()), int(b.Size())
        if offset > 1:
            if offset + size > self.size:
                raise CorruptFile(f"buffer {index}: data at {offset}+{size} past the end of the file")
            return self.data[offset:offset + size]
        return None

    def _subgraph(self, sg, index: int) -> RawSubgraph:
        tensors = [self._tensor(self._table(sg.Tensors(i), f"tensor {i}"))
                   for i in range(self._count(sg, 4, sg.TensorsLength(), 4, f"subgraph {index} tensors"))]
        ops = [self._op(self._table(sg.Operators(i), f"operator {i}"), i)
               for i in range(self._count(sg, 10, sg.OperatorsLength(), 4, f"subgraph {index} operators"))]
        return RawSubgraph(self._str(sg.Name()), tensors, self._ints(sg, "Inputs", 6),
                           self._ints(sg, "Outputs", 8), ops)

    def _tensor(self, t) -> RawTensor:
        quant = None
        q = t.Quantization()
        if q is not None:
            self._table(q, "quantization")
            scale = q.ScaleAsNumpy()
            zp = q.ZeroPointAsNumpy()
            quant = RawQuant(
                scale=np.zeros(0, np.float32) if isinstance(scale, int) else scale.astype(np.float32),
                zero_point=np.zeros(0, np.int64) if isinstance(zp, int) else zp.astype(np.int64),
                quantized_dimension=int(q.QuantizedDimension()),
                has_details=int(q.DetailsType()) != 0,
            )
        signature = None if t.ShapeSignatureIsNone() else self._ints(t, "ShapeSignature", 16)
        return RawTensor(
            name=self._str(t.Name()),
            shape=self._ints(t, "Shape", 4),
            shape_signature=signature,
            type=int(t.Type()),
            buffer=int(t.Buffer()),
            quant=quant,
            is_variable=bool(t.IsVariable()),
            sparse=t.Sparsity() is not None,
        )

    def _op(self, op, index: int) -> RawOp:
        options_type = OPTIONS_NAMES.get(int(op.BuiltinOptionsType()), f"UNKNOWN_{op.BuiltinOptionsType()}")
        options = {}
        if options_type in OPTION_FIELDS:
            table = op.BuiltinOptions()
            cls = getattr(tflite, options_type)
            opts = cls()
            if table is None:
                opts = self._default_options(cls)
            else:
                opts.Init(table.Bytes, table.Pos)
                self._table(opts, f"operator {index} options")
            for getter in OPTION_FIELDS[options_type]:
                options[_snake(getter)] = getattr(opts, getter)()
            vector = OPTION_VECTORS.get(options_type)
            if vector:
                options[_snake(vector)] = self._ints(opts, vector, 4)
        custom = op.CustomOptionsAsNumpy()  # numpy bounds-checks the vector against the file
        custom = b"" if isinstance(custom, int) else custom.tobytes()
        return RawOp(int(op.OpcodeIndex()), self._ints(op, "Inputs", 6), self._ints(op, "Outputs", 8),
                     options_type, options, custom)

    def _default_options(self, cls):
        """An options object over an empty table: every getter returns the schema default."""
        builder = flatbuffers.Builder(16)
        builder.StartObject(0)
        builder.Finish(builder.EndObject())
        buf = bytes(builder.Output())
        opts = cls()
        opts.Init(buf, flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0))
        return opts
