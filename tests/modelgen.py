"""Write small .tflite models from tests, without TensorFlow.

Uses flatc's object API that ai-edge-litert ships (ai_edge_litert.schema_py_generated). Two levels:

ModelBuilder: tensors and ops by hand, for exact control (rejection tests, odd files)::

    mb = ModelBuilder()
    x = mb.tensor((1, 8, 8, 3), "int8", quant=(0.05, -3), name="x")
    w = mb.tensor((4, 3, 3, 3), "int8", quant=([0.01] * 4, [0] * 4, 0), data=weights)
    b = mb.tensor((4,), "int32", quant=([0.0005] * 4, [0] * 4, 0), data=bias)
    y = mb.tensor((1, 8, 8, 4), "int8", quant=(0.1, 5), name="y")
    mb.op("CONV_2D", [x, w, b], [y], padding="SAME", stride=(1, 1), activation="RELU")
    tflite_bytes = mb.build([x], [y])

Layer helpers (conv2d, fully_connected, pool2d, binary, unary, ...): add an op with seeded random
weights and realistic quantization, computing the output shape; they return the output tensor index::

    mb = ModelBuilder(seed=1)
    x = mb.input((1, 16, 16, 3), "int8")
    y = conv2d(mb, x, 8, (3, 3), stride=(2, 2), padding="SAME", activation="RELU6")
    y = pool2d(mb, "MAX_POOL_2D", y, (2, 2), (2, 2))
    tflite_bytes = mb.build([x], [y])
    outputs = reference_run(tflite_bytes, [random_input(mb, x)])

reference_run() runs a model with LiteRT's reference kernels (BUILTIN_REF): the ground truth.
"""
from __future__ import annotations

import math

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema

# dtype string -> (TFLite TensorType, numpy dtype)
DTYPES = {
    "float32": (schema.TensorType.FLOAT32, np.float32),
    "float16": (schema.TensorType.FLOAT16, np.float16),
    "int32": (schema.TensorType.INT32, np.int32),
    "uint8": (schema.TensorType.UINT8, np.uint8),
    "int64": (schema.TensorType.INT64, np.int64),
    "bool": (schema.TensorType.BOOL, np.bool_),
    "int16": (schema.TensorType.INT16, np.int16),
    "int8": (schema.TensorType.INT8, np.int8),
    "float64": (schema.TensorType.FLOAT64, np.float64),
}

# op kind -> name of its BuiltinOptions union member (None: the op takes no options table)
OPTIONS = {
    "CONV_2D": "Conv2DOptions",
    "DEPTHWISE_CONV_2D": "DepthwiseConv2DOptions",
    "FULLY_CONNECTED": "FullyConnectedOptions",
    "AVERAGE_POOL_2D": "Pool2DOptions",
    "MAX_POOL_2D": "Pool2DOptions",
    "ADD": "AddOptions",
    "SUB": "SubOptions",
    "MUL": "MulOptions",
    "RESHAPE": "ReshapeOptions",
    "SQUEEZE": "SqueezeOptions",
    "SOFTMAX": "SoftmaxOptions",
    "QUANTIZE": "QuantizeOptions",
    "DEQUANTIZE": "DequantizeOptions",
    "PAD": "PadOptions",
    "CONCATENATION": "ConcatenationOptions",
    "MEAN": "ReducerOptions",
    "LOGISTIC": None,
    "TANH": None,
    "RELU": None,
    "RELU6": None,
    "LEAKY_RELU": "LeakyReluOptions",
    "HARD_SWISH": "HardSwishOptions",
    "STRIDED_SLICE": "StridedSliceOptions",
    "TRANSPOSE": "TransposeOptions",
    "EXP": "ExpOptions",
    "SPLIT": "SplitOptions",
    # the reduce area's ops
    "ARG_MAX": "ArgMaxOptions",
    "ARG_MIN": "ArgMinOptions",
    "SUM": "ReducerOptions",
    "REDUCE_MAX": "ReducerOptions",
    "REDUCE_MIN": "ReducerOptions",
    "REDUCE_PROD": "ReducerOptions",
    "LOG_SOFTMAX": "LogSoftmaxOptions",
    "L2_NORMALIZATION": "L2NormOptions",
    "BATCH_MATMUL": "BatchMatMulOptions",
    "TRANSPOSE_CONV": "TransposeConvOptions",
    # elementwise math, comparisons, logical ops (unary)
    "MINIMUM": "MaximumMinimumOptions",
    "MAXIMUM": "MaximumMinimumOptions",
    "ABS": "AbsOptions",
    "NEG": "NegOptions",
    "SQUARE": "SquareOptions",
    "SQUARED_DIFFERENCE": "SquaredDifferenceOptions",
    "GELU": "GeluOptions",
    "DIV": "DivOptions",
    "FLOOR_DIV": "FloorDivOptions",
    "FLOOR_MOD": "FloorModOptions",
    "CAST": "CastOptions",
    "EQUAL": "EqualOptions",
    "NOT_EQUAL": "NotEqualOptions",
    "LESS": "LessOptions",
    "LESS_EQUAL": "LessEqualOptions",
    "GREATER": "GreaterOptions",
    "GREATER_EQUAL": "GreaterEqualOptions",
    "LOGICAL_AND": "LogicalAndOptions",
    "LOGICAL_OR": "LogicalOrOptions",
    "LOGICAL_NOT": "LogicalNotOptions",
    "SELECT": "SelectOptions",
    "SELECT_V2": "SelectV2Options",
    "ADD_N": "AddNOptions",
    # idioms: the folded ops and EXPAND_DIMS
    "SHAPE": "ShapeOptions",
    "PACK": "PackOptions",
    "UNPACK": "UnpackOptions",
    "GATHER": "GatherOptions",
    "EXPAND_DIMS": "ExpandDimsOptions",
    "SLICE": "SliceOptions",
    "FILL": "FillOptions",
    "RANGE": "RangeOptions",
    "RANK": "RankOptions",
    "TILE": "TileOptions",
    "BROADCAST_TO": "BroadcastToOptions",
    "ZEROS_LIKE": "ZerosLikeOptions",
    # -- data movement and resampling (the movement area) --
    "RESIZE_NEAREST_NEIGHBOR": "ResizeNearestNeighborOptions",
    "RESIZE_BILINEAR": "ResizeBilinearOptions",
    "SPLIT_V": "SplitVOptions",
    "GATHER_ND": "GatherNdOptions",
    "SPACE_TO_DEPTH": "SpaceToDepthOptions",
    "DEPTH_TO_SPACE": "DepthToSpaceOptions",
    "SPACE_TO_BATCH_ND": "SpaceToBatchNDOptions",
    "BATCH_TO_SPACE_ND": "BatchToSpaceNDOptions",
    "MIRROR_PAD": "MirrorPadOptions",
    "PADV2": "PadV2Options",
    # -- stateful ops (the state area) --
    "SVDF": "SVDFOptions",
    "UNIDIRECTIONAL_SEQUENCE_LSTM": "UnidirectionalSequenceLSTMOptions",
}

# Keyword shortcuts accepted by ModelBuilder.op() on top of the schema's own field names.
_ENUM_FIELDS = {
    "padding": schema.Padding,
    "fusedActivationFunction": schema.ActivationFunctionType,
}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _option_fields(kwargs: dict) -> dict:
    """Map friendly keyword arguments to schema field values."""
    fields = {}
    for key, value in kwargs.items():
        if key == "activation":
            key = "fusedActivationFunction"
        elif key in ("stride", "dilation", "filter"):
            # (h, w) pairs: stride -> strideH/strideW, dilation -> dilationHFactor/..., filter -> filterHeight/...
            h, w = value
            names = {"stride": ("strideH", "strideW"),
                     "dilation": ("dilationHFactor", "dilationWFactor"),
                     "filter": ("filterHeight", "filterWidth")}[key]
            fields[names[0]], fields[names[1]] = int(h), int(w)
            continue
        else:
            key = _camel(key)
        if key in _ENUM_FIELDS and isinstance(value, str):
            value = getattr(_ENUM_FIELDS[key], value)
        fields[key] = value
    return fields


class _AlignedBufferT(schema.BufferT):
    """A BufferT whose data vector is 16-byte aligned (the object API aligns bytes to 1)."""

    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = np.ascontiguousarray(self.data).view(np.uint8).reshape(-1).tobytes()
            builder.StartVector(1, len(raw), 16)
            builder.head -= len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def pack(model: schema.ModelT) -> bytes:
    """Serialise a ModelT with the TFLite file identifier."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


class ModelBuilder:
    """Collects tensors and ops of one subgraph; build() returns the .tflite bytes."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)
        self.tensors: list[schema.TensorT] = []
        self.buffers: list[schema.BufferT] = [schema.BufferT()]  # buffer 0: the empty sentinel
        self.operators: list[schema.OperatorT] = []
        self.opcodes: list[schema.OperatorCodeT] = []
        self._opcode_index: dict[tuple, int] = {}
        # what the helpers need to know about each tensor
        self.shapes: list[tuple[int, ...]] = []
        self.dtypes: list[str] = []
        self.quants: list[tuple | None] = []
        self.datas: list[np.ndarray | None] = []

    # -- tensors -----------------------------------------------------------------------------------

    def tensor(self, shape, dtype: str = "float32", quant=None, data=None, name: str | None = None,
               shape_signature=None, variable: bool = False) -> int:
        """Add a tensor and return its index.

        quant: (scale, zero_point) for per-tensor, or (scales, zero_points, axis) for per-channel;
        scalars or sequences. data: constant contents (converted to dtype); None for activations.
        variable: a variable tensor (is_variable: an op's state, kept from one invoke to the next).
        """
        shape = tuple(int(d) for d in shape)
        ttype, npdtype = DTYPES[dtype]
        t = schema.TensorT()
        t.shape = list(shape)
        t.type = ttype
        t.name = name or f"t{len(self.tensors)}"
        t.isVariable = bool(variable)
        if shape_signature is not None:
            t.shapeSignature = [int(d) for d in shape_signature]
        if quant is not None:
            scales, zps, *axis = quant
            q = schema.QuantizationParametersT()
            q.scale = [float(s) for s in np.atleast_1d(scales)]
            q.zeroPoint = [int(z) for z in np.atleast_1d(zps)]
            q.quantizedDimension = int(axis[0]) if axis and axis[0] is not None else 0
            t.quantization = q
        if data is not None:
            data = np.asarray(data).astype(npdtype).reshape(shape)
            buf = _AlignedBufferT()
            buf.data = data
            self.buffers.append(buf)
            t.buffer = len(self.buffers) - 1
        else:
            t.buffer = 0
        self.tensors.append(t)
        self.shapes.append(shape)
        self.dtypes.append(dtype)
        self.quants.append(quant)
        self.datas.append(data)
        return len(self.tensors) - 1

    def input(self, shape, dtype: str = "int8", quant=None, name: str | None = None) -> int:
        """An activation tensor; int8 gets a realistic random quantization unless given one."""
        if quant is None and dtype == "int8":
            quant = self.activation_quant()
        return self.tensor(shape, dtype, quant=quant, name=name)

    def const(self, values, dtype: str = "int32", name: str | None = None) -> int:
        """A constant operand (shapes, axes, paddings, ...)."""
        values = np.asarray(values)
        return self.tensor(values.shape, dtype, data=values, name=name)

    def activation_quant(self, lo: float = 0.01, hi: float = 0.1) -> tuple[float, int]:
        """Realistic asymmetric int8 activation quantization: (scale, zero_point)."""
        scale = float(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))
        return scale, int(self.rng.integers(-128, 128))

    # -- ops ---------------------------------------------------------------------------------------

    def opcode(self, kind: str, custom_code: str | None = None, version: int = 1) -> int:
        key = (kind, custom_code, version)
        if key not in self._opcode_index:
            code = getattr(schema.BuiltinOperator, kind)
            oc = schema.OperatorCodeT()
            oc.builtinCode = code
            # files keep the pre-2.3 int8 field too; 127 = PLACEHOLDER_FOR_GREATER_OP_CODES
            oc.deprecatedBuiltinCode = min(code, 127)
            oc.customCode = custom_code
            oc.version = version
            self.opcodes.append(oc)
            self._opcode_index[key] = len(self.opcodes) - 1
        return self._opcode_index[key]

    def op(self, kind: str, inputs, outputs, custom_code: str | None = None, version: int = 1,
           custom_options: bytes | None = None, **options) -> int:
        """Add an operator; options are schema field names in snake_case (stride_w, keep_num_dims)
        or the shortcuts activation=, stride=(h, w), dilation=(h, w), filter=(h, w); padding and
        activation take strings ("SAME", "RELU6"); custom_options: a custom op's bytes (a FlexBuffer
        map, see flexbuffer_map). Returns the op index."""
        o = schema.OperatorT()
        o.opcodeIndex = self.opcode(kind, custom_code, version)
        o.inputs = [int(i) for i in inputs]
        o.outputs = [int(i) for i in outputs]
        options_name = OPTIONS.get(kind)
        if options_name is not None:
            opts = getattr(schema, options_name + "T")()
            for key, value in _option_fields(options).items():
                if not hasattr(opts, key):
                    raise TypeError(f"{kind}: no option {key!r}")
                setattr(opts, key, value)
            o.builtinOptionsType = getattr(schema.BuiltinOptions, options_name)
            o.builtinOptions = opts
        elif options:
            raise TypeError(f"{kind} takes no options, got {sorted(options)}")
        if custom_options is not None:
            o.customOptions = list(custom_options)
        self.operators.append(o)
        return len(self.operators) - 1

    # -- output ------------------------------------------------------------------------------------

    def model(self, inputs, outputs, description: str = "tinykiln test model") -> schema.ModelT:
        """The ModelT, for tests that want to tamper with it before pack()."""
        sg = schema.SubGraphT()
        sg.tensors = self.tensors
        sg.inputs = [int(i) for i in inputs]
        sg.outputs = [int(i) for i in outputs]
        sg.operators = self.operators
        sg.name = "main"
        m = schema.ModelT()
        m.version = 3
        m.operatorCodes = self.opcodes
        m.subgraphs = [sg]
        m.description = description
        m.buffers = self.buffers
        return m

    def build(self, inputs, outputs) -> bytes:
        return pack(self.model(inputs, outputs))


def flexbuffer_map(values: dict) -> bytes:
    """A custom op's attributes as the FlexBuffer map TFLite reads (bool, int and float values), written
    by the flatbuffers package's builder."""
    from flatbuffers import flexbuffers

    fbb = flexbuffers.Builder()
    with fbb.Map():
        for key, value in values.items():
            if isinstance(value, bool):
                fbb.Bool(key, value)
            elif isinstance(value, int):
                fbb.Int(key, value)
            else:
                fbb.Float(key, float(value))
    return bytes(fbb.Finish())


# -- layer helpers ---------------------------------------------------------------------------------

def _out_size(size: int, k: int, stride: int, dilation: int, padding: str) -> int:
    eff = (k - 1) * dilation + 1
    if padding == "SAME":
        return (size + stride - 1) // stride
    return (size - eff + stride) // stride


def _spread_scale(mb: ModelBuilder, x: int, fan_in: int, w_scale_mean: float) -> float:
    """Output scale that makes a random input's accumulator span most of the int8 range.

    Uniform int8 data q has a standard deviation of about 74 steps around a mean of -zero_point, so
    q - zero_point has an RMS of sqrt(74^2 + zp^2); a sum of fan_in products with zero-mean weights
    (74 steps RMS) has sqrt(fan_in) times their product as sigma; map +-3 sigma onto 255 steps.
    """
    in_scale = float(np.atleast_1d(mb.quants[x][0])[0])
    in_zp = float(np.atleast_1d(mb.quants[x][1])[0])
    sigma = math.sqrt(fan_in) * math.hypot(74, in_zp) * 74 * in_scale * w_scale_mean
    return 6 * sigma / 255


def _weights(mb: ModelBuilder, shape, axis: int | None, dtype: str, name: str):
    """Random weights: int8 symmetric (per-channel along axis, or per-tensor if axis is None)."""
    if dtype == "float32":
        w = mb.rng.normal(0, 1 / math.sqrt(np.prod(shape) / shape[axis or 0]), shape).astype(np.float32)
        return mb.tensor(shape, "float32", data=w, name=name), None
    q = mb.rng.integers(-127, 128, size=shape).astype(np.int8)
    if axis is None:
        scales = np.array([np.exp(mb.rng.uniform(np.log(0.002), np.log(0.02)))])
        quant = (scales[0], 0)
    else:
        scales = np.exp(mb.rng.uniform(np.log(0.002), np.log(0.02), shape[axis]))
        quant = (scales, [0] * shape[axis], axis)
    return mb.tensor(shape, "int8", quant=quant, data=q, name=name), scales


def _bias(mb: ModelBuilder, x: int, w_scales, n: int, dtype: str, name: str) -> int:
    if dtype == "float32":
        return mb.tensor((n,), "float32", data=mb.rng.normal(0, 0.1, n), name=name)
    in_scale = float(np.atleast_1d(mb.quants[x][0])[0])
    scales = in_scale * np.broadcast_to(w_scales, (n,)) if len(w_scales) > 1 else [in_scale * w_scales[0]]
    zps = [0] * len(scales)
    quant = (scales, zps, 0) if len(scales) > 1 else (scales[0], 0)
    data = mb.rng.integers(-2000, 2000, size=n)
    return mb.tensor((n,), "int32", quant=quant, data=data, name=name)


def _act_out(mb: ModelBuilder, shape, dtype: str, scale: float | None = None, name=None) -> int:
    if dtype == "float32":
        return mb.tensor(shape, "float32", name=name)
    if scale is None:
        return mb.input(shape, "int8", name=name)
    return mb.tensor(shape, "int8", quant=(scale, int(mb.rng.integers(-20, 21))), name=name)


def conv2d(mb: ModelBuilder, x: int, filters: int, kernel=(3, 3), stride=(1, 1), padding="SAME",
           dilation=(1, 1), activation="NONE", per_channel=True, bias=True, name=None) -> int:
    n, h, w, c = mb.shapes[x]
    dtype = mb.dtypes[x]
    wt, scales = _weights(mb, (filters, kernel[0], kernel[1], c), 0 if per_channel else None, dtype,
                          f"{name or 'conv'}/filter")
    b = _bias(mb, x, scales, filters, dtype, f"{name or 'conv'}/bias") if bias else -1
    oh = _out_size(h, kernel[0], stride[0], dilation[0], padding)
    ow = _out_size(w, kernel[1], stride[1], dilation[1], padding)
    scale = None if dtype == "float32" else _spread_scale(mb, x, kernel[0] * kernel[1] * c, scales.mean())
    y = _act_out(mb, (n, oh, ow, filters), dtype, scale, name)
    mb.op("CONV_2D", [x, wt, b], [y], padding=padding, stride=stride, dilation=dilation,
          activation=activation)
    return y


def depthwise_conv2d(mb: ModelBuilder, x: int, kernel=(3, 3), depth_multiplier=1, stride=(1, 1),
                     padding="SAME", dilation=(1, 1), activation="NONE", per_channel=True, name=None) -> int:
    n, h, w, c = mb.shapes[x]
    dtype = mb.dtypes[x]
    oc = c * depth_multiplier
    wt, scales = _weights(mb, (1, kernel[0], kernel[1], oc), 3 if per_channel else None, dtype,
                          f"{name or 'dw'}/filter")
    b = _bias(mb, x, scales, oc, dtype, f"{name or 'dw'}/bias")
    oh = _out_size(h, kernel[0], stride[0], dilation[0], padding)
    ow = _out_size(w, kernel[1], stride[1], dilation[1], padding)
    scale = None if dtype == "float32" else _spread_scale(mb, x, kernel[0] * kernel[1], scales.mean())
    y = _act_out(mb, (n, oh, ow, oc), dtype, scale, name)
    mb.op("DEPTHWISE_CONV_2D", [x, wt, b], [y], padding=padding, stride=stride, dilation=dilation,
          depth_multiplier=depth_multiplier, activation=activation)
    return y


def fully_connected(mb: ModelBuilder, x: int, units: int, activation="NONE", per_channel=False,
                    keep_num_dims=False, bias=True, name=None) -> int:
    shape = mb.shapes[x]
    dtype = mb.dtypes[x]
    k = shape[-1]
    wt, scales = _weights(mb, (units, k), 0 if per_channel else None, dtype, f"{name or 'fc'}/weights")
    b = _bias(mb, x, scales, units, dtype, f"{name or 'fc'}/bias") if bias else -1
    out_shape = shape[:-1] + (units,) if keep_num_dims else (int(np.prod(shape[:-1])), units)
    scale = None if dtype == "float32" else _spread_scale(mb, x, k, scales.mean())
    y = _act_out(mb, out_shape, dtype, scale, name)
    mb.op("FULLY_CONNECTED", [x, wt, b], [y], activation=activation, keep_num_dims=keep_num_dims)
    return y


def pool2d(mb: ModelBuilder, kind: str, x: int, filter=(2, 2), stride=(2, 2), padding="VALID",
           activation="NONE", name=None) -> int:
    """AVERAGE_POOL_2D / MAX_POOL_2D; int8 output keeps the input quantization (TFLite requires it)."""
    n, h, w, c = mb.shapes[x]
    oh = _out_size(h, filter[0], stride[0], 1, padding)
    ow = _out_size(w, filter[1], stride[1], 1, padding)
    y = mb.tensor((n, oh, ow, c), mb.dtypes[x], quant=mb.quants[x], name=name)
    mb.op(kind, [x], [y], padding=padding, stride=stride, filter=filter, activation=activation)
    return y


def binary(mb: ModelBuilder, kind: str, a: int, b: int, activation="NONE", name=None) -> int:
    """ADD / SUB / MUL with numpy broadcasting of the two shapes."""
    shape = tuple(np.broadcast_shapes(mb.shapes[a], mb.shapes[b]))
    y = _act_out(mb, shape, mb.dtypes[a], None, name)
    mb.op(kind, [a, b], [y], activation=activation)
    return y


# int8 output quantization fixed by TFLite for some ops
_FIXED_OUT_QUANT = {"SOFTMAX": (1 / 256, -128), "LOGISTIC": (1 / 256, -128), "TANH": (1 / 128, 0)}
# ops whose int8 output must keep the input quantization
_SAME_QUANT = {"RESHAPE", "SQUEEZE", "PAD", "STRIDED_SLICE", "TRANSPOSE", "CONCATENATION",
               "MAX_POOL_2D", "AVERAGE_POOL_2D", "EXPAND_DIMS"}


def unary(mb: ModelBuilder, kind: str, x: int, out_shape=None, extra_inputs=(), name=None, **options) -> int:
    """A one-activation-input op (SOFTMAX, LOGISTIC, TANH, RELU, RELU6, LEAKY_RELU, HARD_SWISH,
    RESHAPE, SQUEEZE, PAD, MEAN, STRIDED_SLICE, TRANSPOSE, ...) with extra constant inputs; the caller
    gives the output shape when it differs from the input's."""
    shape = tuple(out_shape) if out_shape is not None else mb.shapes[x]
    dtype = mb.dtypes[x]
    if dtype != "int8":
        y = mb.tensor(shape, dtype, name=name)
    elif kind in _FIXED_OUT_QUANT:
        y = mb.tensor(shape, dtype, quant=_FIXED_OUT_QUANT[kind], name=name)
    elif kind in _SAME_QUANT:
        y = mb.tensor(shape, dtype, quant=mb.quants[x], name=name)
    else:
        y = mb.input(shape, dtype, name=name)
    mb.op(kind, [x, *extra_inputs], [y], **options)
    return y


def quantize(mb: ModelBuilder, x: int, quant=None, name=None) -> int:
    """QUANTIZE: float32 -> int8, or int8 -> int8 requantization."""
    y = mb.tensor(mb.shapes[x], "int8", quant=quant or mb.activation_quant(), name=name)
    mb.op("QUANTIZE", [x], [y])
    return y


def dequantize(mb: ModelBuilder, x: int, name=None) -> int:
    y = mb.tensor(mb.shapes[x], "float32", name=name)
    mb.op("DEQUANTIZE", [x], [y])
    return y


def concatenation(mb: ModelBuilder, xs, axis: int, activation="NONE", name=None) -> int:
    """int8 inputs must share the output's quantization in TFLite; pass inputs made alike."""
    shapes = [mb.shapes[x] for x in xs]
    ax = axis % len(shapes[0])
    shape = list(shapes[0])
    shape[ax] = sum(s[ax] for s in shapes)
    y = mb.tensor(shape, mb.dtypes[xs[0]], quant=mb.quants[xs[0]], name=name)
    mb.op("CONCATENATION", xs, [y], axis=axis, activation=activation)
    return y


# -- running ---------------------------------------------------------------------------------------

def random_input(mb_or_detail, index: int | None = None, seed: int = 0) -> np.ndarray:
    """Seeded random data for a builder's tensor (or an interpreter input detail dict)."""
    rng = np.random.default_rng(seed)
    if isinstance(mb_or_detail, ModelBuilder):
        shape, dtype = mb_or_detail.shapes[index], mb_or_detail.dtypes[index]
    else:
        shape, dtype = tuple(mb_or_detail["shape"]), np.dtype(mb_or_detail["dtype"]).name
    if dtype == "int8":
        return rng.integers(-128, 128, size=shape).astype(np.int8)
    if dtype == "uint8":
        return rng.integers(0, 256, size=shape).astype(np.uint8)
    if dtype == "int16":
        return rng.integers(-32768, 32768, size=shape).astype(np.int16)
    if dtype == "float32":
        return rng.uniform(-2, 2, size=shape).astype(np.float32)
    if dtype == "int32":
        return rng.integers(-1000, 1000, size=shape).astype(np.int32)
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    raise ValueError(f"no random data for {dtype}")


def normalize_for_litert(model_bytes: bytes) -> bytes:
    """The copy of a model that LiteRT runs: the importer's documented tolerances corrected (a
    meaningless quantized_dimension on rank-0/1 tensors; tinykiln.tflite.tolerances owns the list).
    Returns the input if there is nothing to correct."""
    from tinykiln.tflite.tolerances import corrected_copy

    return corrected_copy(model_bytes)[0]


def fc_model_with(bias_axis: int = 0, version: int = 1) -> bytes:
    """A small int8 FULLY_CONNECTED whose bias (rank 1) carries quantized_dimension `bias_axis` and whose
    opcode has `version`: files the importer runs and LiteRT refuses (a stale axis: corrected for the
    reference; an op version LiteRT lacks: no reference at all)."""
    mb = ModelBuilder(3)
    x = mb.input((1, 8), "int8", name="input")
    y = fully_connected(mb, x, 4, activation="RELU")
    model = schema.ModelT.InitFromPackedBuf(mb.build([x], [y]), 0)
    for t in model.subgraphs[0].tensors:
        if t.name == b"fc/bias":
            t.quantization.quantizedDimension = bias_axis
    model.operatorCodes[0].version = version
    return pack(model)


def litert_error(model_bytes: bytes, run: bool = False) -> str | None:
    """LiteRT's refusal of a model (None if it loads; with run=True, also allocates and invokes on
    zeros), found in a forked child: LiteRT can crash on files it has not verified. The model is
    given as LiteRT would see it through validation: normalize_for_litert's copy when run=True."""
    import os

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        import faulthandler

        os.close(read)
        faulthandler.disable()  # a crash is the answer, not a report for the test's output
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        message = b""
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType

            data = normalize_for_litert(model_bytes) if run else model_bytes
            interp = Interpreter(model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
            if run:
                interp.allocate_tensors()
                for d in interp.get_input_details():
                    interp.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
                interp.invoke()
        except Exception as e:  # noqa: BLE001 - any refusal is the answer
            message = (str(e) or type(e).__name__).encode()[:4000]
        os.write(write, message)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        return f"LiteRT crashed (exit status {code})"
    return message or None


def reference_run(model_bytes: bytes, inputs) -> list[np.ndarray]:
    """Run a .tflite with LiteRT's reference kernels (BUILTIN_REF); inputs in subgraph order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interp = Interpreter(model_content=normalize_for_litert(model_bytes),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    details = interp.get_input_details()
    if len(details) != len(inputs):
        raise ValueError(f"model has {len(details)} inputs, got {len(inputs)}")
    for d, value in zip(details, inputs):
        interp.set_tensor(d["index"], np.asarray(value, dtype=d["dtype"]).reshape(d["shape"]))
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


# -- one example model per op kind -----------------------------------------------------------------

OP_KINDS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "AVERAGE_POOL_2D", "MAX_POOL_2D", "ADD",
            "SUB", "MUL", "RESHAPE", "SQUEEZE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "PAD",
            "CONCATENATION", "MEAN", "LOGISTIC", "TANH", "RELU", "RELU6", "LEAKY_RELU", "HARD_SWISH",
            "STRIDED_SLICE", "TRANSPOSE",
            "EXPAND_DIMS")  # idioms


def example(kind: str, dtype: str = "int8", seed: int = 0):
    """A small single-op model of `kind` with seeded shapes and parameters.

    Returns (tflite_bytes, builder, input_indices). QUANTIZE/DEQUANTIZE ignore dtype (float<->int8).
    """
    mb = ModelBuilder(seed)
    r = mb.rng
    h, w, c = (int(v) for v in r.integers(3, 10, size=3))
    act = str(r.choice(["NONE", "RELU", "RELU6"]))
    x = mb.input((1, h, w, c), dtype, name="input")
    ins = [x]
    if kind == "CONV_2D":
        y = conv2d(mb, x, int(r.integers(1, 9)), tuple(int(v) for v in r.integers(1, 4, 2)),
                   stride=tuple(int(v) for v in r.integers(1, 3, 2)), padding=str(r.choice(["SAME", "VALID"])),
                   activation=act)
    elif kind == "DEPTHWISE_CONV_2D":
        y = depthwise_conv2d(mb, x, (3, 3), depth_multiplier=int(r.integers(1, 3)),
                             padding=str(r.choice(["SAME", "VALID"])), activation=act)
    elif kind == "FULLY_CONNECTED":
        y = fully_connected(mb, x, int(r.integers(1, 17)), activation=act, per_channel=bool(r.integers(2)),
                            keep_num_dims=bool(r.integers(2)))
    elif kind in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        y = pool2d(mb, kind, x, (2, 2), (int(r.integers(1, 3)),) * 2, str(r.choice(["SAME", "VALID"])), act)
    elif kind in ("ADD", "SUB", "MUL"):
        b = mb.input((1, 1, w, c) if r.integers(2) else (1, h, w, c), dtype, name="input2")
        ins.append(b)
        y = binary(mb, kind, x, b, activation=act)
    elif kind == "RESHAPE":
        y = unary(mb, kind, x, out_shape=(1, h * w * c), extra_inputs=[mb.const([1, h * w * c])])
    elif kind == "SQUEEZE":
        y = unary(mb, kind, x, out_shape=(h, w, c), squeeze_dims=[0])
    elif kind == "SOFTMAX":
        y = unary(mb, kind, x, beta=float(r.uniform(0.5, 2.0)))
    elif kind == "QUANTIZE":
        mb = ModelBuilder(seed)
        x = mb.input((1, h, w, c), "float32", name="input")
        ins = [x]
        y = quantize(mb, x)
    elif kind == "DEQUANTIZE":
        mb = ModelBuilder(seed)
        x = mb.input((1, h, w, c), "int8", name="input")
        ins = [x]
        y = dequantize(mb, x)
    elif kind == "PAD":
        pads = [[0, 0], [1, 2], [2, 1], [0, 1]]
        y = unary(mb, kind, x, out_shape=(1, h + 3, w + 3, c + 1), extra_inputs=[mb.const(pads)])
    elif kind == "CONCATENATION":
        b = mb.tensor((1, h, w, 2), dtype, quant=mb.quants[x], name="input2")
        ins.append(b)
        y = concatenation(mb, [x, b], axis=-1, activation="NONE")
    elif kind == "MEAN":
        y = unary(mb, kind, x, out_shape=(1, 1, 1, c), extra_inputs=[mb.const([1, 2])], keep_dims=True)
    elif kind == "LEAKY_RELU":
        y = unary(mb, kind, x, alpha=float(r.uniform(0.05, 0.5)))
    elif kind == "STRIDED_SLICE":
        y = unary(mb, kind, x, out_shape=(1, (h - 1 + 1) // 2, w - 1, c),
                  extra_inputs=[mb.const([0, 1, 1, 0]), mb.const([1, h, w, c]), mb.const([1, 2, 1, 1])])
    elif kind == "TRANSPOSE":
        y = unary(mb, kind, x, out_shape=(1, c, h, w), extra_inputs=[mb.const([0, 3, 1, 2])])
    elif kind == "EXPAND_DIMS":
        axis = int(r.integers(-5, 5))
        shape = [1, h, w, c]
        shape.insert(axis % 5, 1)
        y = unary(mb, kind, x, out_shape=shape, extra_inputs=[mb.const(axis)])
    elif kind in ("LOGISTIC", "TANH", "RELU", "RELU6", "HARD_SWISH"):
        y = unary(mb, kind, x)
    else:
        raise ValueError(f"no example for {kind}")
    return mb.build(ins, [y]), mb, ins
