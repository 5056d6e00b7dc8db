"""TF1-style uint8 graphs on the int8 kernels: the importer's uint8 -> int8 mapping.

Asymmetric uint8 maps exactly onto int8: q8 = q - 128 and zero_point8 = zero_point - 128 keep every
real value (scale * (q - zero_point)) and every difference q - zero_point, so an op's integer
arithmetic gives the same result shifted by 128. Every quantized uint8 tensor of the file becomes
int8 that way (constants: data XOR 0x80) and is marked Tensor.from_uint8, for the few lowerings that
follow LiteRT's uint8 arithmetic where it differs from its int8 one (legacy per-tensor multipliers,
weights with zero points, the average's rounding).

A uint8 model input or output stays uint8 at the API (ai_run, the device protocol, validation):
    plan(...)       the model inputs/outputs kept uint8 because their ops take uint8 as is (casts)
    to_int8(...)    the mapping of one tensor
    add_edges(...)  a QUANTIZE uint8 -> int8 (same scale, zero point - 128) after each other uint8
                    model input, and int8 -> uint8 before each other uint8 model output
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from ..graph import Op, Quantization, Tensor
from ..ops.registry import OPS

SHIFT = 128


def _quantized(raw_tensor) -> bool:
    q = raw_tensor.quant
    return q is not None and len(q.scale) > 0


def plan(subgraph, opcodes, type_names) -> set[int]:
    """Indices of the uint8 model inputs and outputs that stay uint8 because the ops next to them
    take uint8 as they are (a QUANTIZE between uint8 and int8: the registry says which); every
    other quantized uint8 tensor becomes int8."""
    tensors = subgraph.tensors
    n = len(tensors)

    def kind(rop):
        return opcodes[rop.opcode_index].name if 0 <= rop.opcode_index < len(opcodes) else None

    def uint8(i):
        return 0 <= i < n and type_names.get(tensors[i].type) == "uint8" and _quantized(tensors[i])

    keep: set[int] = set()

    def dtype_after(i):
        if not 0 <= i < n:
            return None
        name = type_names.get(tensors[i].type)
        return "int8" if uint8(i) and i not in keep else name

    def takes(rop, pair):
        support = OPS.get(kind(rop))
        return support is not None and pair in support.dtypes

    inputs = set(subgraph.inputs)
    for t in dict.fromkeys(subgraph.outputs):
        producers = [rop for rop in subgraph.ops if t in rop.outputs]
        if uint8(t) and t not in inputs and len(producers) == 1 and producers[0].inputs:
            if takes(producers[0], (dtype_after(producers[0].inputs[0]), "uint8")):
                keep.add(t)
    outputs = set(subgraph.outputs)
    for t in dict.fromkeys(subgraph.inputs):
        consumers = [rop for rop in subgraph.ops if t in rop.inputs]
        if uint8(t) and t not in outputs and consumers and all(
                rop.inputs[0] == t and t not in rop.inputs[1:] and rop.outputs
                and takes(rop, ("uint8", dtype_after(rop.outputs[0]))) for rop in consumers):
            keep.add(t)
    return keep


# Ops whose LiteRT uint8 arithmetic is not its int8 one after the shift (checked against LiteRT):
# an op of these kinds on a mapped tensor is rejected until its lowering follows the uint8 kernel
# (Tensor.from_uint8 tells it) and leaves this table.
DIFFERENT_ARITHMETIC = {
    # (RESIZE_BILINEAR differs too, and ops/resize.py computes LiteRT's uint8 blend for from_uint8 inputs)
    "SUM": "LiteRT's uint8 SUM rescales differently from its int8 one (most outputs differ after the shift)",
    "L2_NORMALIZATION": "LiteRT's uint8 L2_NORMALIZATION rounds differently from its int8 one (a few outputs differ)",
    "TRANSPOSE_CONV": "uint8 weights carry a zero point, which only CONV_2D, DEPTHWISE_CONV_2D and "
                      "FULLY_CONNECTED take out (ops/epilogue.offset_weights)",
}


def problems(ops: list[Op], tensors: list[Tensor]) -> list[str]:
    """The file's ops that read mapped uint8 tensors but whose uint8 arithmetic the int8 kernels do
    not reproduce (DIFFERENT_ARITHMETIC), as the importer's problem lines."""
    out = []
    for op in ops:
        why = DIFFERENT_ARITHMETIC.get(op.kind) if op.kind in OPS else None  # (unsupported: said already)
        if why and any(0 <= i < len(tensors) and tensors[i].from_uint8 for i in op.inputs[:1]):
            name = tensors[op.outputs[0]].name if op.outputs else "?"
            out.append(f"op {op.index} {op.kind} (output '{name}'): uint8 {op.kind} is not supported: {why}")
    return out


def to_int8(tensor: Tensor) -> Tensor:
    """A quantized uint8 tensor as int8: zero points - 128, constant data - 128 (XOR 0x80)."""
    if tensor.dtype != "uint8" or tensor.quant is None:
        return tensor
    quant = replace(tensor.quant, zero_point=tuple(z - SHIFT for z in tensor.quant.zero_point))
    data = None
    if tensor.data is not None:
        data = (np.asarray(tensor.data, dtype=np.uint8) ^ 0x80).view(np.int8)
    return replace(tensor, dtype="int8", quant=quant, data=data, from_uint8=True)


def _as_uint8(tensor: Tensor, index: int) -> Tensor:
    """The API tensor of a mapped model input/output: uint8, the file's quantization."""
    quant = tensor.quant
    quant = Quantization(quant.scale, tuple(z + SHIFT for z in quant.zero_point), quant.axis)
    return Tensor(index, tensor.name, tensor.shape, "uint8", quant)


def add_edges(tensors: list[Tensor], ops: list[Op], inputs: list[int], outputs: list[int],
              first_op_index: int) -> tuple[list[Op], list[int], list[int]]:
    """QUANTIZE ops between the mapped uint8 model inputs/outputs (int8 inside) and new uint8 API
    tensors. The int8 tensor keeps the file's tensor index (so LiteRT's tensors and the graph's
    still match up by index) under the name '<name>/int8'; the uint8 one takes the name and a new
    index. The new ops are numbered after the file's. Returns (ops, inputs, outputs); `tensors` grows."""
    made: dict[int, int] = {}

    def edge(i):
        t = tensors[i]
        if i not in made and t.from_uint8 and t.quant is not None and not t.quant.per_channel:
            made[i] = len(tensors)
            tensors.append(_as_uint8(t, len(tensors)))
            tensors[i] = replace(t, name=f"{t.name}/int8")
        return made.get(i)

    head, tail = [], []
    new_inputs, new_outputs = [], []
    for i in inputs:
        api = edge(i) if i not in outputs else None
        if api is not None and all(op.outputs != [i] for op in head):
            head.append(Op(first_op_index + len(head), "QUANTIZE", [api], [i]))
        new_inputs.append(i if api is None else api)
    for i in outputs:
        api = edge(i) if i not in inputs else None
        if api is not None and (i, api) not in tail:
            tail.append((i, api))
        new_outputs.append(i if api is None else api)
    tail_ops = [Op(first_op_index + len(head) + k, "QUANTIZE", [i], [api]) for k, (i, api) in enumerate(tail)]
    return head + ops + tail_ops, new_inputs, new_outputs
