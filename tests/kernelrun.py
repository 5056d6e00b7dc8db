"""Run lowered graphs on the host: generated kernels compiled with gcc, called through ctypes.

    outputs = run_lowered(graph, lowered, inputs, workdir)

Every kernel of the LoweredModel is generated (tinykiln.codegen.kernel_c), compiled with
`gcc -std=c11 -Wall -Wextra -Werror` into one shared library, and the calls are made in order from
Python with each tensor in its own numpy buffer (aliased tensors share one). The ctypes calls play
the part of the AOT model.c; the kernels are exactly what a firmware build compiles.

graph_from_builder(mb, inputs, outputs): until the importer is in every checkout, single-op tests
build the Graph IR straight from modelgen's ModelBuilder; with tinykiln.tflite.load available, the
tests import the .tflite bytes instead (see load_graph).
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np

from tinykiln.codegen import kernel_c, kernel_filename
from tinykiln.graph import Graph, Op, Quantization, Tensor
from tinykiln.kernel import LoweredModel

ROOT = Path(__file__).resolve().parents[1]
CFLAGS = ["-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared"]
KERNEL_CACHE = Path(os.environ.get("TK_KERNEL_CACHE", ROOT / "build" / "test-kernel-cache"))


def load_graph(model_bytes: bytes, mb=None, inputs=None, outputs=None) -> Graph:
    try:
        from tinykiln.tflite import load  # the importer
    except ImportError:
        load = None
    if load is not None:
        return load(model_bytes)
    return graph_from_builder(mb, inputs, outputs)


def build_library(lowered: LoweredModel, workdir: Path) -> ctypes.CDLL:
    sources = {}
    for call in lowered.calls:
        name = kernel_filename(call.spec)
        if name not in sources:
            sources[name] = kernel_c(call.spec, cache_dir=KERNEL_CACHE)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in sources.items():
        path = workdir / name
        path.write_text(text)
        paths.append(str(path))
    tag = hashlib.sha256("".join(sorted(sources)).encode()).hexdigest()[:12]
    lib = workdir / f"kernels_{tag}.so"
    subprocess.run(["gcc", *CFLAGS, f"-I{ROOT / 'runtime' / 'include'}", f"-I{ROOT / 'runtime' / 'kernels'}",
                    "-o", str(lib), *paths, "-lm"],
                   check=True, capture_output=True, text=True)
    return ctypes.CDLL(str(lib))


def run_lowered(graph: Graph, lowered: LoweredModel, inputs, workdir: Path, state: dict | None = None,
                lib=None) -> list[np.ndarray]:
    """One run. state: the variable tensors' buffers, kept by the caller from one run to the next
    (a stateful model: start with {} after a reset; see run_sequence)."""
    lib = lib or build_library(lowered, workdir)
    buffers: dict[int, np.ndarray] = state if state is not None else {}
    for index in list(buffers):
        if not graph.tensors[index].variable:
            del buffers[index]  # only the state survives a run

    def storage(index: int) -> np.ndarray:
        root = lowered.aliases.get(index, index)
        if root not in buffers:
            t = graph.tensors[root]
            # a constant operand passed as a kernel input (AOT passes its weights.c array)
            buffers[root] = np.array(t.data) if t.is_constant else np.zeros(t.shape, dtype=t.dtype)
            if t.variable and t.dtype == "int8" and t.quant is not None:
                buffers[root][...] = t.quant.zero_point[0]  # LiteRT resets int8 state to its zero point
        return buffers[root]

    for index, value in zip(graph.inputs, inputs):
        storage(index)[...] = np.asarray(value).reshape(graph.tensors[index].shape)
    keep = []
    for call in lowered.calls:
        pointers = []
        for p, arg in zip(call.spec.params, call.args):
            if p.role in ("input", "output"):
                array = storage(arg)
            elif p.role == "const":
                array = np.ascontiguousarray(arg, dtype=p.dtype)
                assert array.size * array.itemsize == p.nbytes, (call.spec.family, p)
            else:
                array = np.zeros(p.nbytes, dtype=np.uint8)
            keep.append(array)
            pointers.append(ctypes.c_void_p(array.ctypes.data))
        getattr(lib, call.spec.function_name)(*pointers)
    outs = []
    for index in graph.outputs:
        t = graph.tensors[index]
        outs.append(storage(index).reshape(t.shape).copy())
    return outs


def run_sequence(graph: Graph, lowered: LoweredModel, input_sets, workdir: Path) -> list[list[np.ndarray]]:
    """Runs one after the other with the variable tensors kept between them (from a reset state), as
    the firmware runs a stateful model; the outputs of every run."""
    lib = build_library(lowered, workdir)
    state: dict = {}
    return [run_lowered(graph, lowered, inputs, workdir, state=state, lib=lib) for inputs in input_sets]


def reference_sequences(model_bytes: bytes, sequences) -> list[list[list[np.ndarray]]]:
    """LiteRT (BUILTIN_REF) over sequences of input sets, reset_all_variables before each sequence."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from modelgen import normalize_for_litert

    interp = Interpreter(model_content=normalize_for_litert(model_bytes),
                         experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interp.allocate_tensors()
    ins, outs = interp.get_input_details(), interp.get_output_details()
    result = []
    for sequence in sequences:
        interp.reset_all_variables()
        steps = []
        for inputs in sequence:
            for d, value in zip(ins, inputs):
                interp.set_tensor(d["index"], np.asarray(value, dtype=d["dtype"]).reshape(d["shape"]))
            interp.invoke()
            steps.append([interp.get_tensor(d["index"]).copy() for d in outs])
        result.append(steps)
    return result


# --------------------------------------------------------------------------- ModelBuilder -> Graph

_ACT = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}
_PADDING = {0: "SAME", 1: "VALID"}


def graph_from_builder(mb, inputs, outputs) -> Graph:
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    tensors = []
    for i, t in enumerate(mb.tensors):
        quant = None
        if t.quantization is not None and t.quantization.scale is not None:
            scales = tuple(float(s) for s in t.quantization.scale)
            zps = tuple(int(z) for z in t.quantization.zeroPoint)
            axis = t.quantization.quantizedDimension if len(scales) > 1 else None
            quant = Quantization(scales, zps, axis)
        tensors.append(Tensor(i, t.name if isinstance(t.name, str) else t.name.decode(), mb.shapes[i],
                              mb.dtypes[i], quant, mb.datas[i]))
    ops = []
    for i, o in enumerate(mb.operators):
        kind = names[mb.opcodes[o.opcodeIndex].builtinCode]
        opts = o.builtinOptions
        attrs = {}
        if opts is not None:
            get = lambda name, default=None: getattr(opts, name, default)  # noqa: E731
            if hasattr(opts, "fusedActivationFunction"):
                attrs["activation"] = _ACT[opts.fusedActivationFunction]
            if hasattr(opts, "strideH"):
                attrs["stride"] = (opts.strideH, opts.strideW)
            if hasattr(opts, "dilationHFactor"):
                attrs["dilation"] = (opts.dilationHFactor, opts.dilationWFactor)
            if hasattr(opts, "padding"):
                attrs["padding"] = _PADDING[opts.padding]
            if hasattr(opts, "filterHeight"):
                attrs["filter"] = (opts.filterHeight, opts.filterWidth)
            if hasattr(opts, "depthMultiplier"):
                attrs["depth_multiplier"] = opts.depthMultiplier
            if hasattr(opts, "keepNumDims"):
                attrs["keep_num_dims"] = bool(opts.keepNumDims)
            if get("squeezeDims") is not None:
                attrs["squeeze_dims"] = tuple(opts.squeezeDims)
        ops.append(Op(i, kind, list(o.inputs), list(o.outputs), attrs))
    return Graph("test", tensors, ops, list(inputs), list(outputs))


def check_against_litert(mb, inputs, outputs, workdir: Path, seeds=(0, 1)):
    """Build the model, import it, lower, run our kernels and LiteRT (BUILTIN_REF) on seeded random
    inputs; int8 (and int32, bool) must be bit-exact, float32 within 1e-5 relative (plus 1e-6 absolute near zero)."""
    from modelgen import random_input, reference_run

    from tinykiln.ops import lower

    model = mb.build(inputs, outputs)
    graph = load_graph(model, mb, inputs, outputs)
    lowered = lower(graph)
    for seed in seeds:
        values = [random_input(mb, i, seed=seed + 17 * k) for k, i in enumerate(inputs)]
        want = reference_run(model, values)
        got = run_lowered(graph, lowered, values, workdir)
        for w, g in zip(want, got):
            assert w.shape == g.shape and w.dtype == g.dtype
            if w.dtype != np.float32:  # int8, int32, bool: exact
                diff = np.abs(w.astype(np.int32) - g.astype(np.int32))
                assert diff.max() == 0, f"{np.count_nonzero(diff)} of {diff.size} values differ (max {diff.max()})"
            else:
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6)
    return lowered
