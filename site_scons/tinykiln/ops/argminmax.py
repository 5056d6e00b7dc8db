"""ARG_MAX and ARG_MIN over one constant axis: int8 or float32 in, int32 or int64 indices out.

LiteRT (arg_min_max.cc, reference_ops::ArgMinMax) walks the axis keeping the first value and
replacing it only when a later one is strictly greater (ARG_MAX) or strictly less (ARG_MIN): ties
go to the lowest index. int8 compares the raw codes (scales are positive, so the order is the
real values' order). The output dtype is the op's output_type option, which must agree with the
output tensor.

Kernel: the input seen as (outer, axis, inner); per output, the extreme value (a max/min
reduction) and then the lowest index holding it (a min reduction over an index or `axis` where
the value differs): two passes over the axis, both computed at the output's loop (scalars, no
buffer). No knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, unsupported
from .checks import OpView

INDEX_DTYPES = ("int32", "int64")
# the registry's (input, output) dtypes: values in, indices out
DTYPES = tuple((i, o) for i in ("int8", "float32") for o in INDEX_DTYPES)


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    """ARG_MAX / ARG_MIN: (input, axis) with axis a constant int32/int64 of one element; the
    output drops that axis; output_type names the output tensor's dtype."""
    code = v.options.get("output_type", None)
    want = v.tensor_types.get(code) if code is not None else None
    attrs = {}
    if not v.need((2, 2)):
        return attrs
    axis = v.inputs[1]
    if want is not None and want != v.y.dtype:
        v.fail(f"output_type is {want}, the output tensor '{v.y.name}' is {v.y.dtype}")
    if not v.constant(axis, "axis", ("int32", "int64")):
        return attrs
    if axis.data.size != 1:
        v.fail(f"axis '{axis.name}' has {axis.data.size} values, expected 1")
        return attrs
    rank = len(v.x.shape)
    a = int(axis.data.reshape(-1)[0])
    if not -rank <= a < rank:
        v.fail(f"axis {a} out of range for rank {rank}")
        return attrs
    a %= rank
    v.shape_is(v.y, [s for i, s in enumerate(v.x.shape) if i != a])
    return {"axis": a}


# -- numpy model (the tests' oracle) ----------------------------------------------------------------

def argminmax_reference(x, axis: int, is_max: bool, out_dtype: str) -> np.ndarray:
    """reference_ops::ArgMinMax: the first index of the extreme value along `axis`."""
    x = np.asarray(x)
    fn = np.argmax if is_max else np.argmin  # numpy also returns the first of equal extremes
    return fn(x, axis=axis).astype(out_dtype)


# -- lowering ---------------------------------------------------------------------------------------

def lower_argminmax(ctx, op):
    x_index, y_index = op.inputs[0], op.outputs[0]
    x, y = ctx.tensor(x_index), ctx.tensor(y_index)
    rank = len(x.shape)
    raw = np.asarray(constant(ctx, op.inputs[1], op, "axis")).reshape(-1)
    if raw.size != 1 or not -rank <= int(raw[0]) < rank:
        raise unsupported(op, f"axis {raw.tolist()} for rank {rank}")
    axis = int(raw[0]) % rank
    if x.dtype not in ("int8", "float32") or y.dtype not in INDEX_DTYPES:
        raise unsupported(op, f"{x.dtype} -> {y.dtype} (int8 or float32 -> int32 or int64)")
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    inner = int(np.prod(x.shape[axis + 1:], dtype=np.int64))
    attrs = {"outer": outer, "depth": int(x.shape[axis]), "inner": inner, "max": op.kind == "ARG_MAX"}
    family = f"argminmax_{x.dtype}"
    spec = ctx.spec(family, [param("input", x.dtype, (outer, x.shape[axis], inner), "input"),
                             param("output", y.dtype, (outer, inner), "output")], attrs)
    return [KernelCall(spec, op.index, [x_index, y_index])]


def _compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    outer, depth, inner = a["outer"], a["depth"], a["inner"]
    x = te.placeholder((outer, depth, inner), spec.params[0].dtype, name="input")
    out_dtype = spec.params[1].dtype
    k = te.reduce_axis((0, depth), name="k")
    extreme = te.max if a["max"] else te.min
    best = te.compute((outer, inner), lambda o, i: extreme(x[o, k, i], axis=k), name="best")
    j = te.reduce_axis((0, depth), name="j")
    # the lowest index holding the extreme: indices elsewhere count as `depth`, above any index
    first = te.compute(
        (outer, inner),
        lambda o, i: te.min(tirx.Select(x[o, j, i] == best[o, i], j, tirx.const(depth, "int32")), axis=j),
        name="first")
    output = te.compute((outer, inner), lambda o, i: first[o, i].astype(out_dtype), name="output")
    return [x, output]


def _schedule(sch, spec):
    out = sch.get_sblock("output")
    loops = sch.get_loops(out)
    for name in ("first", "best"):  # consumers first: each lands under the output's loops
        block = sch.get_sblock(name)
        if loops:
            sch.compute_at(block, loops[-1])
        below = sch.get_loops(block)[len(loops):]
        if below:  # an axis of one element has no reduction loop left
            # initialise before the loop (an init inside it trips gcc's -Wmaybe-uninitialized)
            sch.decompose_reduction(block, below[0])


FAMILIES = {
    "argminmax_int8": KernelFamily(_compute, _schedule),
    "argminmax_float32": KernelFamily(_compute, _schedule),
}
