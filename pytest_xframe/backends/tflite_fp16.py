"""TFLite with float16 weights: the tflite backend's flatbuffer, converted with
``optimizations=[DEFAULT]`` and ``target_spec.supported_types=[tf.float16]``.

Weights are stored as float16 and dequantized to float32 when the interpreter loads them on the
CPU, so the error is the weights' rounding (about 1e-3 relative), not float16 arithmetic.
"""

from __future__ import annotations

from typing import Any

from ..export import OnnxArtifact
from . import BuildContext, Prepared
from .tflite_layers import layer_report  # noqa: F401  (the backend's layer_report capability)
from .tflite_runner import prepare_flatbuffer

BACKEND = "tflite-fp16"


def _configure(converter: Any, tf: Any) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    return prepare_flatbuffer(artifact, ctx, backend=BACKEND, target={"target": "fp16"}, configure=_configure)
