"""Import-time constant folding: an op whose inputs are all constants (and SHAPE and RANK, whose output
is fixed by the static shape of their input) is evaluated here with numpy; its outputs become constant tensors and the
op leaves the graph. Converters spell static shapes as run-time arithmetic (Keras' reshape becomes
SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE on int32 tensors) and float16 models DEQUANTIZE their
weights at load time: folded, neither needs a kernel nor a registry row.

    foldable(kind, inputs) -> bool                  is there an evaluator, and are the inputs known?
    evaluate(kind, inputs, outputs, options) -> [np.ndarray]   one array per output (FoldError)

EVALUATORS maps an op kind to `fn(view) -> [arrays]`; a view has the op's input and output
tensors (graph.Tensor) and its raw builtin options (tflite/reader.py reads them). Each evaluator
computes exactly what LiteRT's kernel computes: int32 arithmetic wraps, DIV truncates, FLOOR_DIV
floors, float32 stays float32 (tests/unit/test_fold.py checks each against LiteRT). TFLite's shape
rules come from ops/rules.py. To fold another op: one evaluator, one row, one test.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..fixedpoint.prepare import CLAMPS
from ..graph import Tensor
from ..ops.rules import strided_slice_ranges

INT = ("int32", "int64")
# dtypes no kernel takes whose constants are still read, for the folds that consume them
READABLE_DTYPES = ("float16",)
ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6")  # the fused activation codes folds clamp with


class FoldError(Exception):
    """The op cannot be evaluated as its operands stand (the message says why)."""


@dataclass
class View:
    kind: str
    inputs: list[Tensor | None]
    outputs: list[Tensor]
    options: dict

    def value(self, i: int) -> np.ndarray:
        if i >= len(self.inputs) or self.inputs[i] is None:
            raise FoldError(f"input {i} is missing")
        return self.inputs[i].data

    def ints(self, i: int) -> list[int]:
        t = self.inputs[i] if i < len(self.inputs) else None
        if t is None or t.dtype not in INT:
            raise FoldError(f"input {i} must be int32 or int64")
        return [int(v) for v in t.data.reshape(-1)]

    def axis(self, axis: int, rank: int) -> int:
        if not -rank <= axis < rank:
            raise FoldError(f"axis {axis} out of range for rank {rank}")
        return axis % rank


def foldable(kind: str, inputs: list[Tensor | None]) -> bool:
    present = [t for t in inputs if t is not None]
    if kind not in EVALUATORS or not present:
        return False
    if kind in STATIC:
        return True
    return all(t.is_constant for t in present)


def evaluate(kind: str, inputs: list[Tensor | None], outputs: list[Tensor], options: dict) -> list[np.ndarray]:
    """The op's outputs, each with its output tensor's shape and dtype (FoldError if they differ)."""
    view = View(kind, inputs, outputs, options)
    try:
        values = EVALUATORS[kind](view)
    except (ValueError, IndexError, TypeError) as e:  # numpy's own complaints about the operands
        raise FoldError(str(e)) from None
    if len(values) != len(outputs):
        raise FoldError(f"computes {len(values)} outputs, has {len(outputs)}")
    results = []
    for value, t in zip(values, outputs):
        value = np.asarray(value)
        if value.dtype != np.dtype(t.dtype):
            raise FoldError(f"computes {value.dtype}, output '{t.name}' is {t.dtype}")
        if value.size != int(np.prod(t.shape, dtype=np.int64)) or (value.ndim and value.shape != tuple(t.shape)):
            raise FoldError(f"computes shape {list(value.shape)}, output '{t.name}' has {list(t.shape)}")
        results.append(np.array(value.reshape(t.shape), order="C"))  # (ascontiguousarray makes 0-d 1-d)
    return results


# -- shapes and data movement ---------------------------------------------------------------------

def _shape(v):
    return [np.array(v.inputs[0].shape, dtype=v.outputs[0].dtype)]


def _rank(v):
    return [np.array(len(v.inputs[0].shape), dtype=v.outputs[0].dtype)]


def _tile(v):
    x = v.value(0)
    multiples = v.ints(1)
    if len(multiples) != x.ndim or any(m < 0 for m in multiples):
        raise FoldError(f"multiples {multiples} do not fit rank {x.ndim}")
    return [np.tile(x, multiples)]


def _broadcast_to(v):
    return [np.array(np.broadcast_to(v.value(0), v.ints(1)))]


def _zeros_like(v):
    return [np.zeros_like(v.value(0))]


def _strided_slice(v):
    x = v.value(0)
    masks = {k: int(v.options.get(k, 0)) for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    ranges, shape = strided_slice_ranges(x.shape, v.ints(1), v.ints(2), v.ints(3),
                                         offset=bool(v.options.get("offset", False)), **masks)
    index = tuple(slice(start, None if stop < 0 else stop, stride) for start, stop, stride in ranges)
    return [x[index].reshape(shape)]


def _same_quantization(v) -> None:
    """Joining quantized codes is a copy only if all share the output's quantization (LiteRT's
    int8 CONCATENATION and PACK require it; otherwise the kernel path reports it)."""
    q = v.outputs[0].quant
    if any(t is not None and t.quant != q for t in v.inputs):
        raise FoldError("inputs are quantized differently from the output")


def _pack(v):
    _same_quantization(v)
    values = [v.value(i) for i in range(len(v.inputs))]
    rank = values[0].ndim + 1
    return [np.stack(values, axis=v.axis(int(v.options.get("axis", 0)), rank))]


def _unpack(v):
    x = v.value(0)
    axis = v.axis(int(v.options.get("axis", 0)), x.ndim)
    return [np.take(x, i, axis=axis) for i in range(x.shape[axis])]


def _concatenation(v):
    _same_quantization(v)
    values = [v.value(i) for i in range(len(v.inputs))]
    if _activation(v) != "NONE":
        raise FoldError("a fused activation on a constant concatenation")
    return [np.concatenate(values, axis=v.axis(int(v.options.get("axis", 0)), values[0].ndim))]


def _gather(v):
    params, indices = v.value(0), np.asarray(v.ints(1)).reshape(v.inputs[1].shape)
    if int(v.options.get("batch_dims", 0)) != 0:
        raise FoldError("batch_dims is not folded")
    axis = v.axis(int(v.options.get("axis", 0)), params.ndim)
    if indices.size and (indices.min() < 0 or indices.max() >= params.shape[axis]):
        raise FoldError(f"indices out of range [0, {params.shape[axis]})")
    return [np.take(params, indices, axis=axis)]


def _reshape(v):
    """The target as LiteRT takes it: a rank-1 int32 shape operand, else the new_shape option (absent:
    a scalar); numpy resolves one -1 the same way. evaluate() holds the output tensor to it."""
    x = v.value(0)
    shape = v.inputs[1] if len(v.inputs) > 1 else None
    if shape is not None and shape.dtype == "int32" and len(shape.shape) == 1:
        target = v.ints(1)
    else:
        target = [int(d) for d in v.options.get("new_shape", ())]
    return [x.reshape(target)]


def _expand_dims(v):
    x = v.value(0)
    (axis,) = v.ints(1)
    return [np.expand_dims(x, v.axis(axis, x.ndim + 1))]


def _squeeze(v):
    x = v.value(0)
    dims = [v.axis(int(d), x.ndim) for d in v.options.get("squeeze_dims", ())]
    return [np.squeeze(x, axis=tuple(dims)) if dims else np.squeeze(x)]


def _slice(v):
    x = v.value(0)
    begin, size = v.ints(1), v.ints(2)
    if len(begin) != x.ndim or len(size) != x.ndim:
        raise FoldError(f"begin and size need {x.ndim} values")
    index = []
    for dim, b, s in zip(x.shape, begin, size):
        end = dim if s == -1 else b + s
        if not 0 <= b <= end <= dim:
            raise FoldError(f"slice [{b}, {end}) out of range [0, {dim}]")
        index.append(slice(b, end))
    return [x[tuple(index)]]


def _transpose(v):
    x = v.value(0)
    perm = v.ints(1)
    if sorted(perm) != list(range(x.ndim)):
        raise FoldError(f"{perm} is not a permutation of {x.ndim} axes")
    return [np.transpose(x, perm)]


def _cast(v):
    x, dtype = v.value(0), v.outputs[0].dtype
    if dtype == "bool":
        return [x != 0]
    if np.issubdtype(x.dtype, np.floating) and np.issubdtype(np.dtype(dtype), np.integer):
        info = np.iinfo(dtype)
        t = np.trunc(x.astype(np.float64))  # static_cast truncates
        if not np.isfinite(t).all() or t.min(initial=0) < info.min or t.max(initial=0) > info.max:
            raise FoldError(f"a value does not fit {dtype}")
        return [t.astype(dtype)]
    return [x.astype(dtype)]


def _fill(v):
    dims = v.ints(0)
    value = v.value(1)
    if value.size != 1 or any(d < 0 for d in dims):
        raise FoldError("FILL needs non-negative dims and a scalar value")
    return [np.full(dims, value.reshape(()), dtype=value.dtype)]


def _range(v):
    start, limit, delta = (v.value(i).reshape(()) for i in range(3))
    if delta == 0 or (start < limit and delta < 0) or (start > limit and delta > 0):
        raise FoldError(f"RANGE({start}, {limit}, {delta}) is empty or endless")
    if np.issubdtype(start.dtype, np.integer):
        n = (abs(int(limit) - int(start)) + abs(int(delta)) - 1) // abs(int(delta))
        return [(int(start) + np.arange(n, dtype=np.int64) * int(delta)).astype(start.dtype)]
    n = int(np.ceil(abs((limit - start) / delta)))
    out = np.empty(n, dtype=start.dtype)  # LiteRT accumulates: value += delta
    value = start
    for i in range(n):
        out[i] = value
        value = (value + delta).astype(start.dtype)
    return [out]


# -- integer arithmetic ---------------------------------------------------------------------------

def _wrap(x: np.ndarray, dtype) -> np.ndarray:
    """Two's complement wrap of exact integers (Python ints in an object array, or int64) to dtype."""
    bits = np.iinfo(dtype).bits
    wrapped = (np.asarray(x, dtype=object) + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    return wrapped.astype(dtype)


def _activation(v) -> str:
    code = int(v.options.get("fused_activation_function", 0))
    if not 0 <= code < len(ACTIVATIONS):
        raise FoldError(f"fused activation code {code} is not folded")
    return ACTIVATIONS[code]


def _binary(fn):
    def evaluate_binary(v):
        a, b = v.value(0), v.value(1)
        if a.dtype != b.dtype or a.dtype.name not in INT:
            raise FoldError(f"{a.dtype} {v.kind} is not folded (int32 and int64 are)")
        exact = fn(a.astype(object), b.astype(object))
        out = _wrap(np.asarray(exact, dtype=object), a.dtype)
        lo, hi = CLAMPS[_activation(v)]
        if np.isfinite(lo):
            out = np.maximum(out, int(lo)).astype(a.dtype)
        if np.isfinite(hi):
            out = np.minimum(out, int(hi)).astype(a.dtype)
        return [out]
    return evaluate_binary


def _nonzero(b):
    if (np.asarray(b) == 0).any():
        raise FoldError("division by zero")
    return b


def _truncdiv(a, b):
    b = _nonzero(b)
    q = np.frompyfunc(lambda x, y: abs(x) // abs(y) * (1 if (x >= 0) == (y >= 0) else -1), 2, 1)
    return q(a, b)


def _floordiv(a, b):
    return a // _nonzero(b)  # Python ints floor, as TFLite's FloorDiv does


def _reduce(fn):
    def evaluate_reduce(v):
        x = v.value(0)
        if x.dtype.name not in INT:
            raise FoldError(f"{x.dtype} {v.kind} is not folded (int32 and int64 are)")
        axes = tuple(sorted({v.axis(a, x.ndim) for a in v.ints(1)}))
        exact = fn(x.astype(object), axis=axes, keepdims=bool(v.options.get("keep_dims", False)))
        return [_wrap(np.asarray(exact, dtype=object), x.dtype)]
    return evaluate_reduce


def _dequantize(v):
    t = v.inputs[0]
    x = t.data
    if t.dtype == "float16":
        return [x.astype(np.float32)]
    q = t.quant
    if q is None:
        raise FoldError(f"{t.dtype} input '{t.name}' has no quantization")
    scale = np.asarray(q.scale, dtype=np.float32).astype(np.float64)
    zero = np.asarray(q.zero_point, dtype=np.int64)
    if q.axis is not None:
        shape = [1] * x.ndim
        shape[q.axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    # exact in double for 8- and 16-bit codes, then rounded once: LiteRT's float product
    return [(scale * (x.astype(np.int64) - zero)).astype(np.float32)]


EVALUATORS = {
    "SHAPE": _shape,
    "RANK": _rank,
    "TILE": _tile,
    "BROADCAST_TO": _broadcast_to,
    "ZEROS_LIKE": _zeros_like,
    "NEG": lambda v: [_wrap(-v.value(0).astype(object), v.value(0).dtype) if v.value(0).dtype.name in INT
                      else -v.value(0)],
    "STRIDED_SLICE": _strided_slice,
    "PACK": _pack,
    "UNPACK": _unpack,
    "CONCATENATION": _concatenation,
    "GATHER": _gather,
    "RESHAPE": _reshape,
    "EXPAND_DIMS": _expand_dims,
    "SQUEEZE": _squeeze,
    "SLICE": _slice,
    "TRANSPOSE": _transpose,
    "CAST": _cast,
    "FILL": _fill,
    "RANGE": _range,
    "ADD": _binary(lambda a, b: a + b),
    "SUB": _binary(lambda a, b: a - b),
    "MUL": _binary(lambda a, b: a * b),
    "DIV": _binary(_truncdiv),
    "FLOOR_DIV": _binary(_floordiv),
    "MAXIMUM": _binary(np.maximum),
    "MINIMUM": _binary(np.minimum),
    "SUM": _reduce(np.sum),
    "REDUCE_PROD": _reduce(np.prod),
    "DEQUANTIZE": _dequantize,
}
# the ops whose output depends only on the input's static shape: folded whatever the input holds
STATIC = ("SHAPE", "RANK")
