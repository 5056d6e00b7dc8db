"""A small TF1-style uint8 network for tests (tflite/uint8.py maps it onto the int8 kernels)."""
from __future__ import annotations

import numpy as np

from modelgen import ModelBuilder


def uint8_example(seed: int = 0):
    """A TF1-style uint8 network (uint8 activations and weights with zero points, int32 biases):
    uint8 image -> CONV RELU6 -> DEPTHWISE -> CONV -> ADD (skip) -> AVERAGE_POOL (even windows) ->
    RESHAPE -> FULLY_CONNECTED -> SOFTMAX (uint8, 1/256). Returns (builder, inputs, outputs)."""
    mb = ModelBuilder(seed)
    rng = mb.rng

    def act(shape, scale, zp, name=None):
        return mb.tensor(shape, "uint8", quant=(scale, zp), name=name)

    def weights(shape):
        zp = int(rng.integers(60, 196))
        scale = float(rng.uniform(0.004, 0.02))
        data = np.clip(np.rint(rng.normal(zp, 50, size=shape)), 0, 255)
        return mb.tensor(shape, "uint8", quant=(scale, zp), data=data), scale

    def bias(x_scale, w_scale, n):
        return mb.tensor((n,), "int32", quant=(x_scale * w_scale, 0), data=rng.integers(-2000, 2000, n))

    x = act((1, 8, 8, 3), 1 / 128, 128, name="image")
    w, ws = weights((8, 3, 3, 3))
    c1 = act((1, 8, 8, 8), 6 / 255, 0)
    mb.op("CONV_2D", [x, w, bias(1 / 128, ws, 8)], [c1], padding="SAME", stride=(1, 1), activation="RELU6")
    w, ws = weights((1, 3, 3, 8))
    d1 = act((1, 8, 8, 8), 0.05, 110)
    mb.op("DEPTHWISE_CONV_2D", [c1, w, bias(6 / 255, ws, 8)], [d1], padding="SAME", stride=(1, 1), depth_multiplier=1)
    w, ws = weights((8, 1, 1, 8))
    c2 = act((1, 8, 8, 8), 0.08, 125)
    mb.op("CONV_2D", [d1, w, bias(0.05, ws, 8)], [c2], padding="VALID", stride=(1, 1))
    s = act((1, 8, 8, 8), 0.1, 120)
    mb.op("ADD", [c2, d1], [s])
    p = act((1, 4, 4, 8), 0.1, 120)
    mb.op("AVERAGE_POOL_2D", [s], [p], padding="VALID", stride=(2, 2), filter=(2, 2))
    flat = act((1, 128), 0.1, 120)
    mb.op("RESHAPE", [p, mb.const([1, 128])], [flat])
    w, ws = weights((10, 128))
    logits = act((1, 10), 0.15, 128)
    mb.op("FULLY_CONNECTED", [flat, w, bias(0.1, ws, 10)], [logits])
    probs = act((1, 10), 1 / 256, 0, name="probs")
    mb.op("SOFTMAX", [logits], [probs], beta=1.0)
    return mb, [x], [probs]
