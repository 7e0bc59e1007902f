"""TFLite with float16 weights: the tflite backend's flatbuffer, converted with
``optimizations=[DEFAULT]`` and ``target_spec.supported_types=[tf.float16]``.

Weights are stored as float16 and dequantized to float32 when the interpreter loads them on the
CPU, so the error is the weights' rounding (about 1e-3 relative), not float16 arithmetic.
"""

from __future__ import annotations

from typing import Any

from ..export import OnnxArtifact
from . import Backend, BuildContext, Prepared
from .tflite_layers import layer_report
from .tflite_runner import load_case, prepare_flatbuffer

NAME = "tflite-fp16"


def _configure(converter: Any, tf: Any) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    return prepare_flatbuffer(
        artifact, ctx, backend=NAME, target={"target": "fp16"}, configure=_configure, install_hint=BACKEND.install_hint
    )


BACKEND = Backend(
    name=NAME,
    prepare=prepare,
    modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
    extra="tflite-fp16",
    exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
    framework=("tensorflow",),
    precision="fp16",
    load_case=load_case,
    layer_report=layer_report,
)
