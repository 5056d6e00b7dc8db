"""TFLite model -> graph IR, with every reason a model cannot be compiled reported at once.

reader.py turns the bytes into plain records (or says the file is corrupt); this module judges them:
tensor by tensor (dtype, static shape, quantization, constant data), then op by op (supported kind,
dtypes, the op's own rules): what is supported, and how each op is checked, is the op registry
(tinykiln.ops.registry), which the lowering reads too. Problems are collected, not raised one by one, so the user sees
every offending op in one KilnError. An op whose inputs are all constants is evaluated here instead (fold.py) and
leaves the graph; negative weight scales are made positive at the end (scales.py).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import KilnError
from ..graph import DTYPES, Graph, Op, Quantization, Tensor
from ..ops.checks import OpView
from ..ops.registry import OPS
from . import uint8
from . import flexbuffer, fold, scales
from .reader import TENSOR_TYPE_NAMES, CorruptFile, RawModel, RawTensor, read

SUPPORTED_OPS = tuple(OPS)
WEIGHTED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
MAX_TENSOR_BYTES = 1 << 31
SCHEMA_VERSION = 3  # the only one LiteRT and TFLite Micro load (TFLITE_SCHEMA_VERSION)

# the ops of TFLite's resource variables (state outside variable tensors, set up by a CALL_ONCE subgraph)
RESOURCE_VARIABLE_OPS = {"VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "CALL_ONCE"}
WAY_OUT = ("tinykiln compiles single-subgraph TFLite models with static shapes, either float32 or fully "
           "int8-quantized (int8 activations, int8 weights, int32 biases; or uint8 throughout), made of the "
           "builtin ops that `./kiln ops` lists (the README's table). Convert the model accordingly (e.g. "
           "TFLiteConverter with "
           "optimizations=[DEFAULT], a representative dataset and "
           "target_spec.supported_ops=[TFLITE_BUILTINS_INT8]).")


def load(source, name: str | None = None) -> Graph:
    """Import a .tflite file (a path, or the file's bytes) as a graph.Graph.

    Raises KilnError if the file cannot be read or parsed, or if the model uses anything the
    compiler does not support; the message lists every offending op with its index, kind and output.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, label = bytes(source), name or "model"
    else:
        path = Path(os.fspath(source))
        label = name or path.stem
        try:
            data = path.read_bytes()
        except OSError as e:
            raise KilnError(f"cannot read model file {path}: {e.strerror or e}") from None
    try:
        raw = read(data)
    except CorruptFile as e:
        raise KilnError(f"{label}: not a valid TFLite model: {e}. The file is corrupt, truncated or "
                        "not a .tflite flatbuffer: export it again from the converter.") from None
    return _Importer(raw, label).run()


class _Importer:
    def __init__(self, raw: RawModel, name: str):
        self.raw = raw
        self.name = name
        self.model_problems: list[str] = []
        self.op_problems: list[str] = []
        # tensors whose buffer holds data, even if the data could not be converted (reported apart)
        self.constants: set[int] = set()
        # problems that make LiteRT refuse the file even when no op uses the tensor
        self.structural: dict[int, str] = {}
        self.folded: set[int] = set()  # ops evaluated at import (tflite/fold.py): not in the graph

    def run(self) -> Graph:
        raw = self.raw
        if raw.version != SCHEMA_VERSION:
            raise KilnError(f"{self.name}: the file has TFLite schema version {raw.version}; LiteRT and TFLite "
                            f"Micro load version {SCHEMA_VERSION} only: export it again with a current converter")
        if not raw.subgraphs:
            raise KilnError(f"{self.name}: the model has no subgraph. {WAY_OUT}")
        resource = sorted({c.name for c in raw.opcodes} & RESOURCE_VARIABLE_OPS)
        if resource:
            self.model_problems.append(
                f"the model keeps state in resource variables ({', '.join(resource)}; CALL_ONCE runs a second "
                "subgraph that initializes them), which are not supported: keep the state in variable "
                "tensors instead (TFLite's stateful SVDF and UNIDIRECTIONAL_SEQUENCE_LSTM ops do)")
        elif len(raw.subgraphs) > 1:
            self.model_problems.append(
                f"the model has {len(raw.subgraphs)} subgraphs (control flow such as WHILE/IF, or "
                "several signatures); only single-subgraph models are supported")
        sg = raw.subgraphs[0]
        converted = [self._tensor(i, t) for i, t in enumerate(sg.tensors)]
        # uint8 runs on the int8 kernels: all but the API's uint8 tensors become int8 (tflite/uint8.py)
        keep = uint8.plan(sg, raw.opcodes, TENSOR_TYPE_NAMES)
        tensors = [t if i in keep else uint8.to_int8(t) for i, (t, _) in enumerate(converted)]
        tensor_problems = [p for _, p in converted]
        n = len(tensors)

        for role, indices in (("input", sg.inputs), ("output", sg.outputs)):
            for i in indices:
                if not 0 <= i < n:
                    self.model_problems.append(f"model {role} refers to tensor {i}, which does not exist")
        graph_inputs = [i for i in sg.inputs if 0 <= i < n]
        graph_outputs = [i for i in sg.outputs if 0 <= i < n]
        if not graph_outputs:
            self.model_problems.append("the model has no outputs")
        for i in graph_inputs:
            if i in self.constants:
                self.model_problems.append(f"model input '{tensors[i].name}' is a constant tensor")

        written = set(graph_inputs)
        used = set()
        graph_ops = []
        for index, rop in enumerate(sg.ops):
            problems, op = self._op(index, rop, tensors, tensor_problems, written)
            used.update(t for t in (*rop.inputs, *rop.outputs) if 0 <= t < n)
            if problems:
                out = next((tensors[t].name for t in rop.outputs if 0 <= t < n), "?")
                self.op_problems.append(f"op {index} {op.kind} (output '{out}'): " + "; ".join(problems))
            if index not in self.folded:
                graph_ops.append(op)

        for i in graph_outputs:
            if i not in written and i not in self.constants:
                self.model_problems.append(f"model output '{tensors[i].name}' is never written by an op")
        # problems of graph inputs/outputs that no op reported
        for i in dict.fromkeys(graph_inputs + graph_outputs):
            if i not in used and tensor_problems[i]:
                self.model_problems.append(f"tensor '{tensors[i].name}': " + "; ".join(tensor_problems[i]))
        # later stages may look at every tensor: even an unused one needs a dtype they know
        io = set(graph_inputs + graph_outputs)
        for i, t in enumerate(tensors):
            if i in used or i in io:
                continue
            if t.dtype not in DTYPES:
                self.model_problems.append(f"tensor '{t.name}' (used by no op) has unsupported dtype {t.dtype}")
            elif i in self.structural:
                self.model_problems.append(f"tensor '{t.name}' (used by no op) {self.structural[i]}")

        self.op_problems += uint8.problems(graph_ops, tensors)
        if not self.op_problems:
            self.model_problems += scales.rewrite(tensors, graph_ops)
        if self.model_problems or self.op_problems:
            count = len(self.model_problems) + len(self.op_problems)
            lines = [f"{self.name}: cannot compile this model ({count} problem{'s' * (count > 1)}):"]
            lines += [f"  - {p}" for p in self.model_problems + self.op_problems]
            lines.append(WAY_OUT)
            raise KilnError("\n".join(lines))
        graph_ops, graph_inputs, graph_outputs = uint8.add_edges(tensors, graph_ops, graph_inputs, graph_outputs,
                                                                 len(sg.ops))
        return Graph(self.name, tensors, graph_ops, graph_inputs, graph_outputs)

    # -- tensors -----------------------------------------------------------------------------------

    def _tensor(self, index: int, rt: RawTensor) -> tuple[Tensor, list[str]]:
        problems: list[str] = []
        # data makes a constant; a buffer without any (PyTorch exporters write empty ones) does not, as in
        # TFLite Micro (LiteRT 2.3 refuses such files: validation needs a copy without the empty vectors)
        if 0 <= rt.buffer < len(self.raw.buffers) and self.raw.buffers[rt.buffer] and not rt.is_variable:
            self.constants.add(index)
        dtype = _dtype_name(rt.type)
        if dtype not in DTYPES:
            problems.append(f"unsupported dtype {dtype}")
        shape = self._shape(rt, problems)
        quant = self._quant(rt, dtype, shape, problems)
        if quant is not None and index not in self.constants and min(quant.scale) < 0:
            problems.append("quantization scale is negative")  # constants: see tflite/scales.py
        if rt.sparse:
            problems.append("is sparse (densify the model when converting)")
        # an unsupported dtype is kept as its name, for messages: the model is rejected anyway
        tensor = Tensor(index, rt.name or f"tensor_{index}", shape, dtype, quant, variable=bool(rt.is_variable))
        if rt.is_variable:
            return tensor, problems  # its buffer (if any) is not its value: the state starts cleared
        if not problems or problems == [f"unsupported dtype {dtype}"] and dtype in fold.READABLE_DTYPES:
            tensor.data = self._data(rt, tensor, problems)
        return tensor, problems

    @staticmethod
    def _shape(rt: RawTensor, problems: list[str]) -> tuple[int, ...]:
        shape = rt.shape
        sig = rt.shape_signature if rt.shape_signature is not None else shape
        if len(sig) != len(shape):
            problems.append(f"shape {list(shape)} and shape_signature {list(sig)} disagree")
            sig = shape
        # batch -1 in the signature with a concrete batch in `shape` is how converters write batch 1
        dynamic = [i for i, (s, d) in enumerate(zip(sig, shape)) if d < 0 or (s < 0 and not (i == 0 and d >= 1))]
        if dynamic:
            problems.append(f"dynamic shape {list(sig)} (dimension {', '.join(map(str, dynamic))} unknown until "
                            "run time); export with a fixed input shape")
        elif any(d == 0 for d in shape):
            problems.append(f"empty shape {list(shape)}")
        clean = tuple(max(int(d), 1) for d in shape)
        if not dynamic and int(np.prod(clean, dtype=object)) * 8 > MAX_TENSOR_BYTES:
            problems.append(f"shape {list(shape)} is too large")
            clean = tuple(1 for _ in shape)
        return clean

    @staticmethod
    def _quant(rt: RawTensor, dtype: str, shape, problems: list[str]) -> Quantization | None:
        q = rt.quant
        if q is not None and len(q.scale) and len(q.zero_point) != len(q.scale):
            problems.append(f"quantization has {len(q.scale)} scales but {len(q.zero_point)} zero points")
            return None
        if dtype == "float32" or q is None or len(q.scale) == 0:
            if dtype == "int8":
                problems.append("int8 tensor without quantization parameters")
            return None
        if q.has_details:
            problems.append("custom quantization details are not supported")
        scale = tuple(float(s) for s in q.scale)
        zp = tuple(int(z) for z in q.zero_point)
        if not all(np.isfinite(s) for s in scale):
            problems.append("quantization scale is not finite")
        if dtype == "int8" and not all(-128 <= z <= 127 for z in zp):
            problems.append("int8 zero point outside [-128, 127]")
        if dtype == "uint8" and not all(0 <= z <= 255 for z in zp):
            problems.append("uint8 zero point outside [0, 255]")
        if len(shape) > 1 and not 0 <= q.quantized_dimension < len(shape):
            # (on rank-1 tensors, biases, real files carry meaningless values: tolerated, as TFLM does)
            problems.append(f"quantized_dimension {q.quantized_dimension} is not an axis of {list(shape)}")
            return None
        axis = None
        if len(scale) > 1:
            if len(shape) == 1:
                # rank-1 tensors (biases) can only be quantized along their one axis, whatever the file says
                axis = 0
            else:
                axis = q.quantized_dimension
            if not 0 <= axis < len(shape) or shape[axis] != len(scale):
                problems.append(f"{len(scale)} per-channel scales do not fit shape {list(shape)} along "
                                f"axis {q.quantized_dimension}")
                axis = None
        return Quantization(scale, zp, axis)

    def _data(self, rt: RawTensor, tensor: Tensor, problems: list[str]) -> np.ndarray | None:
        buffers = self.raw.buffers
        if not 0 <= rt.buffer < len(buffers):
            if rt.buffer == 0 and not buffers:
                return None  # some writers omit the empty sentinel buffer entirely
            problems.append(f"refers to buffer {rt.buffer}, which does not exist")
            self.structural[tensor.index] = problems[-1]
            return None
        raw = buffers[rt.buffer]
        if not raw:
            return None
        if len(raw) != tensor.nbytes:
            problems.append(f"constant data is {len(raw)} bytes, shape {list(tensor.shape)} {tensor.dtype} "
                            f"needs {tensor.nbytes}")
            self.structural[tensor.index] = problems[-1]
            return None
        little = np.dtype(tensor.dtype).newbyteorder("<")
        return np.frombuffer(raw, dtype=little).astype(tensor.dtype).reshape(tensor.shape)

    # -- ops ---------------------------------------------------------------------------------------

    def _op(self, index, rop, tensors, tensor_problems, written) -> tuple[list[str], Op]:
        n = len(tensors)
        problems: list[str] = []
        opcodes = self.raw.opcodes
        if not 0 <= rop.opcode_index < len(opcodes):
            kind = "UNKNOWN"
            problems.append(f"operator code index {rop.opcode_index} does not exist")
        else:
            code = opcodes[rop.opcode_index]
            kind = code.name
            if kind == "CUSTOM" and code.custom_code in OPS and OPS[code.custom_code].custom:
                kind = code.custom_code  # the custom ops the registry lists (TFLite_Detection_PostProcess)
            elif kind == "CUSTOM":
                problems.append(f"custom op '{code.custom_code or '?'}' is not supported")
            elif kind not in OPS or OPS[kind].custom:
                problems.append(f"unsupported op {kind}")
        op = Op(index, kind, list(rop.inputs), list(rop.outputs))

        bad = [t for t in rop.inputs if not -1 <= t < n] + [t for t in rop.outputs if not 0 <= t < n]
        if bad:
            return problems + [f"refers to tensor {bad[0]}, which does not exist"], op
        folded = self._fold(index, kind, rop, tensors, tensor_problems, written)
        if folded is not None:
            return folded, op

        # data flow: inputs are constants, model inputs or earlier outputs; each output written once.
        # Outputs count as written even if this op is rejected, so later ops are not blamed for it.
        flow = []
        state_inputs = OPS[kind].state if kind in OPS else ()
        for position, t in enumerate(rop.inputs):
            if t >= 0 and tensors[t].variable:
                if position not in state_inputs and kind in OPS:
                    keepers = ", ".join(k for k, support in OPS.items() if support.state)
                    flow.append(f"reads variable tensor '{tensors[t].name}' as input {position}, which is not "
                                f"a state input of this op (the ops that keep state: {keepers})")
            elif t >= 0 and position in state_inputs:
                flow.append(f"input {position} '{tensors[t].name}' is the op's state: it must be a variable "
                            "tensor (is_variable), which this one is not")
            elif t >= 0 and t not in written and t not in self.constants:
                flow.append(f"reads tensor '{tensors[t].name}' before any op writes it")
        for t in rop.outputs:
            if tensors[t].variable:
                flow.append(f"writes variable tensor '{tensors[t].name}' as an output (state is rewritten in "
                            "place by the op that reads it)")
            if t in self.constants or t in written:
                flow.append(f"writes tensor '{tensors[t].name}', which is a constant, a model input "
                            "or written by an earlier op")
            written.add(t)
        if not rop.outputs:
            flow.append("has no outputs")
        for t in dict.fromkeys(t for t in (*rop.inputs, *rop.outputs) if t >= 0):
            problems += [f"tensor '{tensors[t].name}' {p}" for p in tensor_problems[t]]
        problems += flow
        if problems:
            return problems, op

        expected = OPS[kind].options
        if expected and rop.options_type not in ("NONE", expected):
            problems.append(f"carries {rop.options_type}, expected {expected}")
            return problems, op

        options, options_type = rop.options, rop.options_type
        if OPS[kind].custom:
            options, options_type = _custom_options(rop.custom_options)
        view = OpView(kind, [tensors[t] if t >= 0 else None for t in rop.inputs],
                      [tensors[t] for t in rop.outputs], options, options_type, TENSOR_TYPE_NAMES)
        problems += self._dtypes(view)
        if problems:
            return problems, op
        op.attrs = OPS[kind].check(view)
        return view.problems, op

    def _fold(self, index, kind, rop, tensors, tensor_problems, written) -> list[str] | None:
        """Evaluate an op on constants (tflite/fold.py): its outputs become constants and the op leaves
        the graph. None: not foldable here, the op takes the kernel path (its own checks and messages)."""
        ins = [tensors[t] if t >= 0 else None for t in rop.inputs]
        inputs_known = all(tensors[t].is_constant or not tensor_problems[t] for t in rop.inputs if t >= 0)
        outputs_free = not any(tensor_problems[t] or t in self.constants or t in written for t in rop.outputs)
        if not (fold.foldable(kind, ins) and inputs_known and outputs_free):
            return None
        try:
            values = fold.evaluate(kind, ins, [tensors[t] for t in rop.outputs], rop.options)
        except fold.FoldError as e:
            if kind in OPS:
                return None
            written.update(rop.outputs)
            return [f"unsupported op {kind} (its inputs are constants, but it cannot be evaluated at build time: {e})"]
        for t, value in zip(rop.outputs, values):
            tensors[t].data = value
            self.constants.add(t)
        self.folded.add(index)
        return []

    @staticmethod
    def _dtypes(v) -> list[str]:
        """The op's activation dtypes against the registry's, and the quantization rules every op
        shares; the op's operands are checked by its checker."""
        kind = v.kind
        support = OPS[kind]
        operand_idx = support.operands
        acts = [t for i, t in enumerate(v.inputs) if t is not None and i not in operand_idx] + v.outputs
        if not acts:
            return ["has no activation operands"]
        problems = []
        x = acts[0]
        if kind in WEIGHTED_OPS and len(v.inputs) > 1 and v.inputs[1] is not None:
            w = v.inputs[1]
            if x.dtype == "float32" and w.dtype in ("int8", "uint8"):
                wtype = "uint8" if w.from_uint8 else w.dtype
                return [f"dynamic-range (hybrid) quantization: float32 activations with {wtype} weights "
                        f"'{w.name}' are not supported; quantize the whole model to int8 (representative "
                        "dataset) or keep it float32"]
        inputs = list(dict.fromkeys(i for i, _ in support.dtypes))
        if any(i != o for i, o in support.dtypes):  # a cast (QUANTIZE, DEQUANTIZE)
            allowed = (set(inputs), {o for _, o in support.dtypes})
            outs = v.outputs
            if x.dtype not in allowed[0] or any(t.dtype not in allowed[1] for t in outs):
                problems.append(f"{kind} from {x.dtype} to {'/'.join(t.dtype for t in outs)} is not supported "
                                f"(supported: {' or '.join(sorted(allowed[0]))} to {'/'.join(allowed[1])})")
        else:
            kinds = sorted({t.dtype for t in acts})
            if any(d not in inputs for d in kinds):
                problems.append(f"{'/'.join(kinds)} activations are not supported ({' or '.join(inputs)})")
            elif len(kinds) > 1:
                problems.append(f"mixes {' and '.join(kinds)} activations")
            elif len({t.from_uint8 for t in acts if t.dtype == "int8"}) > 1:
                problems.append("mixes int8 and uint8 activations")
        for t in acts:
            if t.dtype == "int8" and t.quant is not None and (t.quant.per_channel or t.quant.axis is not None):
                problems.append(f"activation '{t.name}' is quantized per channel (expected per tensor)")
            if t.dtype == "int8" and t.quant is not None and t.quant.scale[0] <= 0:
                problems.append(f"activation '{t.name}' has scale {t.quant.scale[0]} (must be > 0)")
        return problems


def _custom_options(data: bytes) -> tuple[dict, str]:
    """A custom op's FlexBuffer attributes as (options, options_type): "CUSTOM", or "CORRUPT" with
    the reason under options["error"] (the op's checker reports it)."""
    try:
        return flexbuffer.read_map(data), "CUSTOM"
    except flexbuffer.FlexError as e:
        return {"error": str(e)}, "CORRUPT"


def _dtype_name(code: int) -> str:
    return TENSOR_TYPE_NAMES.get(code, f"tensor type {code}")
