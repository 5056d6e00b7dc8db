"""The op registry: every TFLite op kind the compiler supports, in one table that both the importer
(tflite/importer.py: is the op supported, with these dtypes? its checks and attrs) and the lowering
(ops.lower: which function lowers it) read.

    OPS[kind] = OpSupport(check, lower, dtypes, options, operands)
        check     the importer's rules of the op (ops/checks.py, or the family module of the newer
                  families): problems via view.fail, returns attrs
        lower     lower(ctx, op) -> [KernelCall] (the family module's lowering)
        dtypes    the (input, output) activation dtypes it is compiled for
        options   the builtin options table the op must carry (None: options are ignored)
        operands  inputs that are weights or operands rather than activations
        custom    a custom op (its kind is the file's custom_code, its options a FlexBuffer map)
        state     inputs that are variable tensors the op rewrites in place (its state, kept across runs)
    FAMILIES[name] = KernelFamily  every kernel family of the family modules

To add an op kind: its checker (ops/checks.py is full: new families keep theirs, and their numpy
model, in the family module), its lowering and kernel family in a family module (ops/<family>.py,
listed in FAMILY_MODULES), and one row here.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from . import (
    activations, activations_int16, argminmax, batch_matmul, binary_math, checks, compare, conv2d, conv_int16,
    depthwise_conv2d, detection, elementwise, elementwise_int16, int16, softmax_int16,
    fully_connected, gather, l2norm, log_softmax, movement, padding, pooling, quantize, reduce, reduce_more, reshape,
    lstm, resize, softmax, space_depth, split, svdf, tile, transpose_conv, unary_math,
)
from .base import KernelFamily

# Activations of one dtype in, the same out: every op but the casts
SAME = (("int8", "int8"), ("float32", "float32"))
# copies of int32, bool and int64 tensors, where LiteRT takes them
INT32 = (("int32", "int32"),)
BOOL = (("bool", "bool"),)
INT64 = (("int64", "int64"),)


@dataclass(frozen=True)
class OpSupport:
    check: Callable[[checks.OpView], dict]
    lower: Callable
    dtypes: tuple[tuple[str, str], ...] = SAME
    options: str | None = None
    operands: tuple[int, ...] = ()
    custom: bool = False
    state: tuple[int, ...] = ()


OPS: dict[str, OpSupport] = {
    "CONV_2D": OpSupport(checks.conv_2d, conv2d.lower_conv2d, options="Conv2DOptions", operands=(1, 2)),
    "DEPTHWISE_CONV_2D": OpSupport(checks.depthwise_conv_2d, depthwise_conv2d.lower_depthwise_conv2d,
                                   options="DepthwiseConv2DOptions", operands=(1, 2)),
    "FULLY_CONNECTED": OpSupport(checks.fully_connected, fully_connected.lower_fully_connected,
                                 options="FullyConnectedOptions", operands=(1, 2)),
    "AVERAGE_POOL_2D": OpSupport(checks.pool_2d, pooling.lower_pool, options="Pool2DOptions"),
    "MAX_POOL_2D": OpSupport(checks.pool_2d, pooling.lower_pool, options="Pool2DOptions"),
    "ADD": OpSupport(checks.elementwise_binary, elementwise.lower_binary, options="AddOptions"),
    "SUB": OpSupport(checks.elementwise_binary, elementwise.lower_binary, options="SubOptions"),
    "MUL": OpSupport(checks.elementwise_binary, elementwise.lower_binary, options="MulOptions"),
    "RESHAPE": OpSupport(checks.reshape, reshape.lower_alias, operands=(1,)),
    "SQUEEZE": OpSupport(checks.squeeze, reshape.lower_alias, options="SqueezeOptions"),
    "SOFTMAX": OpSupport(checks.softmax, softmax.lower_softmax, dtypes=SAME + (("int8", "int16"),),
                         options="SoftmaxOptions"),
    "QUANTIZE": OpSupport(quantize.check_cast, quantize.lower_cast, dtypes=quantize.QUANTIZE_CASTS),
    "DEQUANTIZE": OpSupport(quantize.check_cast, quantize.lower_cast, dtypes=quantize.DEQUANTIZE_CASTS),
    "PAD": OpSupport(checks.pad, movement.lower_pad, operands=(1,)),
    "CONCATENATION": OpSupport(checks.concatenation, movement.lower_concatenation, options="ConcatenationOptions"),
    "MEAN": OpSupport(checks.mean, reduce.lower_mean, options="ReducerOptions", operands=(1,)),
    "LOGISTIC": OpSupport(checks.same_shape, activations.lower_activation),
    "TANH": OpSupport(checks.same_shape, activations.lower_activation),
    "RELU": OpSupport(checks.same_shape, activations.lower_activation),
    "RELU6": OpSupport(checks.same_shape, activations.lower_activation),
    "RELU_N1_TO_1": OpSupport(checks.same_shape, activations.lower_activation),
    "LEAKY_RELU": OpSupport(checks.leaky_relu, activations.lower_activation, options="LeakyReluOptions"),
    "HARD_SWISH": OpSupport(checks.same_shape, activations.lower_activation),
    "STRIDED_SLICE": OpSupport(checks.strided_slice, movement.lower_strided_slice, options="StridedSliceOptions",
                               operands=(1, 2, 3)),
    "TRANSPOSE": OpSupport(checks.transpose, movement.lower_transpose, operands=(1,)),
    # reductions, normalisations, matrix products (the reduce area)
    "ARG_MAX": OpSupport(argminmax.check, argminmax.lower_argminmax, dtypes=argminmax.DTYPES,
                         options="ArgMaxOptions", operands=(1,)),
    "ARG_MIN": OpSupport(argminmax.check, argminmax.lower_argminmax, dtypes=argminmax.DTYPES,
                         options="ArgMinOptions", operands=(1,)),
    "SUM": OpSupport(reduce_more.check, reduce_more.lower_reduce, options="ReducerOptions", operands=(1,)),
    "REDUCE_MAX": OpSupport(reduce_more.check, reduce_more.lower_reduce, options="ReducerOptions", operands=(1,)),
    "REDUCE_MIN": OpSupport(reduce_more.check, reduce_more.lower_reduce, options="ReducerOptions", operands=(1,)),
    "REDUCE_PROD": OpSupport(reduce_more.check, reduce_more.lower_reduce, dtypes=(("float32", "float32"),),
                             options="ReducerOptions", operands=(1,)),
    "L2_NORMALIZATION": OpSupport(l2norm.check, l2norm.lower_l2norm, options="L2NormOptions"),
    "BATCH_MATMUL": OpSupport(batch_matmul.check, batch_matmul.lower_batch_matmul, options="BatchMatMulOptions"),
    "TRANSPOSE_CONV": OpSupport(transpose_conv.check, transpose_conv.lower_transpose_conv,
                                options="TransposeConvOptions", operands=(0, 1, 3)),
    "LOG_SOFTMAX": OpSupport(log_softmax.check, log_softmax.lower_log_softmax, options="LogSoftmaxOptions"),
    # elementwise math, comparisons, logical ops (unary): ops/compare.py
    "MINIMUM": OpSupport(compare.check_minmax, compare.lower_minmax, compare.MINMAX_DTYPES),
    "MAXIMUM": OpSupport(compare.check_minmax, compare.lower_minmax, compare.MINMAX_DTYPES),
    **{kind: OpSupport(unary_math.check_unary, unary_math.lower_unary, unary_math.dtypes(kind),
                       options="GeluOptions" if kind == "GELU" else None) for kind in unary_math.KINDS},
    **{kind: OpSupport(compare.check_comparison, compare.lower_comparison, compare.comparison_dtypes(kind))
       for kind in compare.COMPARISONS},
    **{kind: OpSupport(compare.check_logical, compare.lower_logical, compare.BOOL_DTYPES) for kind in compare.LOGICAL},
    **{kind: OpSupport(compare.check_select, compare.lower_select, compare.SELECT_DTYPES) for kind in compare.SELECTS},
    **{kind: OpSupport(binary_math.check_binary, binary_math.lower_binary_math, binary_math.DTYPES[kind],
                       options="DivOptions" if kind == "DIV" else None) for kind in binary_math.KINDS},
    "CAST": OpSupport(unary_math.check_cast, unary_math.lower_cast, unary_math.CAST_DTYPES),
    "ADD_N": OpSupport(binary_math.check_add_n, binary_math.lower_add_n, binary_math.ADD_N_DTYPES),
    # idioms: converter idioms
    "EXPAND_DIMS": OpSupport(reshape.check_expand_dims, reshape.lower_alias, operands=(1,)),
    # -- data movement and resampling (the movement area) --
    "RESIZE_NEAREST_NEIGHBOR": OpSupport(resize.check_resize, resize.lower_resize, dtypes=SAME + INT32 + BOOL,
                                         options="ResizeNearestNeighborOptions", operands=(1,)),
    "RESIZE_BILINEAR": OpSupport(resize.check_resize, resize.lower_resize, options="ResizeBilinearOptions",
                                 operands=(1,)),
    "SPLIT": OpSupport(split.check_split, split.lower_split, dtypes=SAME + INT32 + INT64, options="SplitOptions",
                       operands=(0,)),
    "SPLIT_V": OpSupport(split.check_split_v, split.lower_split, dtypes=SAME + INT32 + INT64, options="SplitVOptions",
                         operands=(1, 2)),
    "UNPACK": OpSupport(split.check_unpack, split.lower_unpack, dtypes=SAME + INT32 + BOOL, options="UnpackOptions"),
    "PACK": OpSupport(split.check_pack, split.lower_pack, dtypes=SAME + INT32 + INT64, options="PackOptions"),
    "SLICE": OpSupport(split.check_slice, split.lower_slice, dtypes=SAME + INT32 + BOOL + INT64, operands=(1, 2)),
    "GATHER": OpSupport(gather.check_gather, gather.lower_gather, dtypes=SAME + INT32 + BOOL + INT64,
                        options="GatherOptions", operands=(1,)),
    "GATHER_ND": OpSupport(gather.check_gather_nd, gather.lower_gather_nd, dtypes=SAME + INT32 + BOOL + INT64,
                           operands=(1,)),
    "TILE": OpSupport(tile.check_tile, tile.lower_tile, dtypes=SAME + INT32 + BOOL + INT64, operands=(1,)),
    "BROADCAST_TO": OpSupport(tile.check_broadcast_to, tile.lower_broadcast_to, dtypes=SAME + INT32 + BOOL + INT64,
                              operands=(1,)),
    "SPACE_TO_DEPTH": OpSupport(space_depth.check_space_to_depth, space_depth.lower_space_to_depth,
                                dtypes=SAME + INT32 + INT64, options="SpaceToDepthOptions"),
    "DEPTH_TO_SPACE": OpSupport(space_depth.check_space_to_depth, space_depth.lower_space_to_depth,
                                dtypes=SAME + INT32 + INT64, options="DepthToSpaceOptions"),
    "SPACE_TO_BATCH_ND": OpSupport(space_depth.check_space_batch, space_depth.lower_space_batch,
                                   dtypes=SAME + INT32 + INT64, operands=(1, 2)),
    "BATCH_TO_SPACE_ND": OpSupport(space_depth.check_space_batch, space_depth.lower_space_batch,
                                   dtypes=SAME + INT32 + INT64, operands=(1, 2)),
    "PADV2": OpSupport(padding.check_padv2, padding.lower_padv2, dtypes=SAME + INT32 + INT64, operands=(1, 2)),
    "MIRROR_PAD": OpSupport(padding.check_mirror_pad, padding.lower_mirror_pad, dtypes=SAME + INT32 + INT64,
                            options="MirrorPadOptions", operands=(1,)),
    # detect: the custom op SSD detectors end with
    detection.KIND: OpSupport(detection.check, detection.lower_detection, dtypes=detection.DTYPES, operands=(2,),
                              custom=True),
    # -- stateful ops: a variable tensor kept across runs (the state area) --
    "SVDF": OpSupport(svdf.check, svdf.lower_svdf, options="SVDFOptions", operands=(1, 2, 3, 4),
                      state=(svdf.STATE_INPUT,)),
    "UNIDIRECTIONAL_SEQUENCE_LSTM": OpSupport(lstm.check, lstm.lower_lstm, dtypes=(("float32", "float32"),),
                                              options="UnidirectionalSequenceLSTMOptions",
                                              operands=tuple(range(1, 24)),
                                              state=(lstm.OUTPUT_STATE, lstm.CELL_STATE)),
}

# -- 16x8 quantization (the int16 area): int16 kernels beside the int8 ones of the rows above; the
# rows gain the ("int16", "int16") dtypes, the 16x8 rules in their checker and, where the op computes
# (None: the row's lowering copies any dtype), the int16 lowering of the family module
INT16_LOWERINGS = {
    "CONV_2D": conv_int16.lower_conv2d_int16,
    "DEPTHWISE_CONV_2D": conv_int16.lower_depthwise_int16,
    "FULLY_CONNECTED": conv_int16.lower_fully_connected_int16,
    "TRANSPOSE_CONV": conv_int16.lower_transpose_conv_int16,
    "ADD": elementwise_int16.lower_binary_int16,
    "SUB": elementwise_int16.lower_binary_int16,
    "MUL": elementwise_int16.lower_binary_int16,
    "AVERAGE_POOL_2D": None, "MAX_POOL_2D": None,
    "RESHAPE": None, "SQUEEZE": None, "EXPAND_DIMS": None, "PAD": None, "CONCATENATION": None,
    "STRIDED_SLICE": None, "TRANSPOSE": None, "MEAN": None,
    **{kind: None for kind in ("SPLIT", "SPLIT_V", "PACK", "UNPACK", "SLICE", "GATHER", "GATHER_ND", "TILE",
                               "BROADCAST_TO", "SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND", "PADV2", "MIRROR_PAD",
                               "RESIZE_NEAREST_NEIGHBOR")},  # (LiteRT 2.3 has no int16 SPACE_TO_DEPTH)
    **{kind: activations_int16.lower_activation_int16 for kind in ("RELU", "RELU6", "LEAKY_RELU")},
    "SOFTMAX": softmax_int16.lower_softmax_int16,
}
OPS.update({kind: replace(OPS[kind], check=int16.checker(OPS[kind].check),
                          lower=int16.by_dtype(lower, OPS[kind].lower) if lower else OPS[kind].lower,
                          dtypes=OPS[kind].dtypes + int16.DTYPES)
            for kind, lower in INT16_LOWERINGS.items()})

FAMILY_MODULES = (conv2d, depthwise_conv2d, fully_connected, pooling, elementwise, reshape, softmax, activations,
                  reduce, movement,
                  argminmax, reduce_more, l2norm, batch_matmul, transpose_conv, log_softmax,
                  compare, unary_math, binary_math, quantize,
                  resize, split, gather, tile, space_depth, padding,
                  detection, svdf, lstm,
                  conv_int16, elementwise_int16, activations_int16, softmax_int16)
FAMILIES: dict[str, KernelFamily] = {name: family for module in FAMILY_MODULES
                                     for name, family in module.FAMILIES.items()}
