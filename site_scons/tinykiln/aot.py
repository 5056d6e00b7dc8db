"""AOT code generation: model.h, model.c and weights.c from a lowered, planned graph.

No interpreter and no graph description run on the device: model.c is a straight list of kernel calls
with every tensor at its planned arena offset, weights.c holds every constant as a `const` array in
section `.nn_weights`, and model.h is the typed per-model API:

    #define <M>_ARENA_SIZE ...                      bytes of activation arena (inputs/outputs included)
    #define <M>_INPUT0_SIZE / _RANK / _SHAPE / _SCALE / _ZERO_POINT, same for outputs
    int <m>_run(const <m>_inputs *inputs, <m>_outputs *outputs, void *arena);
    extern const tk_model_info <m>_info;            what the STM32-style ai_* API (runtime/ai) drives

A stateful model (variable tensors: SVDF's state) also has

    #define <M>_STATE_SIZE ...                      bytes of state, kept from one run to the next
    void <m>_reset(void);                           clears the state (call it before the first run)

the state is one static buffer of the model (not in the arena, which every run overwrites), so a
stateful model has one instance at a time.

Inputs and outputs live in the arena at planned offsets. `<m>_run` copies the caller's inputs in and
the outputs out (pointers may be NULL to skip: the data is then read/written in place, at
`arena + <M>_INPUTi_OFFSET`). A NULL arena means the model's own arena in `.nn_data_act`.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

import numpy as np

from . import KilnError
from .graph import Graph, Tensor
from .kernel import KernelCall, LoweredModel
from .memplan import MemoryPlan

GENERATOR_VERSION = "1"

C_TYPES = {
    "int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
    "int64": "int64_t", "float32": "float", "bool": "int8_t",
}
MAX_RANK = 6
WEIGHTS_ALIGNMENT = 16


def c_identifier(name: str) -> str:
    """A C identifier made of `name`: lower case, [a-z0-9_], not starting with a digit."""
    ident = re.sub(r"[^0-9a-zA-Z_]", "_", name).lower().strip("_") or "model"
    if ident[0].isdigit():
        ident = "m_" + ident
    return ident


@dataclass
class AotResult:
    model_h: str
    model_c: str
    weights_c: str
    weights_bytes: int
    build_id: str


def kernel_prototype(call: KernelCall) -> str:
    # codegen owns the signature; this fallback only matters if codegen can't be imported.
    try:
        from .codegen import kernel_prototype as proto
    except ImportError:  # pragma: no cover - codegen is part of the package
        params = ", ".join(
            f"{'const ' if p.role in ('input', 'const') else ''}{C_TYPES[p.dtype]}* {p.name}"
            for p in call.spec.params
        )
        return f"void {call.spec.function_name}({params});"
    return proto(call.spec)


def generate(
    graph: Graph,
    lowered: LoweredModel,
    plan: MemoryPlan,
    name: str,
    source_digest: str = "",
) -> AotResult:
    """The three files for one model. `name` becomes the C prefix (see c_identifier);
    `source_digest` (e.g. the .tflite's sha256) goes into the build id."""
    prefix = c_identifier(name)
    upper = prefix.upper()
    weights = _Weights(prefix)
    io_inputs = [_io_entry(graph, plan, t, "input") for t in graph.inputs]
    io_outputs = [_io_entry(graph, plan, t, "output") for t in graph.outputs]
    ops_by_index = {op.index: op for op in graph.ops}

    call_lines, prototypes, layers = [], {}, []
    for step, call in enumerate(lowered.calls):
        prototypes[call.spec.function_name] = kernel_prototype(call)
        args = []
        for p_index, (param, arg) in enumerate(zip(call.spec.params, call.args)):
            ctype = C_TYPES[param.dtype]
            const = "const " if param.role in ("input", "const") else ""
            if param.role == "const":
                args.append(weights.add(np.asarray(arg), param.dtype, param.shape))
            elif param.role == "scratch":
                off = plan.scratch_offsets.get((step, p_index))
                if off is None:  # a zero-byte scratch param
                    args.append("NULL")
                else:
                    args.append(f"({ctype} *)(arena + {off})")
            else:
                tensor = graph.tensor(int(arg))
                if tensor.is_constant:
                    args.append(weights.add(tensor.data, tensor.dtype, tensor.shape))
                    continue
                if tensor.variable:
                    args.append(f"({const}{ctype} *)({prefix}_state + {plan.state_offsets[int(arg)]})")
                    continue
                off = plan.tensor_offsets.get(int(arg))
                if off is None:
                    raise KilnError(f"tensor {arg} ({tensor.name}) has no arena offset: a planner bug")
                args.append(f"({const}{ctype} *)(arena + {off})")
        op = ops_by_index.get(call.op_index)
        kind = op.kind if op is not None else "?"
        layers.append((call.spec.function_name, kind, call.op_index))
        call_lines.append(f"    /* {step}: op {call.op_index} {kind} */")
        call_lines.append(f"    {call.spec.function_name}({', '.join(args)});")
        call_lines.append(f"    TK_LAYER_DONE({step});")

    # a constant model output (folded at import, e.g. an SSD's anchors) is copied into its arena slot
    # after the last kernel, where the memory plan keeps it apart from everything live then
    for io in io_outputs:
        if io.tensor.is_constant:
            symbol = weights.add(io.tensor.data, io.tensor.dtype, io.tensor.shape)
            call_lines.append(f"    /* output '{io.tensor.name}' is a constant */")
            call_lines.append(f"    memcpy(arena + {io.offset}, {symbol}, {io.tensor.nbytes}u);")
    weights_c = weights.render()
    body_digest = hashlib.sha256(
        ("\n".join(call_lines) + weights_c + source_digest + GENERATOR_VERSION).encode()
    ).hexdigest()[:16]
    model_h = _model_h(prefix, upper, graph, plan, io_inputs, io_outputs, weights.total, len(layers))
    model_c = _model_c(
        prefix, upper, graph, plan, io_inputs, io_outputs, prototypes, weights, call_lines, layers,
        body_digest,
    )
    return AotResult(model_h, model_c, weights_c, weights.total, body_digest)


def registry_c(names: list[str]) -> str:
    """tk_models.c: the models linked into one firmware, for apps that serve any of them."""
    prefixes = [c_identifier(n) for n in names]
    externs = "".join(f"extern const tk_model_info {p}_info;\n" for p in prefixes)
    entries = "".join(f"    &{p}_info,\n" for p in prefixes)
    return (
        "/* The models linked into this firmware. Generated by tinykiln; do not edit. */\n"
        '#include "tk_model.h"\n\n'
        f"{externs}\n"
        f"const tk_model_info *const tk_models[] = {{\n{entries}}};\n"
        f"const unsigned tk_model_count = {len(prefixes)};\n"
    )


# --- pieces -----------------------------------------------------------------------------------


@dataclass
class _Io:
    tensor: Tensor
    offset: int
    role: str


def _io_entry(graph: Graph, plan: MemoryPlan, index: int, role: str) -> _Io:
    tensor = graph.tensor(index)
    if tensor.is_constant and role == "input":
        raise KilnError(f"graph {role} '{tensor.name}' is a constant: nothing to compute")
    if len(tensor.shape) > MAX_RANK:
        raise KilnError(f"graph {role} '{tensor.name}' has rank {len(tensor.shape)}; at most {MAX_RANK}")
    if tensor.dtype not in C_TYPES:
        raise KilnError(f"graph {role} '{tensor.name}' has dtype {tensor.dtype}, not supported")
    off = plan.tensor_offsets.get(index)
    if off is None:
        raise KilnError(f"graph {role} '{tensor.name}' has no arena offset: a planner bug")
    return _Io(tensor, off, role)


def _c_string(text: str) -> str:
    escaped = text.encode("utf-8").decode("ascii", "backslashreplace").replace("\\", "\\\\")
    escaped = escaped.replace('"', '\\"')
    return f'"{escaped}"'


def _c_float(value: float) -> str:
    value = float(np.float32(value))
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INFINITY" if value > 0 else "(-INFINITY)"
    return f"{value.hex()}f" if value != 0 else "0.0f"


def _scale_zp(tensor: Tensor) -> tuple[str, int]:
    q = tensor.quant
    if q is None or not q.scale:
        return "0.0f", 0
    return _c_float(q.scale[0]), int(q.zero_point[0])


def _model_h(prefix, upper, graph, plan, inputs, outputs, weights_bytes, n_layers) -> str:
    lines = [
        f"/* The typed API of model '{graph.name}'. Generated by tinykiln; do not edit. */",
        f"#ifndef TK_MODEL_{upper}_H",
        f"#define TK_MODEL_{upper}_H",
        "",
        '#include "tk_model.h"',
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "/* Activation arena: every intermediate, kernel scratch, inputs and outputs. A caller-provided",
        f" * arena must be {plan.alignment}-byte aligned. Lower bound for this graph: {plan.lower_bound} B. */",
        f"#define {upper}_ARENA_SIZE {plan.arena_size}u",
        f"#define {upper}_ARENA_ALIGNMENT {plan.alignment}u",
        f"#define {upper}_WEIGHTS_SIZE {weights_bytes}u",
        f"#define {upper}_LAYER_COUNT {n_layers}u",
        f"#define {upper}_INPUT_COUNT {len(inputs)}u",
        f"#define {upper}_OUTPUT_COUNT {len(outputs)}u",
        "",
    ]
    if plan.state_size:
        lines += [
            "/* State: the variable tensors, kept from one run to the next in a static buffer of the model",
            f" * (not in the arena). {prefix}_reset() clears it: call it before the first run. */",
            f"#define {upper}_STATE_SIZE {plan.state_size}u",
            "",
        ]
    for kind, entries in (("INPUT", inputs), ("OUTPUT", outputs)):
        for i, io in enumerate(entries):
            t = io.tensor
            scale, zp = _scale_zp(t)
            shape = ", ".join(str(d) for d in t.shape) or "1"
            lines += [
                f"/* {kind.lower()} {i}: '{t.name}' {t.dtype} {list(t.shape)} */",
                f"#define {upper}_{kind}{i}_SIZE {t.nbytes}u",
                f"#define {upper}_{kind}{i}_RANK {len(t.shape)}u",
                f"#define {upper}_{kind}{i}_SHAPE {{{shape}}}",
                f"#define {upper}_{kind}{i}_DTYPE TK_DTYPE_{t.dtype.upper()}",
                f"#define {upper}_{kind}{i}_SCALE {scale}",
                f"#define {upper}_{kind}{i}_ZERO_POINT {zp}",
                f"#define {upper}_{kind}{i}_OFFSET {io.offset}u",
                "",
            ]
    in_fields = "".join(f"    const {C_TYPES[io.tensor.dtype]} *input{i};\n" for i, io in enumerate(inputs))
    out_fields = "".join(f"    {C_TYPES[io.tensor.dtype]} *output{i};\n" for i, io in enumerate(outputs))
    lines += [
        f"typedef struct {{\n{in_fields}}} {prefix}_inputs;",
        f"typedef struct {{\n{out_fields}}} {prefix}_outputs;",
        "",
        "/* Runs the model once. inputs/outputs: NULL, or NULL members, leave that tensor in place in the",
        f" * arena (at {upper}_<INPUTi|OUTPUTi>_OFFSET). arena: NULL for the model's own arena (section",
        " * .nn_data_act), else a buffer of _ARENA_SIZE bytes. Returns 0, or a TK_ERR_* code. Inputs in",
        " * the arena are overwritten by the run. */",
        f"int {prefix}_run(const {prefix}_inputs *inputs, {prefix}_outputs *outputs, void *arena);",
        "",
        *(["/* Clears the state (every variable tensor to its zero point), as LiteRT's reset_all_variables. */",
           f"void {prefix}_reset(void);", ""] if plan.state_size else []),
        "/* The model's description for the ai_* API (ai_runtime.h) and the device protocol. */",
        f"extern const tk_model_info {prefix}_info;",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        f"#endif /* TK_MODEL_{upper}_H */",
        "",
    ]
    return "\n".join(lines)


def _tensor_info_c(io: _Io) -> str:
    t = io.tensor
    scale, zp = _scale_zp(t)
    shape = ", ".join(str(d) for d in t.shape) or "0"
    return (
        f"    {{{_c_string(t.name)}, TK_DTYPE_{t.dtype.upper()}, {len(t.shape)}, {{{shape}}}, "
        f"{t.nbytes}u, {io.offset}u, {scale}, {zp}}},\n"
    )


def _model_c(prefix, upper, graph, plan, inputs, outputs, prototypes, weights, call_lines, layers,
             build_id) -> str:
    out = [
        f"/* Model '{graph.name}': the kernels in order, every tensor at its planned arena offset.",
        " * Generated by tinykiln; do not edit. */",
        "#include <stddef.h>",
        "#include <stdint.h>",
        "#include <string.h>",
        "#include <math.h>",
        "",
        '#include "model.h"',
        "",
        "/* Kernels (build/.../kernels/<name>.c, generated by TVM). */",
    ]
    out += list(prototypes.values())
    out += ["", "/* Weights (weights.c, section .nn_weights). */"]
    out += weights.externs()
    out += [
        "",
        f"static uint8_t {prefix}_default_arena[{max(plan.arena_size, 1)}]",
        f"    __attribute__((section(\".nn_data_act\"), aligned({plan.alignment})));",
        "",
        *_state_c(prefix, graph, plan),
        "/* Per-layer timing, only when the caller asks for it (clock != NULL). */",
        "#define TK_LAYER_DONE(i) \\",
        "    do { \\",
        "        if (clock) { \\",
        "            uint32_t now_ = clock(); \\",
        "            layer_cycles[i] = now_ - last_; \\",
        "            last_ = now_; \\",
        "        } \\",
        "    } while (0)",
        "",
        f"static int {prefix}_layers(uint8_t *arena, uint32_t (*clock)(void), uint32_t *layer_cycles)",
        "{",
        "    uint32_t last_ = clock ? clock() : 0u;",
        "    if (clock && !layer_cycles)",
        "        return TK_ERR_ARGUMENT;",
        "    if (((uintptr_t)arena) % " + str(plan.alignment) + "u != 0u)",
        "        return TK_ERR_ALIGNMENT;",
    ]
    out += call_lines
    out += ["    (void)last_;", "    return TK_OK;", "}", ""]
    out += [
        f"int {prefix}_run(const {prefix}_inputs *inputs, {prefix}_outputs *outputs, void *arena)",
        "{",
        f"    uint8_t *a = arena ? (uint8_t *)arena : {prefix}_default_arena;",
        "    int status;",
    ]
    if inputs:
        out.append("    if (inputs) {")
        for i, io in enumerate(inputs):
            out += [
                f"        if (inputs->input{i} && (const void *)inputs->input{i} != (const void *)(a + {io.offset}))",
                f"            memmove(a + {io.offset}, inputs->input{i}, {io.tensor.nbytes}u);",
            ]
        out.append("    }")
    else:
        out.append("    (void)inputs;")
    out.append(f"    status = {prefix}_layers(a, NULL, NULL);")
    out.append("    if (status != TK_OK)")
    out.append("        return status;")
    if outputs:
        out.append("    if (outputs) {")
        for i, io in enumerate(outputs):
            out += [
                f"        if (outputs->output{i} && (void *)outputs->output{i} != (void *)(a + {io.offset}))",
                f"            memmove(outputs->output{i}, a + {io.offset}, {io.tensor.nbytes}u);",
            ]
        out.append("    }")
    else:
        out.append("    (void)outputs;")
    out += ["    return TK_OK;", "}", ""]

    out.append(f"static const tk_tensor_info {prefix}_input_info[] = {{")
    out += [_tensor_info_c(io) for io in inputs] or ["    {0},\n"]
    out.append("};")
    out.append(f"static const tk_tensor_info {prefix}_output_info[] = {{")
    out += [_tensor_info_c(io) for io in outputs] or ["    {0},\n"]
    out.append("};")
    out.append(f"static const tk_layer_info {prefix}_layer_info[] = {{")
    out += [f"    {{{_c_string(fn)}, {_c_string(kind)}, {op_index}}}," for fn, kind, op_index in layers]
    if not layers:
        out.append("    {0},")
    out.append("};")
    out += [
        "",
        f"const tk_model_info {prefix}_info = {{",
        f"    .name = {_c_string(graph.name)},",
        f"    .c_name = {_c_string(prefix)},",
        f"    .build_id = {_c_string(build_id)},",
        f"    .arena_size = {upper}_ARENA_SIZE,",
        f"    .arena_alignment = {upper}_ARENA_ALIGNMENT,",
        f"    .weights_size = {upper}_WEIGHTS_SIZE,",
        f"    .n_inputs = {len(inputs)}u,",
        f"    .n_outputs = {len(outputs)}u,",
        f"    .n_layers = {len(layers)}u,",
        f"    .inputs = {prefix}_input_info,",
        f"    .outputs = {prefix}_output_info,",
        f"    .layers = {prefix}_layer_info,",
        f"    .default_arena = {prefix}_default_arena,",
        f"    .run = {prefix}_layers,",
        *([f"    .state_size = {upper}_STATE_SIZE,", f"    .reset = {prefix}_reset,"] if plan.state_size else []),
        "};",
        "",
    ]
    return "\n".join(line.rstrip("\n") for line in out)


def _state_c(prefix: str, graph: Graph, plan: MemoryPlan) -> list[str]:
    """The state buffer and its reset (nothing for a stateless model): LiteRT resets a variable
    tensor to its zero point if int8, else to zero."""
    if not plan.state_size:
        return []
    out = [
        "/* State: the variable tensors, kept from one run to the next. */",
        f"static uint8_t {prefix}_state[{plan.state_size}] __attribute__((aligned({plan.alignment})));",
        "",
        f"void {prefix}_reset(void)",
        "{",
    ]
    for index, off in sorted(plan.state_offsets.items(), key=lambda item: item[1]):
        t = graph.tensor(index)
        fill = t.quant.zero_point[0] if t.dtype == "int8" and t.quant is not None else 0
        out.append(f"    memset({prefix}_state + {off}, {fill}, {t.nbytes}u); /* '{_comment(t.name)}' */")
    return out + ["}", ""]


def _comment(text: str) -> str:
    return text.replace("*/", "* /")


class _Weights:
    """Constant arrays for weights.c, deduplicated by content."""

    def __init__(self, prefix: str):
        self.prefix = prefix
        self.arrays: list[tuple[str, str, np.ndarray]] = []  # (symbol, dtype, flat data)
        self.by_content: dict[tuple[str, bytes], str] = {}
        self.total = 0

    def add(self, data: np.ndarray, dtype: str, shape) -> str:
        if dtype not in C_TYPES:
            raise KilnError(f"constant of dtype {dtype} is not supported in weights.c")
        flat = np.ascontiguousarray(np.asarray(data), dtype=np.dtype("int8" if dtype == "bool" else dtype)).ravel()
        expected = int(np.prod(shape, dtype=np.int64)) if shape is not None else flat.size
        if flat.size != expected:
            raise KilnError(
                f"constant has {flat.size} elements, its kernel parameter expects {expected}: a lowering bug"
            )
        key = (dtype, flat.tobytes())
        symbol = self.by_content.get(key)
        if symbol is None:
            symbol = f"{self.prefix}_w{len(self.arrays)}"
            self.by_content[key] = symbol
            self.arrays.append((symbol, dtype, flat))
            self.total += flat.nbytes  # the section adds up to 15 B of alignment per array
        return symbol

    def externs(self) -> list[str]:
        return [
            f"extern const {C_TYPES[dtype]} {symbol}[{max(flat.size, 1)}];"
            for symbol, dtype, flat in self.arrays
        ]

    def render(self) -> str:
        out = [
            "/* Constants of the model: weights, folded biases, requantization tables.",
            " * Generated by tinykiln; do not edit. Section .nn_weights: the variant places it. */",
            "#include <math.h>",
            "#include <stdint.h>",
            "",
        ]
        for symbol, dtype, flat in self.arrays:
            out.append(
                f"const {C_TYPES[dtype]} {symbol}[{max(flat.size, 1)}]\n"
                f"    __attribute__((section(\".nn_weights\"), aligned({WEIGHTS_ALIGNMENT}))) = {{"
            )
            out.append(_c_values(flat, dtype))
            out.append("};")
        out.append("")
        return "\n".join(out)


def _c_values(flat: np.ndarray, dtype: str) -> str:
    if flat.size == 0:
        return "    0"
    if dtype == "float32":
        items = [_c_float(v) for v in flat.tolist()]
    elif dtype in ("int32", "int64"):
        bits = 32 if dtype == "int32" else 64
        lo = -(1 << (bits - 1))
        suffix = "" if bits == 32 else "LL"
        items = [
            f"({lo + 1}{suffix} - 1)" if v == lo else f"{v}{suffix}" for v in flat.tolist()
        ]
    else:
        items = [str(v) for v in flat.tolist()]
    per_line = 16 if dtype == "float32" else 24
    return "\n".join(
        "    " + ", ".join(items[i:i + per_line]) + ","
        for i in range(0, len(items), per_line)
    )
