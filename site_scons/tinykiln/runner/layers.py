"""Find the first layer that differs from LiteRT: a debugging aid for kernel authors.

    python -m tinykiln.runner.layers model.tflite [--seed 0] [--runs 3]

Builds the model for the host with every op's output exposed as a graph output (the arena planner
then keeps them all alive), runs it through the validation app on a pipe, runs LiteRT's reference
kernels with all intermediates preserved, and prints per op: max |difference| and mismatching
elements. Later ops see the device's own (possibly wrong) inputs, so the first mismatching op is the
one to look at.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from tinykiln import KilnError, boards, paths, pipeline
from tinykiln.ops import detection

from .airunner import AiRunner
from .validate import random_inputs


def build_debug_firmware(model_path: str, workdir: Path) -> tuple[Path, object]:
    """The host validation firmware of `model_path` with every op output as a graph output, built
    with the host board's flags, macros and sources (the release variant)."""
    compiled = pipeline.compile(str(model_path), knobs={}, expose_layers=True)
    graph = compiled.graph
    target = boards.resolve(paths.ROOT, "host", boards.DEFAULT_VARIANT)
    files = dict(compiled.texts)
    for name in compiled.kernels:
        files[f"{name}.c"] = compiled.kernel_c(name)
    files["board_info.c"] = boards.board_info_c(target)
    for name, text in files.items():
        (workdir / name).write_text(text)
    runtime = paths.ROOT / "runtime"
    sources = [str(workdir / n) for n in files if n.endswith(".c")]
    sources += [str(runtime / p) for p in ("ai/ai_runtime.c", "protocol/tk_proto.c", "apps/validation/main.c")]
    sources += [str(p) for p in target.board.sources] + [str(p) for p in sorted((runtime / "src").glob("*.c"))]
    includes = [workdir] + [runtime / d for d in ("ai", "include", "kernels", "protocol")]
    exe = workdir / "firmware"
    cmd = ["gcc", *target.cflags, "-std=gnu11", *[f"-D{d}" for d in target.defines],
           f"-DAI_MAX_IO={len(graph.outputs) + len(graph.inputs)}", *[f"-I{d}" for d in includes],
           *sources, *target.variant.ldflags, "-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise KilnError(f"building the layer-debug firmware failed:\n{proc.stderr[-2000:]}")
    return exe, graph


def compare_layers(model_path: str, seed: int = 0, runs: int = 1) -> list[dict]:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from tinykiln.tflite.tolerances import corrected_copy

    rows: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="tk-layers-") as tmp:
        exe, graph = build_debug_firmware(model_path, Path(tmp))
        # the copy LiteRT runs (the importer's tolerances corrected; the same tensors, in the same order)
        data, _ = corrected_copy(Path(model_path).read_bytes())
        interp = Interpreter(model_content=data, experimental_preserve_all_tensors=True,
                             experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
        interp.allocate_tensors()
        producer = {o: op for op in graph.ops for o in op.outputs}
        with AiRunner().connect(f"pipe:{exe}") as runner:
            for inputs in random_inputs(runner.info.inputs, runs, seed):
                for detail, x in zip(interp.get_input_details(), inputs):
                    interp.set_tensor(detail["index"], x.reshape(detail["shape"]))
                interp.invoke()
                outputs, _ = runner.invoke(inputs)
                unwritten = _litert_unwritten(graph, interp)
                for tensor, dev in zip(graph.outputs, outputs):
                    if tensor >= len(interp.get_tensor_details()):
                        continue  # a uint8 API tensor the importer added (tflite/uint8.py): its int8 one is compared
                    if graph.tensor(tensor).from_uint8:
                        dev = dev.astype(np.int16) + 128  # uint8 in the file, int8 inside
                    ref = interp.get_tensor(tensor).reshape(dev.shape)
                    if tensor in unwritten:  # rows LiteRT leaves as its arena held them; the kernel's are zero
                        ref = ref.copy()
                        ref.reshape(len(unwritten[tensor]), -1)[unwritten[tensor]] = 0
                    diff = np.abs(dev.astype(np.float64) - ref.astype(np.float64))
                    op = producer[tensor]
                    row = rows.setdefault(tensor, {
                        "op_index": op.index, "op": op.kind, "tensor": graph.tensor(tensor).name,
                        "shape": list(dev.shape), "max_abs_difference": 0.0, "mismatching": 0})
                    row["max_abs_difference"] = max(row["max_abs_difference"], float(diff.max(initial=0)))
                    row["mismatching"] += int(np.count_nonzero(diff))
    return sorted(rows.values(), key=lambda r: r["op_index"])


def _litert_unwritten(graph, interp) -> dict[int, np.ndarray]:
    """Per output tensor of a TFLite_Detection_PostProcess, the rows LiteRT left unwritten in this run."""
    rows = {}
    for op in graph.ops:
        if op.kind == detection.KIND:
            num = int(interp.get_tensor(op.outputs[3]).reshape(-1)[0])
            rows.update({t: detection.unwritten_rows(op.attrs, num) for t in op.outputs[:3]})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a .tflite file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        rows = compare_layers(args.model, args.seed, args.runs)
    except KilnError as e:
        print(f"layers: error: {e}", file=sys.stderr)
        return 2
    first = next((r for r in rows if r["mismatching"]), None)
    for r in rows:
        mark = "  <- first mismatch" if r is first else ""
        print(f"op {r['op_index']:3d} {r['op']:<18} {str(r['shape']):<18} max|diff| "
              f"{r['max_abs_difference']:<10g} mismatching {r['mismatching']}{mark}")
    print("all layers match" if first is None else
          f"first mismatch: op {first['op_index']} {first['op']} ('{first['tensor']}')")
    return 0 if first is None else 1


if __name__ == "__main__":
    sys.exit(main())
