"""The ground truth: the LiteRT interpreter with TFLite's reference kernels (BUILTIN_REF).

LiteRT loads the .tflite as it is. If it refuses the file and the file has deviations the importer
tolerates on purpose (tinykiln.tflite.tolerances), the reference runs a corrected copy instead and
says what it corrected (`corrections`, and LiteRT's error on the original in `refused`). If LiteRT
cannot run the model at all, Reference raises NoReference with LiteRT's error: validation then
compares nothing, and says so.

BUILTIN_REF registers TFLite_Detection_PostProcess too (as the custom op it is). That op leaves some
output rows unwritten (they keep whatever LiteRT's arena held: ops/detection.py unwritten_rows); the
kernel writes zeros there, and so does the reference's copy of them, so validation compares the
rows LiteRT defines and checks that the others are zero."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinykiln import KilnError
from tinykiln.ops import detection


class NoReference(KilnError):
    """LiteRT cannot run this model (nor a corrected copy): there is nothing to compare against."""


def _interpreter(**source):
    """A ready interpreter, its input and output details (LiteRT's Python API decodes tensor names
    there: a name that is not UTF-8 fails as a ValueError, like a refusal)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(experimental_op_resolver_type=OpResolverType.BUILTIN_REF, **source)
    interpreter.allocate_tensors()
    return interpreter, interpreter.get_input_details(), interpreter.get_output_details()


def _litert_message(e: Exception) -> str:
    return " ".join(str(e).split()) or type(e).__name__


class Reference:
    """Runs a .tflite with LiteRT's reference kernels. Outputs come in subgraph output order, the
    order the device reports them in."""

    def __init__(self, model_path: str | Path):
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError:
            raise KilnError("ai-edge-litert is not installed: run ./kiln once to set up the venv") from None
        self.corrections: list = []  # tinykiln.tflite.tolerances.Correction, when a copy runs
        self.refused = ""  # LiteRT's error on the file as it is, when a corrected copy runs
        try:
            self.interpreter, self.inputs, self.outputs = _interpreter(model_path=str(model_path))
        except (ValueError, RuntimeError) as e:
            self.interpreter, self.inputs, self.outputs = self._corrected(model_path, _litert_message(e))
        self.unwritten = _unwritten_plan(Path(model_path).read_bytes())

    def _corrected(self, model_path, error: str):
        from tinykiln.tflite.tolerances import corrected_copy, explain

        try:
            data, corrections = corrected_copy(Path(model_path).read_bytes())
        except Exception:  # noqa: BLE001 - a file the object API cannot read has no copy either
            corrections = []
        if not corrections:
            why = explain(error)
            raise NoReference(f"LiteRT cannot load {model_path}: {error}" + (f" ({why})" if why else "")) from None
        try:
            opened = _interpreter(model_content=data)
        except (ValueError, RuntimeError) as e:
            why = explain(_litert_message(e))
            raise NoReference(f"LiteRT cannot load {model_path}: {error}; nor a copy with "
                              f"{'; '.join(map(str, corrections))}: {_litert_message(e)}"
                              + (f" ({why})" if why else "")) from None
        self.corrections, self.refused = corrections, error
        return opened

    def reset(self) -> None:
        """Clear the variable tensors (a stateful model's state), as the device's RESET does."""
        self.interpreter.reset_all_variables()

    def run(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        if len(inputs) != len(self.inputs):
            raise KilnError(f"the reference takes {len(self.inputs)} input(s), got {len(inputs)}")
        for detail, array in zip(self.inputs, inputs):
            self.interpreter.set_tensor(
                detail["index"], np.asarray(array, dtype=detail["dtype"]).reshape(detail["shape"])
            )
        self.interpreter.invoke()
        outputs = [self.interpreter.get_tensor(d["index"]).copy() for d in self.outputs]
        return detection.zero_unwritten(self.unwritten, outputs)


def _unwritten_plan(data: bytes) -> list:
    """ops/detection.py's plan of the rows to zero; models without the op are not imported again."""
    if detection.KIND.encode() not in data:
        return []
    from tinykiln.tflite import load

    return detection.unwritten_plan(load(data))
