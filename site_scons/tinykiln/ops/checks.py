"""The importer's per-op checks and attrs: what each supported TFLite op must look like, and its IR
attributes (ops/registry.py says which checker an op kind has).

Each checker gets an OpView (the op's tensors, already converted to graph.Tensor, and its raw builtin
options) and returns the op's attrs. It reports everything later stages could not handle through
view.fail(...) and keeps going, so one import lists every problem of every op.
Attribute names and meanings are the convention in the graph IR (see graph.Op).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tinykiln.fixedpoint.prepare import CLAMPS
from tinykiln.graph import Tensor

from .reference import softmax_input_real_multiplier
from .rules import FIXED_OUTPUT_QUANT, conv_out, fixed_output_quant_ok, reduced_shape, strided_slice_ranges

ACTIVATIONS = ("NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT")
PADDINGS = ("SAME", "VALID")


@dataclass
class OpView:
    kind: str
    inputs: list[Tensor | None]  # None for an omitted optional input (-1)
    outputs: list[Tensor]
    options: dict
    options_type: str
    tensor_types: dict = field(default_factory=dict)  # the format's TensorType codes -> names
    problems: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.problems.append(message)

    def input(self, i: int) -> Tensor | None:
        return self.inputs[i] if i < len(self.inputs) else None

    @property
    def x(self) -> Tensor:
        return self.inputs[0]

    @property
    def y(self) -> Tensor:
        return self.outputs[0]

    def need(self, n_in: tuple[int, int], n_out: int = 1) -> bool:
        """Check operand counts: n_in = (min, max) inputs, exactly n_out outputs."""
        lo, hi = n_in
        ok = True
        if not lo <= len(self.inputs) <= hi:
            self.fail(f"takes {lo if lo == hi else f'{lo} to {hi}'} inputs, has {len(self.inputs)}")
            ok = False
        if len(self.outputs) != n_out:
            self.fail(f"takes {n_out} output(s), has {len(self.outputs)}")
            ok = False
        missing = [i for i, t in enumerate(self.inputs[:lo]) if t is None]
        if missing:
            self.fail(f"required input {missing[0]} is omitted (-1)")
            ok = False
        return ok

    def rank(self, t: Tensor, ranks, role: str) -> bool:
        if len(t.shape) not in ((ranks,) if isinstance(ranks, int) else ranks):
            self.fail(f"{role} '{t.name}' has rank {len(t.shape)}, expected {ranks}")
            return False
        return True

    def constant(self, t: Tensor, role: str, dtypes=("int32",)) -> bool:
        if not t.is_constant:
            self.fail(f"{role} '{t.name}' must be a constant tensor")
            return False
        if t.dtype not in dtypes:
            self.fail(f"{role} '{t.name}' is {t.dtype}, expected {' or '.join(dtypes)}")
            return False
        return True

    def activation(self) -> str:
        code = self.options.get("fused_activation_function", 0)
        if not 0 <= code < len(ACTIVATIONS):
            self.fail(f"unknown fused activation code {code}")
            return "NONE"
        name = ACTIVATIONS[code]
        if name not in CLAMPS:
            # the lowering folds fused activations into the output clamp
            self.fail(f"fused activation {name} is not supported ({', '.join(CLAMPS)} are)")
        return name

    def padding(self) -> str:
        code = self.options.get("padding", 0)
        if not 0 <= code < len(PADDINGS):
            self.fail(f"unknown padding code {code}")
            return "SAME"
        return PADDINGS[code]

    def known_bias_type(self) -> None:
        """quantized_bias_type: LiteRT ignores it for int8 but refuses codes that are no TensorType."""
        code = self.options.get("quantized_bias_type", 0)
        if code not in self.tensor_types:
            self.fail(f"unknown quantized_bias_type {code}")

    def positive_pair(self, name: str, h_key: str, w_key: str) -> tuple[int, int]:
        h, w = int(self.options.get(h_key, 0)), int(self.options.get(w_key, 0))
        if h < 1 or w < 1:
            self.fail(f"{name} ({h}, {w}) must be >= 1")
            return (1, 1)
        return (h, w)

    def shape_is(self, t: Tensor, shape, role: str = "output") -> None:
        if tuple(t.shape) != tuple(shape):
            self.fail(f"{role} '{t.name}' has shape {list(t.shape)}, the op computes {list(shape)}")


# -- quantization rules (int8 path) -----------------------------------------------------------------

def _weights_quant(v: OpView, w: Tensor, channel_axis: int, role: str) -> None:
    """int8 weights: symmetric (zero points 0), per-tensor or per-channel along channel_axis."""
    q = w.quant
    if q is None:
        return  # reported by the tensor checks
    if w.from_uint8:
        # uint8 weights (stored as int8, zero point - 128): any zero point, one scale, as LiteRT's
        # uint8 kernels take them (the lowering folds the zero point into int16 weights)
        if q.per_channel:
            v.fail(f"uint8 {role} '{w.name}' is quantized per channel ({len(q.scale)} scales); LiteRT's uint8 "
                   "kernels take one scale: convert the model to int8 for per-channel weights")
        return
    if any(z != 0 for z in q.zero_point):
        v.fail(f"{role} '{w.name}' is not symmetrically quantized (zero point != 0)")
    if q.axis is not None and q.axis != channel_axis:
        v.fail(f"{role} '{w.name}' is quantized per channel along axis {q.axis}, expected {channel_axis}")


def _bias(v: OpView, b: Tensor | None, n: int, x: Tensor, w: Tensor) -> None:
    if b is None:
        return
    # 16x8 (int16 activations): an int64 bias, or int32 as LiteRT also takes
    wants = {"int8": ("int32",), "int16": ("int64", "int32")}.get(x.dtype, ("float32",))
    if not v.constant(b, "bias", wants):
        return
    want = "float32" if wants == ("float32",) else "int32"
    if b.shape != (n,):
        v.fail(f"bias '{b.name}' has shape {list(b.shape)}, expected [{n}]")
    if want == "int32" and b.quant is not None and any(z != 0 for z in b.quant.zero_point):
        v.fail(f"bias '{b.name}' has a nonzero zero point")
    if want == "int32" and b.quant is not None and w.quant is not None and len(b.quant.scale) not in (1, n):
        v.fail(f"bias '{b.name}' has {len(b.quant.scale)} scales for {n} channels")


def _weights(v: OpView, w: Tensor, rank: int, channel_axis: int, role: str) -> bool:
    want = "int8" if v.x.dtype in ("int8", "int16") else "float32"
    if not v.constant(w, role, (want,)) or not v.rank(w, rank, role):
        return False
    if want == "int8":
        _weights_quant(v, w, channel_axis, role)
        if w.quant is not None and w.quant.axis is not None and len(w.quant.scale) != w.shape[channel_axis]:
            v.fail(f"{role} '{w.name}' has {len(w.quant.scale)} scales for {w.shape[channel_axis]} channels")
    return True


# -- checkers ------------------------------------------------------------------------------------------

def conv_2d(v: OpView) -> dict:
    if not v.need((2, 3)):
        return {}
    x, w, b = v.x, v.inputs[1], v.input(2)
    attrs = {"stride": v.positive_pair("stride", "stride_h", "stride_w"),
             "dilation": v.positive_pair("dilation", "dilation_h_factor", "dilation_w_factor"),
             "padding": v.padding(), "activation": v.activation()}
    v.known_bias_type()
    if not v.rank(x, 4, "input") or not _weights(v, w, 4, 0, "filter"):
        return attrs
    o, kh, kw, ci = w.shape
    if ci != x.shape[3]:
        v.fail(f"filter '{w.name}' has {ci} input channels, the input has {x.shape[3]}"
               " (grouped convolution is not supported)")
    _bias(v, b, o, x, w)
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    v.shape_is(v.y, (x.shape[0], conv_out(x.shape[1], kh, sh, dh, attrs["padding"]),
                     conv_out(x.shape[2], kw, sw, dw, attrs["padding"]), o))
    return attrs


def depthwise_conv_2d(v: OpView) -> dict:
    if not v.need((2, 3)):
        return {}
    x, w, b = v.x, v.inputs[1], v.input(2)
    attrs = {"stride": v.positive_pair("stride", "stride_h", "stride_w"),
             "dilation": v.positive_pair("dilation", "dilation_h_factor", "dilation_w_factor"),
             "padding": v.padding(), "depth_multiplier": 1, "activation": v.activation()}
    if not v.rank(x, 4, "input") or not _weights(v, w, 4, 3, "filter"):
        return attrs
    _, kh, kw, oc = w.shape
    ci = x.shape[3]
    if w.shape[0] != 1 or oc % ci:
        v.fail(f"filter '{w.name}' shape {list(w.shape)} does not fit input channels {ci}")
        return attrs
    # The multiplier follows from the shapes; converters have written 0 or stale values in the option.
    attrs["depth_multiplier"] = oc // ci
    _bias(v, b, oc, x, w)
    (sh, sw), (dh, dw) = attrs["stride"], attrs["dilation"]
    v.shape_is(v.y, (x.shape[0], conv_out(x.shape[1], kh, sh, dh, attrs["padding"]),
                     conv_out(x.shape[2], kw, sw, dw, attrs["padding"]), oc))
    return attrs


def fully_connected(v: OpView) -> dict:
    if not v.need((2, 3)):
        return {}
    x, w, b = v.x, v.inputs[1], v.input(2)
    attrs = {"activation": v.activation(), "keep_num_dims": bool(v.options.get("keep_num_dims", False))}
    v.known_bias_type()
    if v.options.get("weights_format", 0) != 0:
        v.fail("shuffled weights format is not supported")
    if not _weights(v, w, 2, 0, "weights"):
        return attrs
    units, depth = w.shape
    size = int(np.prod(x.shape, dtype=np.int64))
    # TFLite flattens the input to [size / depth, depth]; keep_num_dims keeps its leading dimensions
    if size % depth or (attrs["keep_num_dims"] and x.shape[-1:] != (depth,)):
        v.fail(f"input '{x.name}' {list(x.shape)} does not fit weights {list(w.shape)}")
        return attrs
    _bias(v, b, units, x, w)
    if attrs["keep_num_dims"]:
        v.shape_is(v.y, tuple(x.shape[:-1]) + (units,))
    else:
        v.shape_is(v.y, (size // depth, units))
    return attrs


def pool_2d(v: OpView) -> dict:
    if not v.need((1, 1)):
        return {}
    attrs = {"filter": v.positive_pair("filter", "filter_height", "filter_width"),
             "stride": v.positive_pair("stride", "stride_h", "stride_w"),
             "padding": v.padding(), "activation": v.activation()}
    x = v.x
    if v.rank(x, 4, "input"):
        (fh, fw), (sh, sw) = attrs["filter"], attrs["stride"]
        v.shape_is(v.y, (x.shape[0], conv_out(x.shape[1], fh, sh, 1, attrs["padding"]),
                         conv_out(x.shape[2], fw, sw, 1, attrs["padding"]), x.shape[3]))
    return attrs


def elementwise_binary(v: OpView) -> dict:
    if not v.need((2, 2)):
        return {}
    attrs = {"activation": v.activation()}
    a, b = v.inputs
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        v.fail(f"input shapes {list(a.shape)} and {list(b.shape)} do not broadcast")
        return attrs
    v.shape_is(v.y, shape)
    return attrs


def same_shape(v: OpView) -> dict:
    """Elementwise unary ops: LOGISTIC, TANH, RELU, RELU6, RELU_N1_TO_1, HARD_SWISH, QUANTIZE, DEQUANTIZE."""
    if v.need((1, 1)):
        v.shape_is(v.y, v.x.shape)
        if v.kind in FIXED_OUTPUT_QUANT:
            _fixed_output_quant(v)
    return {}


def _fixed_output_quant(v: OpView) -> None:
    q = v.y.quant
    if v.y.dtype != "int8" or q is None:
        return
    if not fixed_output_quant_ok(v.kind, q.scale[0], q.zero_point[0]):
        scale, zp = FIXED_OUTPUT_QUANT[v.kind]
        v.fail(f"int8 output '{v.y.name}' must have scale 1/{round(1 / scale)} and zero point {zp} "
               f"(has {q.scale[0]:g}, {q.zero_point[0]})")


def leaky_relu(v: OpView) -> dict:
    same_shape(v)
    return {"alpha": float(v.options.get("alpha", 0.0))}


def softmax(v: OpView) -> dict:
    beta = float(v.options.get("beta", 0.0))
    attrs = {"beta": beta}
    if not v.need((1, 1)):
        return attrs
    same_shape(v)
    if len(v.x.shape) < 1:
        v.fail("input must have rank >= 1")
    if not np.isfinite(beta):
        v.fail(f"beta {beta} is not finite")
    elif beta <= 0 and v.x.dtype == "int8":
        v.fail(f"int8 SOFTMAX needs beta > 0, has {beta} (LiteRT aborts on it)")
    elif v.x.dtype == "int8" and v.x.quant is not None and \
            not softmax_input_real_multiplier(v.x.quant.scale[0], beta) > 1:
        v.fail(f"int8 SOFTMAX needs beta * input scale * 2^26 > 1, has beta {beta:g} and input scale "
               f"{v.x.quant.scale[0]:g} (LiteRT and TFLite Micro abort on it)")
    if v.y.dtype == "int16" and v.x.dtype not in ("int8", "int16"):
        v.fail(f"SOFTMAX from {v.x.dtype} to int16 is not supported (int8 or int16 to int16 is)")
    return attrs


def reshape(v: OpView) -> dict:
    """The target shape comes, as in LiteRT, from a rank-1 int32 shape operand if there is one, else
    from the new_shape option (absent: a scalar); one dimension may be -1. The output tensor must
    have that shape."""
    if not v.need((1, 2)):
        return {}
    shape_in = v.input(1)
    if shape_in is not None and len(shape_in.shape) == 1 and shape_in.dtype == "int32":
        if not shape_in.is_constant:
            v.fail(f"shape '{shape_in.name}' is computed at run time (a dynamic shape)")
            return {}
        target = shape_in.data.tolist()
    else:
        target = list(v.options.get("new_shape", ()))
    size = int(np.prod(v.x.shape, dtype=np.int64))
    if target.count(-1) == 1:
        rest = int(np.prod([d for d in target if d != -1], dtype=np.int64))
        if rest > 0 and size % rest == 0:
            target[target.index(-1)] = size // rest
    if any(d < 1 for d in target) or int(np.prod(target, dtype=np.int64)) != size:
        v.fail(f"cannot reshape {list(v.x.shape)} to {target}")
        return {}
    v.shape_is(v.y, target)
    return {}


def squeeze(v: OpView) -> dict:
    if not v.need((1, 1)):
        return {}
    rank = len(v.x.shape)
    dims = []
    for d in v.options.get("squeeze_dims", ()):
        if not -rank <= d < rank:
            v.fail(f"squeeze dim {d} out of range for rank {rank}")
            continue
        dims.append(d % rank)
    if any(v.x.shape[d] != 1 for d in dims):
        v.fail(f"squeezes a dimension that is not 1 in {list(v.x.shape)}")
    want = [s for i, s in enumerate(v.x.shape) if (i not in dims if dims else s != 1)]
    v.shape_is(v.y, want)
    return {"squeeze_dims": tuple(sorted(set(dims)))}


def pad(v: OpView) -> dict:
    if not v.need((2, 2)):
        return {}
    p = v.inputs[1]
    rank = len(v.x.shape)
    if not v.constant(p, "paddings", ("int32", "int64")):
        return {}
    if p.shape != (rank, 2):
        v.fail(f"paddings '{p.name}' has shape {list(p.shape)}, expected [{rank}, 2]")
        return {}
    if (p.data < 0).any():
        v.fail(f"paddings '{p.name}' has negative values")
        return {}
    v.shape_is(v.y, [int(s + lo + hi) for s, (lo, hi) in zip(v.x.shape, p.data.tolist())])
    return {}


def concatenation(v: OpView) -> dict:
    if not v.need((1, 1 << 16)):
        return {}
    if any(t is None for t in v.inputs):
        v.fail("an input is omitted (-1)")
        return {}
    rank = len(v.x.shape)
    axis = int(v.options.get("axis", 0))
    attrs = {"axis": axis % rank if rank and -rank <= axis < rank else axis, "activation": v.activation()}
    if not -rank <= axis < rank:
        v.fail(f"axis {axis} out of range for rank {rank}")
        return attrs
    axis %= rank
    if v.x.dtype in ("int8", "int16") and attrs["activation"] != "NONE":
        v.fail(f"{v.x.dtype} CONCATENATION with a fused activation is not supported (LiteRT refuses it too)")
    total = 0
    for t in v.inputs:
        if len(t.shape) != rank or any(a != b for i, (a, b) in enumerate(zip(t.shape, v.x.shape)) if i != axis):
            v.fail(f"input '{t.name}' {list(t.shape)} does not fit the concatenation of {list(v.x.shape)}")
            return attrs
        total += t.shape[axis]
        if t.dtype == "int8" and t.quant != v.y.quant:
            # LiteRT's int8 concatenation copies bytes: it requires one quantization throughout
            if t.from_uint8:  # (its uint8 one rescales such inputs: not supported)
                v.fail(f"uint8 input '{t.name}' is quantized differently from the output (LiteRT's uint8 "
                       "CONCATENATION rescales it; not supported: quantize the inputs alike)")
            else:
                v.fail(f"int8 input '{t.name}' is quantized differently from the output")
            return attrs
        if t.dtype == "int16" and t.quant != v.y.quant:
            v.fail(f"int16 input '{t.name}' is quantized differently from the output (LiteRT copies codes)")
            return attrs
    v.shape_is(v.y, tuple(v.x.shape[:axis]) + (total,) + tuple(v.x.shape[axis + 1:]))
    return attrs


def mean(v: OpView) -> dict:
    if not v.need((2, 2)):
        return {}
    attrs = {"keep_dims": bool(v.options.get("keep_dims", False))}
    axes = v.inputs[1]
    if not v.constant(axes, "axes", ("int32", "int64")):
        return attrs
    rank = len(v.x.shape)
    values = axes.data.reshape(-1).tolist()
    if any(not -rank <= a < rank for a in values):
        v.fail(f"axes {values} out of range for rank {rank}")
        return attrs
    v.shape_is(v.y, reduced_shape(v.x.shape, {a % rank for a in values}, attrs["keep_dims"]))
    return attrs


def strided_slice(v: OpView) -> dict:
    attrs = {k: int(v.options.get(k, 0)) for k in
             ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")}
    attrs["offset"] = bool(v.options.get("offset", False))
    if not v.need((4, 4)):
        return attrs
    rank = len(v.x.shape)
    for t, role in zip(v.inputs[1:], ("begin", "end", "strides")):
        if v.constant(t, role, ("int32",)) and t.shape != (rank,):
            v.fail(f"{role} '{t.name}' has shape {list(t.shape)}, expected [{rank}]")
    if v.inputs[3].is_constant and (v.inputs[3].data == 0).any():
        v.fail("strides contain 0")
    if attrs["ellipsis_mask"] or attrs["new_axis_mask"]:
        v.fail("ellipsis_mask and new_axis_mask are not supported")
    if not v.problems:
        begin, end, strides = (t.data.tolist() for t in v.inputs[1:])
        masks = {k: attrs[k] for k in ("begin_mask", "end_mask", "shrink_axis_mask", "offset")}
        v.shape_is(v.y, strided_slice_ranges(v.x.shape, begin, end, strides, **masks)[1])
    return attrs


def transpose(v: OpView) -> dict:
    if not v.need((2, 2)):
        return {}
    perm = v.inputs[1]
    rank = len(v.x.shape)
    if not v.constant(perm, "permutation", ("int32", "int64")):
        return {}
    values = perm.data.reshape(-1).tolist()
    if sorted(values) != list(range(rank)):
        v.fail(f"permutation {values} is not a permutation of {rank} axes")
        return {}
    v.shape_is(v.y, [v.x.shape[p] for p in values])
    return {}
