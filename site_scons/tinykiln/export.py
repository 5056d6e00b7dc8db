"""export=1: a model as a library folder that an existing firmware build can take in.

    build/<board>/<variant>/<model>/export/
        include/<m>.h            the typed model API (<m>_run, <M>_ARENA_SIZE, ...) and tk_model.h,
                                 ai_runtime.h (the STM32-style ai_* API), tk_kernel.h, tk_mk.h (the
                                 micro-kernels TVM's kernels call)
        src/*.c                  the TVM kernels, <m>.c (the AOT model), <m>_weights.c, ai_runtime.c
        lib<m>.a                 those sources compiled with the board's toolchain and flags
        <m>.ld                   linker-script fragment for .nn_weights / .nn_data_act
        <m>.mk, <m>.cmake        Make and CMake snippets (include them; variables / an imported target)
        model.json               inputs, outputs, quantization, arena, build id, flags, tool versions
        README.md                what is where, a ten-line usage example
    build/<board>/<variant>/<model>/<m>-<board>-<variant>.zip   the folder, zipped

This module writes the texts; site_tools/kiln_export.py wires them as SCons targets (each file its own
target, so a changed model rewrites only what changes). Nothing here imports SCons.

<m> is the model's C prefix (tinykiln.aot.c_identifier): the generated model.c includes "model.h",
which the export renames to "<m>.h" so that several exported models can share one include path.
"""
from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from . import KilnError, aot

# Runtime files every export carries (relative to the project root).
RUNTIME_HEADERS = ["runtime/ai/tk_model.h", "runtime/ai/ai_runtime.h", "runtime/include/tk_kernel.h"]
RUNTIME_SOURCES = ["runtime/ai/ai_runtime.c"]
# The micro-kernels some schedules call: tk_kernel.h includes "tk_mk.h" through the include path, so
# their headers join include/ (one -I for the user) and their sources src/.
MICRO_KERNELS = "runtime/kernels"


def micro_kernel_files(root: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(headers, sources) of runtime/kernels/, relative to the project root."""
    base = Path(root) / MICRO_KERNELS
    if not base.is_dir():
        return [], []
    rel = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    return ([rel(p) for p in sorted(base.glob("*.h"))], [rel(p) for p in sorted(base.glob("*.c"))])

# The variables of the Make snippet and the symbols of the linker fragment use these names.
WEIGHTS_REGION = "TINYKILN_WEIGHTS"
ACT_REGION = "TINYKILN_ACT"


@dataclass
class ExportInfo:
    """What the snippets and model.json say about one exported model."""
    name: str  # the model's name (models/<name>, or the .tflite's stem)
    c_name: str  # its C prefix
    board: str
    variant: str
    core: str
    cflags: list[str]  # CPU + variant flags the library was compiled with
    build_id: str
    arena_size: int
    arena_alignment: int
    arena_lower_bound: int
    weights_size: int
    inputs: list[dict]
    outputs: list[dict]
    layers: int  # kernel calls per inference
    kernels: list[str]  # kernel file names (src/<name>.c)
    weights_region: str  # the board region the variant puts weights in
    activations_region: str
    source: str  # the .tflite it came from
    tools: dict = field(default_factory=dict)
    extra_sources: list[str] = field(default_factory=list)  # micro-kernel sources (src/<name>)
    extra_headers: list[str] = field(default_factory=list)  # micro-kernel headers (include/<name>)
    state_size: int = 0  # a stateful model's state bytes (a static buffer in .bss, kept across runs)

    @property
    def upper(self) -> str:
        return self.c_name.upper()

    @property
    def sources(self) -> list[str]:
        """src/ files, in link order."""
        return ([f"{self.c_name}.c", f"{self.c_name}_weights.c"] + list(self.kernels)
                + [Path(s).name for s in RUNTIME_SOURCES] + list(self.extra_sources))

    @property
    def headers(self) -> list[str]:
        return [f"{self.c_name}.h"] + [Path(h).name for h in RUNTIME_HEADERS] + list(self.extra_headers)

    @property
    def library(self) -> str:
        return f"lib{self.c_name}.a"


def tensor_entries(graph, plan, indices) -> list[dict]:
    """model.json entries of graph inputs or outputs: name, dtype, shape, bytes, arena offset and
    the quantization (real = scale * (q - zero_point))."""
    entries = []
    for index in indices:
        t = graph.tensor(index)
        entry = {"name": t.name, "dtype": t.dtype, "shape": [int(d) for d in t.shape],
                 "bytes": int(t.nbytes), "arena_offset": int(plan.tensor_offsets[index])}
        if t.quant is not None and t.quant.scale:
            entry["quantization"] = {"scale": [float(np.float32(s)) for s in t.quant.scale],
                                     "zero_point": [int(z) for z in t.quant.zero_point]}
        entries.append(entry)
    return entries


def export_info(*, model, graph, plan, result, target, kernel_files, layers, tools=None,
                extra_sources=(), extra_headers=()) -> ExportInfo:
    """ExportInfo from the pipeline's objects (models.Model, Graph, MemoryPlan, aot.AotResult,
    boards.Target), the kernel file names and the number of kernel calls."""
    return ExportInfo(
        name=model.name, c_name=model.c_name, board=target.board.name, variant=target.variant.name,
        core=target.board.core, cflags=list(target.cflags), build_id=result.build_id,
        arena_size=plan.arena_size, arena_alignment=plan.alignment,
        arena_lower_bound=plan.lower_bound, weights_size=result.weights_bytes,
        inputs=tensor_entries(graph, plan, graph.inputs),
        outputs=tensor_entries(graph, plan, graph.outputs),
        layers=layers,
        kernels=sorted(kernel_files),
        weights_region=target.placement.get("weights", ""),
        activations_region=target.placement.get("activations", ""),
        source=model.path.name, tools=dict(tools or {}), extra_sources=list(extra_sources),
        extra_headers=list(extra_headers), state_size=getattr(plan, "state_size", 0))


def tool_versions(cc: str) -> dict:
    """Versions that decide the exported code: the compiler, TVM, the generator, this checkout."""
    versions = {"tinykiln_aot": aot.GENERATOR_VERSION, "python": platform.python_version()}
    for dist in ("apache-tvm", "tflite", "scons"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
        versions["cc"] = out.splitlines()[0].strip() if out else cc
    except (OSError, subprocess.TimeoutExpired):
        versions["cc"] = cc
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "-C", str(root), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=30)
        if rev.returncode == 0:
            versions["tinykiln"] = rev.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return versions


def model_c(text: str, c_name: str) -> str:
    """The generated model.c with its header renamed to <c_name>.h."""
    include = '#include "model.h"'
    if include not in text:
        raise KilnError("export: the generated model.c does not include \"model.h\" any more; "
                        "tinykiln.export.model_c must follow tinykiln.aot")
    return text.replace(include, f'#include "{c_name}.h"', 1)


def model_json(info: ExportInfo) -> str:
    data = {
        "name": info.name, "c_name": info.c_name, "source": info.source,
        "build_id": info.build_id,
        "target": {"board": info.board, "variant": info.variant, "core": info.core,
                   "cflags": info.cflags},
        "arena": {"size": info.arena_size, "alignment": info.arena_alignment,
                  "lower_bound": info.arena_lower_bound, "section": ".nn_data_act",
                  "board_region": info.activations_region},
        "weights": {"size": info.weights_size, "section": ".nn_weights",
                    "board_region": info.weights_region},
        "layers": info.layers, "inputs": info.inputs, "outputs": info.outputs,
        "api": {"run": f"{info.c_name}_run", "info": f"{info.c_name}_info",
                "arena_size_macro": f"{info.upper}_ARENA_SIZE", "header": f"{info.c_name}.h"},
        "files": {"include": info.headers, "src": info.sources, "library": info.library,
                  "linker_fragment": f"{info.c_name}.ld", "make": f"{info.c_name}.mk",
                  "cmake": f"{info.c_name}.cmake"},
        "tools": info.tools,
    }
    if info.state_size:
        # variable tensors kept from one run to the next: <m>_reset (or ai_reset) clears them
        data["state"] = {"size": info.state_size, "section": ".bss", "reset": f"{info.c_name}_reset",
                         "size_macro": f"{info.upper}_STATE_SIZE"}
        data["api"]["reset"] = f"{info.c_name}_reset"
    return json.dumps(data, indent=2, sort_keys=False) + "\n"


def linker_fragment(info: ExportInfo) -> str:
    return f"""\
/* tinykiln: where model '{info.name}' keeps its constants and its activation arena.
 * Built for {info.board} ({info.variant}); weights {info.weights_size} B, arena {info.arena_size} B.
 *
 * In your linker script, name the regions first (outside SECTIONS), e.g.
 *     REGION_ALIAS("{WEIGHTS_REGION}", FLASH);    any memory the CPU can read: flash, QSPI, RAM
 *     REGION_ALIAS("{ACT_REGION}", RAM);          read/write memory
 * then INCLUDE this file inside SECTIONS {{ ... }} (after .text/.rodata) and pass -L<this folder>.
 * Weights placed in RAM need a load address in flash and a copy at start-up: change the first
 * line of .nn_weights to `> {WEIGHTS_REGION} AT> FLASH` and copy LOADADDR(.nn_weights) to
 * __nn_weights_start. The arena is NOLOAD: nothing to clear or copy. Several exported models share
 * the two sections: INCLUDE one fragment only. */
.nn_weights : ALIGN(16)
{{
    __nn_weights_start = .;
    KEEP(*(.nn_weights .nn_weights.*))
    . = ALIGN(16);
    __nn_weights_end = .;
}} > {WEIGHTS_REGION}

.nn_data_act (NOLOAD) : ALIGN(16)
{{
    __nn_data_act_start = .;
    *(.nn_data_act .nn_data_act.*)
    __nn_data_act_end = .;
}} > {ACT_REGION}
"""


def make_snippet(info: ExportInfo) -> str:
    p = f"TK_{info.upper}"
    srcs = " \\\n    ".join(f"$({p}_DIR)src/{s}" for s in info.sources)
    return f"""\
# tinykiln: model '{info.name}' for {info.board} ({info.variant}). In your Makefile:
#     include path/to/export/{info.c_name}.mk
#     CFLAGS  += $({p}_CPPFLAGS)
#     LDLIBS  += $({p}_LDLIBS)             # the prebuilt library (built with $({p}_CFLAGS))
# or compile $({p}_SRCS) with your own flags instead of linking $({p}_LIB).
# Linker script: see $({p}_LDFRAGMENT) (.nn_weights, .nn_data_act).
{p}_DIR := $(dir $(lastword $(MAKEFILE_LIST)))
{p}_CPPFLAGS := -I$({p}_DIR)include
{p}_CFLAGS := {' '.join(info.cflags)}
{p}_LIB := $({p}_DIR){info.library}
{p}_LDLIBS := $({p}_LIB) -lm
{p}_LDFRAGMENT := $({p}_DIR){info.c_name}.ld
{p}_ARENA_SIZE := {info.arena_size}
{p}_SRCS := \\
    {srcs}
"""


def cmake_snippet(info: ExportInfo) -> str:
    t = f"tinykiln_{info.c_name}"
    u = f"TINYKILN_{info.upper}"
    srcs = "\n    ".join(f"${{{u}_DIR}}/src/{s}" for s in info.sources)
    return f"""\
# tinykiln: model '{info.name}' for {info.board} ({info.variant}). In your CMakeLists.txt:
#     include(path/to/export/{info.c_name}.cmake)
#     target_link_libraries(app PRIVATE {t})     # include path, lib{info.c_name}.a and libm
# or add ${{{u}_SOURCES}} to your own target to compile them with your flags.
# Linker script: ${{{u}_LINKER_FRAGMENT}} (.nn_weights, .nn_data_act).
set({u}_DIR "${{CMAKE_CURRENT_LIST_DIR}}")
set({u}_INCLUDE_DIR "${{{u}_DIR}}/include")
set({u}_LIBRARY "${{{u}_DIR}}/{info.library}")
set({u}_LINKER_FRAGMENT "${{{u}_DIR}}/{info.c_name}.ld")
set({u}_CFLAGS {' '.join(info.cflags)})
set({u}_ARENA_SIZE {info.arena_size})
set({u}_SOURCES
    {srcs})
if(NOT TARGET {t})
  add_library({t} STATIC IMPORTED GLOBAL)
  set_target_properties({t} PROPERTIES
    IMPORTED_LOCATION "${{{u}_LIBRARY}}"
    INTERFACE_INCLUDE_DIRECTORIES "${{{u}_INCLUDE_DIR}}"
    INTERFACE_LINK_LIBRARIES m)
endif()
"""


def _io_lines(entries: list[dict]) -> list[str]:
    lines = []
    for i, e in enumerate(entries):
        q = e.get("quantization")
        quant = f", scale {q['scale'][0]:.6g}, zero point {q['zero_point'][0]}" if q else ""
        lines.append(f"- {i}: `{e['name']}` {e['dtype']} {e['shape']} ({e['bytes']} B{quant})")
    return lines


def readme(info: ExportInfo) -> str:
    m, M = info.c_name, info.upper
    in_type = {"int8": "int8_t", "uint8": "uint8_t", "float32": "float"}.get(
        info.inputs[0]["dtype"], "uint8_t") if info.inputs else "uint8_t"
    out_type = {"int8": "int8_t", "uint8": "uint8_t", "float32": "float"}.get(
        info.outputs[0]["dtype"], "uint8_t") if info.outputs else "uint8_t"
    lines = [
        f"# {info.name}: a tinykiln model library",
        "",
        f"Model `{info.source}` compiled for **{info.board}** (variant {info.variant}, {info.core}) "
        f"by tinykiln: TVM-generated C kernels and an AOT model with a static memory plan. Build id "
        f"`{info.build_id}`; arena {info.arena_size} B (lower bound {info.arena_lower_bound} B), "
        f"weights {info.weights_size} B. Everything about it is in `model.json`.",
        "",
        *([f"The model keeps state from one run to the next ({info.state_size} B, a static buffer in .bss): "
           f"call `{m}_reset()` (or `ai_reset`) before the first run and at the start of each new "
           "sequence; one instance at a time.", ""] if info.state_size else []),
        "| file | what |", "|---|---|",
        f"| `include/{m}.h` | the typed API: `{m}_run`, `{M}_ARENA_SIZE`, `{M}_INPUT0_*` ... |",
        "| `include/ai_runtime.h` | the STM32-style API: `ai_create`, `ai_run`, `ai_get_input` ... |",
        f"| `src/` | the C sources of `lib{m}.a` (compile them yourself if you prefer your flags) |",
        f"| `lib{m}.a` | built with `{' '.join(info.cflags)}` |",
        f"| `{m}.ld` | linker-script fragment placing `.nn_weights` and `.nn_data_act` |",
        f"| `{m}.mk`, `{m}.cmake` | Make and CMake snippets |",
        "",
        "Inputs:", *_io_lines(info.inputs), "", "Outputs:", *_io_lines(info.outputs), "",
        "## Use",
        "",
        "```c",
        f'#include "{m}.h"                      /* -I export/include; link lib{m}.a -lm */',
        f"static uint8_t arena[{M}_ARENA_SIZE] __attribute__((aligned(16)));",
        f"void classify(const {in_type} *input, {out_type} *output)",
        "{",
        f"    {m}_inputs in = {{ .input0 = input }};    /* {M}_INPUT0_SIZE bytes */",
        f"    {m}_outputs out = {{ .output0 = output }}; /* {M}_OUTPUT0_SIZE bytes */",
        f"    if ({m}_run(&in, &out, arena) != 0)     /* NULL arena: the one in .nn_data_act */",
        "        for (;;) { }                        /* misaligned arena: a build mistake */",
        "}",
        "```",
        "",
        "Make: `include export/" + m + ".mk`, then `CFLAGS += $(TK_" + M + "_CPPFLAGS)` and "
        "`LDLIBS += $(TK_" + M + "_LDLIBS)`. CMake: `include(export/" + m + ".cmake)` and "
        f"`target_link_libraries(app PRIVATE tinykiln_{m})`. Linker script: alias "
        f"`{WEIGHTS_REGION}` and `{ACT_REGION}` to your regions and `INCLUDE {m}.ld` inside "
        "`SECTIONS` (the comment at its top shows how).",
        "",
        "Several models and several instances: see `ai_runtime.h` (`ai_create(&" + m + "_info, "
        "buffer, &handle)`, one arena per instance). int8 outputs are bit-exact with the LiteRT "
        "reference kernels.",
        "",
    ]
    return "\n".join(lines)


def write_zip(folder: str | os.PathLike, files, zip_path: str | os.PathLike) -> None:
    """Zip `files` (paths inside `folder`) with entries under the folder's name (export/include/...),
    reproducibly: sorted entries and a fixed timestamp, so an unchanged export gives the same bytes.
    Files of an earlier export that are no longer part of it (a changed model's old kernels) are
    deleted from the folder first, so the folder and the zip hold the same files."""
    folder = Path(folder)
    keep = {Path(f).resolve() for f in files}
    for path in [p for p in folder.rglob("*") if p.is_file()]:
        if path.resolve() not in keep:
            path.unlink()
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(keep):
            entry = zipfile.ZipInfo(str(Path(folder.name) / path.relative_to(folder.resolve())),
                                    date_time=(2020, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16
            entry.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(entry, path.read_bytes())


def copy_file(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def zip_name(info: ExportInfo) -> str:
    name = f"{info.c_name}-{info.board}-{info.variant}.zip"
    if not _SAFE.match(name):  # board and variant names come from file names: keep them tame
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
    return name
