"""What a TFLite flatbuffer really stores quantized: the weight operand of each matmul, convolution
and embedding op, followed through a DEQUANTIZE op to its constant, and that constant's type, as
the LiteRT interpreter reports them (``get_tensor_details`` and the ops' inputs and outputs).

A constant is a tensor no op produces and the graph does not take as an input. A weight counts as
quantized when it is stored as an integer with quantization parameters (int8 weights, int32
biases are not weight operands). TFLite's converter leaves weight tensors with fewer than 1024
elements in float under dynamic-range quantization (tensorflow/tensorflow#53094); a model whose
weights are all that small quantizes nothing, and the reason says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ...export.to_onnx import OnnxArtifact
from .. import Prepared
from ..quantization import QuantizationCount

#: op name -> index of its weight operand
WEIGHT_OPERANDS = {
    "FULLY_CONNECTED": 1, "CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "CONV_3D": 1, "TRANSPOSE_CONV": 1, "BATCH_MATMUL": 1, "EMBEDDING_LOOKUP": 1,
}
#: TFLite's converter keeps weight tensors below this many elements in float (dynamic range)
MIN_ELEMENTS = 1024


def _ops(interpreter: Any) -> list[dict[str, Any]]:
    """Every op with its name, inputs and outputs. ``Interpreter._get_ops_details`` is private;
    checked against ai-edge-litert 2.x (and tf.lite since TF 2.5)."""
    return interpreter._get_ops_details()


def weights(path: Path) -> list[dict[str, Any]]:
    """The tensor details of each weight constant of the flatbuffer at ``path``, once each."""
    from .runner import open_signature

    interpreter, _ = open_signature(path, threads=1)
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    ops = _ops(interpreter)
    producer = {out: op for op in ops for out in op["outputs"]}
    graph_inputs = {d["index"] for d in interpreter.get_input_details()}
    found: dict[int, dict[str, Any]] = {}
    for op in ops:
        position = WEIGHT_OPERANDS.get(op["op_name"])
        if position is None or len(op["inputs"]) <= position:
            continue
        index = int(op["inputs"][position])
        source = producer.get(index)
        if source is not None and source["op_name"] == "DEQUANTIZE":
            index = int(source["inputs"][0])
        if index >= 0 and index not in producer and index not in graph_inputs:
            found[index] = details[index]
    return list(found.values())


def _quantized(detail: dict[str, Any]) -> bool:
    scales = detail.get("quantization_parameters", {}).get("scales")
    return np.dtype(detail["dtype"]).kind in "iu" and scales is not None and len(scales) > 0


def _bytes(detail: dict[str, Any]) -> int:
    return int(np.prod(detail["shape"], dtype=np.int64)) * np.dtype(detail["dtype"]).itemsize


def count(path: Path) -> QuantizationCount:
    """The count for the flatbuffer at ``path`` (see the module docstring)."""
    found = weights(path)
    quantized = [d for d in found if _quantized(d)]
    reason = None
    if not quantized:
        sizes = [int(np.prod(d["shape"], dtype=np.int64)) for d in found]
        if not found:
            reason = "the model has no matmul, convolution or embedding weights"
        elif max(sizes) < MIN_ELEMENTS:
            reason = (f"its weight tensors have at most {max(sizes)} elements, and TFLite's converter leaves tensors with fewer "
                      f"than {MIN_ELEMENTS} elements in float (tensorflow/tensorflow#53094)")
    return QuantizationCount(len(quantized), len(found), sum(map(_bytes, quantized)), sum(map(_bytes, found)), reason)


def quantization_count(prepared: Prepared, artifact: OnnxArtifact) -> QuantizationCount:
    """The ``Backend.quantization_count`` of the TFLite targets: their flatbuffer's weights."""
    from .runner import FLATBUFFER_NAME

    if prepared.converted_path is None:
        raise ValueError("no converted flatbuffer to count")
    return count(prepared.converted_path / FLATBUFFER_NAME)
