"""TFLite importer: .tflite flatbuffer -> graph.Graph.

    from tinykiln import tflite
    graph = tflite.load("model.tflite")        # or tflite.load(data_bytes, name="net")

Every problem (corrupt file, unsupported op, hybrid quantization, dynamic shape, several subgraphs,
unsupported dtype) is a KilnError; an unsupported model's message lists every offending op.
"""
from .importer import SUPPORTED_OPS, load

__all__ = ["load", "SUPPORTED_OPS"]
