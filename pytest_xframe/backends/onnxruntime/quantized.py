"""What an ONNX model quantized by ``onnxruntime.quantization`` really stores as integers: the
weight operand of each matmul, convolution or embedding node, followed back through dequantize,
transpose and reshape nodes to its initializer, and that initializer's element type.

An initializer counts as quantized when it is stored as an integer of 16 bits or fewer (int32
biases and int64 index tables are not weight operands). A dynamic quantization leaves the weights
of ops it does not handle in float; the reason names those ops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..quantization import QuantizationCount

#: op type -> index of its weight operand, in a float graph and in what the quantizers make of it
WEIGHT_OPERANDS = {
    "Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "Gather": 0, "ConvInteger": 1, "MatMulInteger": 1, "QLinearConv": 3, "QLinearMatMul": 3,
    "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1,
}
#: ops a weight passes through on its way from the stored constant to the op that uses it
_PASS_THROUGH = ("DequantizeLinear", "Transpose", "Reshape", "Cast", "Identity")


def weights(model: Any) -> list[tuple[Any, str]]:
    """Each weight initializer of the graph (once) and the op type that uses it: the weight operand
    of a matmul, convolution or embedding, followed back through dequantize, transpose, reshape."""
    initializers = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    found: dict[str, tuple[Any, str]] = {}
    for node in model.graph.node:
        position = WEIGHT_OPERANDS.get(node.op_type)
        if position is None or len(node.input) <= position:
            continue
        name = node.input[position]
        while name not in initializers and name in producer and producer[name].op_type in _PASS_THROUGH:
            name = producer[name].input[0]
        if name in initializers and _stored_kind(initializers[name]) in ("float", "quantized"):  # not an index table or a shape
            found.setdefault(name, (initializers[name], node.op_type))
    return list(found.values())


def _stored_kind(init: Any) -> str:
    """"float", "quantized" (an integer of 16 bits or fewer) or "other" (int32/int64 indices, shapes)."""
    import onnx

    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type))
    return "float" if dtype.kind == "f" else "quantized" if dtype.kind in "iu" and dtype.itemsize <= 2 else "other"


def count(path: Path, quantizer: str) -> QuantizationCount:
    """The weights the quantized ONNX model at ``path`` stores as integers, against all its weights;
    where it quantized none, the reason: the ops using them, which ``quantizer`` (the mode of
    ``onnxruntime.quantization`` that ran) leaves in float."""
    import onnx

    found = weights(onnx.load(str(path), load_external_data=False))

    def size(init: Any) -> int:
        return int(np.prod(init.dims, dtype=np.int64)) * onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize

    quantized = [init for init, _ in found if _stored_kind(init) == "quantized"]
    reason = None
    if not quantized:
        ops = sorted({op for _, op in found})
        reason = (f"its weights feed {', '.join(ops)}, which onnxruntime.quantization ({quantizer}) leaves in float"
                  if ops else "the model has no matmul, convolution or embedding weights")
    return QuantizationCount(len(quantized), len(found), sum(map(size, quantized)), sum(size(i) for i, _ in found), reason)
