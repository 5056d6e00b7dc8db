"""The graph IR every later stage reads: tensors and ops, no TFLite types.

Data flows one way: an importer builds a Graph, later stages (lowering, memory planning, AOT) read it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32", "bool")


@dataclass(frozen=True)
class Quantization:
    """Affine quantization, real = scale * (q - zero_point).

    Per-tensor: scale and zero_point have one element and axis is None.
    Per-channel: one element per index of dimension `axis` of the tensor.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str  # one of DTYPES
    quant: Quantization | None = None
    data: np.ndarray | None = None  # set for constants (weights, biases, shape operands)
    # uint8 in the file, stored here as int8 with zero points - 128 (tflite/uint8.py): LiteRT ran
    # the ops on it with its uint8 kernels, whose arithmetic a few lowerings follow
    from_uint8: bool = False
    # a variable tensor (TFLite's is_variable): state an op reads and rewrites in place, kept from one
    # run to the next in the model's state region (memplan), cleared by reset; never a constant
    variable: bool = False

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize


@dataclass
class Op:
    """One operator. `kind` is the TFLite builtin name (CONV_2D, ADD, ...).

    `inputs` and `outputs` are tensor indices; an omitted optional input is -1.
    `attrs` holds the builtin options as plain Python values with snake_case keys, e.g.
    {"stride": (1, 1), "dilation": (1, 1), "padding": "SAME", "activation": "RELU"}.
    """

    index: int
    kind: str
    inputs: list[int]
    outputs: list[int]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: list[Tensor]
    ops: list[Op]  # in execution order
    inputs: list[int]
    outputs: list[int]

    def tensor(self, index: int) -> Tensor:
        return self.tensors[index]

    @property
    def variables(self) -> list[int]:
        """The variable tensors the ops use (the model's state), in index order."""
        used = {t for op in self.ops for t in op.inputs}
        return [t.index for t in self.tensors if t.variable and t.index in used]
