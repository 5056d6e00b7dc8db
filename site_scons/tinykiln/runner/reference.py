"""The ground truth: the LiteRT interpreter with TFLite's reference kernels (BUILTIN_REF)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tinykiln import KilnError


class Reference:
    """Runs a .tflite with LiteRT's reference kernels. Outputs come in subgraph output order, the
    order the device reports them in."""

    def __init__(self, model_path: str | Path):
        try:
            from ai_edge_litert.interpreter import Interpreter, OpResolverType
        except ImportError:
            raise KilnError("ai-edge-litert is not installed: run ./kiln once to set up the venv") from None
        try:
            self.interpreter = Interpreter(
                model_path=str(model_path),
                experimental_op_resolver_type=OpResolverType.BUILTIN_REF,
            )
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise KilnError(f"LiteRT cannot load {model_path}: {e}") from None
        self.inputs = self.interpreter.get_input_details()
        self.outputs = self.interpreter.get_output_details()

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
        return [self.interpreter.get_tensor(d["index"]).copy() for d in self.outputs]
