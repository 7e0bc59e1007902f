"""The ``layer_report`` capability of the TFLite targets: SNR per layer on a failing input.

The flatbuffer runs again in a LiteRT interpreter with ``experimental_preserve_all_tensors``, so
every intermediate tensor can be read afterwards (int8 tensors dequantized with their scale and
zero point). Tensors are matched to ONNX values by name: onnx-tf names each TensorFlow op it
makes ``onnx_tf_prefix_<ONNX node name>``, and the TFLite converter keeps those names, joined by
``;`` where it fused ops (``onnx_tf_prefix_node_relu;Add;convolution``) and with a digit appended
where two tensors would share a name. A tensor matches the ONNX node's output when it holds as
many elements; onnx-tf computes convolutions in NHWC, so a rank-4 tensor is compared as stored or
transposed from NCHW, whichever agrees better. Values whose node left no named tensor (fused
away, or made by a handler that does not name its ops) are counted as not mapped.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

PREFIX = "onnx_tf_prefix_"


def _dequantized(detail: Mapping[str, Any], value: np.ndarray) -> np.ndarray | None:
    """A tensor's value in float; None for per-channel quantized ones (weights)."""
    params = detail.get("quantization_parameters", {})
    scales = np.asarray(params.get("scales", ()))
    if value.dtype.kind == "f":
        return value.astype(np.float32)
    if scales.size == 1 and value.dtype.kind in "iu":
        zero = np.asarray(params.get("zero_points", (0,)))[0]
        return ((value.astype(np.float64) - zero) * float(scales[0])).astype(np.float32)
    return None


def _rebound(runner: Any, interpreter: Any, signature: Any) -> Any:
    """The prepared runner, feeding and reading the given interpreter instead of its own."""
    if hasattr(runner, "inner"):  # the int8-I/O wrapper around a TfliteRunner
        return dataclasses.replace(runner, inner=_rebound(runner.inner, interpreter, signature))
    return dataclasses.replace(runner, interpreter=interpreter, signature=signature)


def tflite_tensors(flatbuffer: Path, runner: Any, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every float-readable tensor of one run of ``flatbuffer`` on ``feeds``, by TFLite name."""
    from ai_edge_litert.interpreter import Interpreter

    with warnings.catch_warnings():  # "intended for debugging purposes only": that is the purpose
        warnings.simplefilter("ignore", UserWarning)
        interpreter = Interpreter(model_path=str(flatbuffer), experimental_preserve_all_tensors=True)
    signature = interpreter.get_signature_runner(next(iter(interpreter.get_signature_list())))
    _rebound(runner, interpreter, signature).run(feeds)
    tensors = {}
    for detail in interpreter.get_tensor_details():
        try:
            value = interpreter.get_tensor(detail["index"])
        except ValueError:  # a tensor with no data (freed, or never written)
            continue
        readable = _dequantized(detail, np.asarray(value))
        if readable is not None:
            tensors[detail["name"]] = readable
    return tensors


def _names_in(tensor_name: str) -> list[str]:
    """ONNX node names a TFLite tensor name may carry, most literal reading first: each
    ``onnx_tf_prefix_`` segment, without the dedup digits the last one may have, and without
    trailing ``/scope`` parts TensorFlow may have added."""
    segments = tensor_name.split(";")
    found = []
    for i, segment in enumerate(segments):
        if not segment.startswith(PREFIX):
            continue
        name = segment[len(PREFIX) :]
        readings = [name]
        digits = re.search(r"\d+$", name) if i == len(segments) - 1 else None
        if digits:  # "node_Reshape_101": node_Reshape_10 + dedup "1", or node_Reshape_1 + "01"
            readings += [name[:-cut] for cut in range(1, len(digits.group()) + 1)]
        for reading in readings:
            parts = reading.split("/")
            found += ["/".join(parts[:k]) for k in range(len(parts), 0, -1)]
    return found


def _oriented(ref: np.ndarray, got: np.ndarray) -> np.ndarray | None:
    """``got`` in ``ref``'s layout: as is, or NHWC read back as NCHW; None if neither fits."""
    from ...judge.metrics import snr_db

    options = []
    if got.shape == ref.shape:
        options.append(got)
    if got.ndim == 4 and ref.ndim == 4 and got.shape == (ref.shape[0], ref.shape[2], ref.shape[3], ref.shape[1]):
        options.append(got.transpose(0, 3, 1, 2))
    if not options:
        return None
    return max(options, key=lambda g: snr_db(ref, g) if np.isfinite(snr_db(ref, g)) else -np.inf)


def match_tensors(graph: Any, reference: Mapping[str, np.ndarray], tensors: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """ONNX value name -> the TFLite tensor holding it (in the ONNX layout)."""
    by_node = {node.name: node for node in graph.node if node.name}
    matched: dict[str, np.ndarray] = {}
    for tensor_name, value in tensors.items():
        for node_name in _names_in(tensor_name):
            node = by_node.get(node_name)
            outputs = [o for o in node.output if o in reference] if node is not None else []
            if len(outputs) != 1 or outputs[0] in matched:
                continue
            oriented = _oriented(reference[outputs[0]], value)
            if oriented is not None:
                matched[outputs[0]] = oriented
                break
    return matched


def layer_report(prepared: Any, artifact: Any, feeds: Mapping[str, np.ndarray], workdir: Path) -> str | None:
    """SNR per matched ONNX intermediate value, this TFLite target vs ONNX Runtime in fp32."""
    from ..layer_error import against_fp32
    from .runner import FLATBUFFER_NAME

    if prepared.converted_path is None:
        return None

    def tflite_values(model: Any, order: list[str], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        tensors = tflite_tensors(prepared.converted_path / FLATBUFFER_NAME, prepared.runner, feeds)
        return match_tensors(model.graph, {v: reference[v] for v in order}, tensors)

    return against_fp32(
        artifact.path, feeds, tflite_values, lambda model: "layer-by-layer SNR vs onnxruntime (fp32) on this input",
        "no TFLite tensor carries their node's name with as many elements (fused away, or an unnamed op)",
    )
