"""UNIDIRECTIONAL_SEQUENCE_LSTM: float32, one time step per invocation (streaming models: the state
carries the sequence from one run to the next), time-major or batch-major, with or without CIFG,
peephole, projection and clipping. A stateful op: inputs 18 (output state h) and 19 (cell state c) are
variable tensors, kept from run to run in the model's state region and rewritten in place.

LiteRT's float kernel (kernels/lstm_eval.cc: CalculateLstmGateFloat, UpdateLstmCellFloat,
CalculateLstmOutputFloat), per batch row, gates g in (input, forget, cell, output):
    gate_g = bias_g + W_g x + R_g h                  (+ peephole P_g * c for input and forget)
    i, f   = sigmoid(gate_i), sigmoid(gate_f)        (CIFG: no input gate, i = 1 - f)
    g      = act(gate_c)                             (act: the fused activation, TANH in practice)
    c'     = f * c + i * g                           (clipped to +-cell_clip if cell_clip > 0)
    o      = sigmoid(gate_o + P_o * c')
    h'     = o * act(c')                             (projection: W_p h' + b_p, clipped to +-proj_clip)
    output = h';  state: h = h', c = c'
Refused with a message: int8 (the integer LSTM), layer normalization, more than one time step per
invocation, diagonal recurrent weights.

Kernel: one C function; every stage (the gate sums, the activated gates, the new cell) is an arena
scratch param, read before the states are written back through the state_out params (the same graph
tensors as the state inputs: AOT and kernelrun pass one buffer for both). No knobs.
"""
from __future__ import annotations

import numpy as np

from tinykiln.kernel import KernelCall

from .base import KernelFamily, constant, param, unsupported
from .checks import OpView

OUTPUT_STATE, CELL_STATE = 18, 19  # the variable tensors among the inputs
GATES = ("input", "forget", "cell", "output")
# input positions: weights on x, weights on h, peephole, bias of each gate (None: it has none)
X_WEIGHTS, H_WEIGHTS = (1, 2, 3, 4), (5, 6, 7, 8)
PEEPHOLE = {"input": 9, "forget": 10, "output": 11}
BIASES = (12, 13, 14, 15)
PROJECTION_WEIGHTS, PROJECTION_BIAS = 16, 17
LAYER_NORM = (20, 21, 22, 23)
ACTS = {"TANH": "tanh", "RELU": "relu", "RELU6": "relu6", "NONE": "none", "SIGN_BIT": None,
        "RELU_N1_TO_1": "relu_n1_to_1"}


# -- importer check -------------------------------------------------------------------------------

def check(v: OpView) -> dict:
    if len(v.inputs) not in (20, 24) or len(v.outputs) != 1:
        v.fail(f"takes 20 or 24 inputs and 1 output, has {len(v.inputs)} and {len(v.outputs)}")
        return {}
    x, y = v.x, v.y
    attrs = {"activation": _activation(v), "time_major": bool(v.options.get("time_major", False)),
             "cell_clip": float(v.options.get("cell_clip", 0.0)), "proj_clip": float(v.options.get("proj_clip", 0.0))}
    if v.options.get("diagonal_recurrent_tensors"):
        v.fail("diagonal recurrent weights are not supported")
    if x.dtype != "float32":
        v.fail(f"{x.dtype} UNIDIRECTIONAL_SEQUENCE_LSTM is not supported yet (float32 is): the integer LSTM "
               "(int8 with int16 gates) is not implemented")
        return attrs
    if any(v.input(i) is not None for i in LAYER_NORM):
        v.fail("layer-normalized LSTM is not supported")
    for i in (OUTPUT_STATE, CELL_STATE):
        t = v.input(i)
        if t is None:
            v.fail(f"state input {i} is omitted")
            return attrs
    if not v.rank(x, 3, "input"):
        return attrs
    time = x.shape[0] if attrs["time_major"] else x.shape[1]
    h = v.input(OUTPUT_STATE)
    if len(h.shape) == 2:
        v.shape_is(y, (x.shape[0], x.shape[1], h.shape[1]))
    else:
        v.fail(f"output state '{h.name}' has rank {len(h.shape)}, expected 2")
    if time != 1:
        v.fail(f"{time} time steps per invocation: only one step per invocation is supported (stream the "
               "sequence: the state carries it from one run to the next)")
    for i in (*X_WEIGHTS[1:], *H_WEIGHTS[1:], *BIASES[1:]):
        if v.input(i) is None:
            v.fail(f"required input {i} is omitted")
    cifg = v.input(X_WEIGHTS[0]) is None
    for i in range(1, 18):
        t = v.input(i)
        if t is None:
            continue
        if t.dtype != "float32":
            v.fail(f"input {i} '{t.name}' is {t.dtype}, expected float32 (hybrid LSTM is not supported)")
        elif not t.is_constant:
            v.fail(f"input {i} '{t.name}' (weights) must be a constant tensor")
    if cifg and (v.input(H_WEIGHTS[0]) is not None or v.input(BIASES[0]) is not None):
        v.fail("CIFG (no input gate) needs the input gate's recurrent weights and bias omitted too")
    return attrs


def _activation(v: OpView) -> str:
    codes = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
    name = codes.get(int(v.options.get("fused_activation_function", 0)), "?")
    if ACTS.get(name) is None:
        v.fail(f"fused activation {name} is not supported in an LSTM")
        return "TANH"
    return name


# -- lowering ---------------------------------------------------------------------------------------

def lower_lstm(ctx, op):
    x = ctx.tensor(op.inputs[0])
    if x.dtype != "float32":
        raise unsupported(op, f"{x.dtype} LSTM")
    present = lambda i: i < len(op.inputs) and op.inputs[i] >= 0  # noqa: E731
    batch = x.shape[1] if op.attrs["time_major"] else x.shape[0]
    depth = x.shape[2]
    cells = ctx.tensor(op.inputs[X_WEIGHTS[1]]).shape[0]
    outputs = ctx.tensor(op.inputs[OUTPUT_STATE]).nbytes // 4 // batch
    cifg = not present(X_WEIGHTS[0])
    attrs = {"batch": batch, "depth": depth, "cells": cells, "outputs": outputs, "cifg": cifg,
             "activation": ACTS[op.attrs["activation"]], "cell_clip": op.attrs["cell_clip"],
             "proj_clip": op.attrs["proj_clip"], "peephole": present(PEEPHOLE["forget"]),
             "projection": present(PROJECTION_WEIGHTS), "projection_bias": present(PROJECTION_BIAS)}
    if not attrs["projection"] and outputs != cells:
        raise unsupported(op, f"output state of {outputs} values for {cells} cells without a projection")
    params, args = [param("input", "float32", (batch, depth), "input")], [op.inputs[0]]

    def const(name, index, shape):
        params.append(param(name, "float32", shape, "const"))
        args.append(np.ascontiguousarray(constant(ctx, op.inputs[index], op, name), np.float32).reshape(-1))

    for g, gate in enumerate(GATES):
        if cifg and gate == "input":
            continue
        const(f"w_{gate}", X_WEIGHTS[g], (cells * depth,))
        const(f"r_{gate}", H_WEIGHTS[g], (cells * outputs,))
        const(f"b_{gate}", BIASES[g], (cells,))
        if attrs["peephole"] and gate in PEEPHOLE and not (cifg and gate == "input"):
            const(f"p_{gate}", PEEPHOLE[gate], (cells,))
    if attrs["projection"]:
        const("w_projection", PROJECTION_WEIGHTS, (outputs * cells,))
        if attrs["projection_bias"]:
            const("b_projection", PROJECTION_BIAS, (outputs,))
    params += [param("h", "float32", (batch, outputs), "input"), param("c", "float32", (batch, cells), "input")]
    args += [op.inputs[OUTPUT_STATE], op.inputs[CELL_STATE]]
    for name in _scratch_names(attrs):
        params.append(param(name, "float32", (batch, cells), "scratch"))
        args.append(None)
    params += [param("output", "float32", (batch, outputs), "output"),
               param("h_out", "float32", (batch, outputs), "output"),
               param("c_out", "float32", (batch, cells), "output")]
    args += [op.outputs[0], op.inputs[OUTPUT_STATE], op.inputs[CELL_STATE]]
    spec = ctx.spec("lstm_float32", params, attrs)
    return [KernelCall(spec, op.index, args)]


def _scratch_names(a) -> list[str]:
    gates = [g for g in GATES if not (a["cifg"] and g == "input")]
    return [f"sum_{g}" for g in gates] + [f"act_{g}" for g in gates] + ["cell_new", "hidden"]


def compute(spec):
    from tvm import te, tirx

    a = spec.attrs
    batch, depth, cells, outputs = a["batch"], a["depth"], a["cells"], a["outputs"]
    names = [p.name for p in spec.params]
    holders = {p.name: te.placeholder(p.shape, "float32", name=p.name) for p in spec.params if p.role != "scratch"
               and p.role != "output"}
    x, h, c = holders["input"], holders["h"], holders["c"]
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731

    def act(v, kind):
        # the C library's expf and tanhf, as LiteRT's portable kernels call them
        if kind == "sigmoid":
            return f32(1.0) / (f32(1.0) + tirx.call_pure_extern("float32", "expf", f32(0.0) - v))
        if kind == "tanh":
            return tirx.call_pure_extern("float32", "tanhf", v)
        if kind == "relu":
            return tirx.max(v, f32(0.0))
        if kind == "relu6":
            return tirx.min(tirx.max(v, f32(0.0)), f32(6.0))
        if kind == "relu_n1_to_1":
            return tirx.min(tirx.max(v, f32(-1.0)), f32(1.0))
        return v

    stages = {}
    gates = [g for g in GATES if not (a["cifg"] and g == "input")]
    for gate in gates:
        w, r, bias = holders[f"w_{gate}"], holders[f"r_{gate}"], holders[f"b_{gate}"]
        k = te.reduce_axis((0, depth), name=f"k_{gate}")
        j = te.reduce_axis((0, outputs), name=f"j_{gate}")
        wx = te.compute((batch, cells), lambda b, n: te.sum(w[n * depth + k] * x[b, k], axis=k), name=f"wx_{gate}")
        rh = te.compute((batch, cells), lambda b, n: te.sum(r[n * outputs + j] * h[b, j], axis=j), name=f"rh_{gate}")

        stages[f"sum_{gate}"] = te.compute((batch, cells), _gate_sum(a, holders, gate, bias, wx, rh, c),
                                           name=f"sum_{gate}")
    for gate in gates:
        if gate == "output":
            continue
        kind = a["activation"] if gate == "cell" else "sigmoid"
        stages[f"act_{gate}"] = te.compute((batch, cells), _activated(act, stages[f"sum_{gate}"], kind),
                                           name=f"act_{gate}")
    forget, cell_gate = stages["act_forget"], stages["act_cell"]

    def new_cell(b, n):
        i = f32(1.0) - forget[b, n] if a["cifg"] else stages["act_input"][b, n]
        value = forget[b, n] * c[b, n] + cell_gate[b, n] * i
        if a["cell_clip"] > 0:
            value = tirx.min(tirx.max(value, f32(-a["cell_clip"])), f32(a["cell_clip"]))
        return value
    stages["cell_new"] = cell_new = te.compute((batch, cells), new_cell, name="cell_new")

    def out_gate(b, n):
        value = stages["sum_output"][b, n]
        if a["peephole"]:
            value = value + holders["p_output"][n] * cell_new[b, n]
        return act(value, "sigmoid")
    stages["act_output"] = te.compute((batch, cells), out_gate, name="act_output")
    stages["hidden"] = hidden = te.compute((batch, cells), lambda b, n: stages["act_output"][b, n] * act(
        cell_new[b, n], a["activation"]), name="hidden")
    if a["projection"]:
        wp = holders["w_projection"]
        k = te.reduce_axis((0, cells), name="k_projection")
        projected = te.compute((batch, outputs), lambda b, o: te.sum(wp[o * cells + k] * hidden[b, k], axis=k),
                               name="projected")

        def result(b, o):
            value = projected[b, o] + holders["b_projection"][o] if a["projection_bias"] else projected[b, o]
            if a["proj_clip"] > 0:
                value = tirx.min(tirx.max(value, f32(-a["proj_clip"])), f32(a["proj_clip"]))
            return value
    else:
        def result(b, o):
            return hidden[b, o]
    output = te.compute((batch, outputs), result, name="output")
    h_out = te.compute((batch, outputs), lambda b, o: output[b, o], name="h_out")
    c_out = te.compute((batch, cells), lambda b, n: cell_new[b, n], name="c_out")
    every = {**holders, **stages, "output": output, "h_out": h_out, "c_out": c_out}
    return [every[n] for n in names]


def _gate_sum(a, holders, gate, bias, wx, rh, c):
    """(b, n) -> bias + W x + R h (+ the peephole on c), in LiteRT's order of accumulation."""
    def total(b, n):
        value = bias[n] + wx[b, n] + rh[b, n]
        if a["peephole"] and gate in ("input", "forget"):
            value = value + holders[f"p_{gate}"][n] * c[b, n]
        return value
    return total


def _activated(act, stage, kind):
    return lambda b, n: act(stage[b, n], kind)


FAMILIES = {"lstm_float32": KernelFamily(compute)}
