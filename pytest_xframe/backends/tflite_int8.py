"""TFLite with dynamic-range int8 quantization: ``optimizations=[DEFAULT]``, no calibration.

Weights are stored as int8 (per channel where the kernel allows); activations stay float and
kernels that support it quantize them on the fly per call. Inputs and outputs are float.
"""

from __future__ import annotations

from typing import Any

from ..export import OnnxArtifact
from . import Backend, BuildContext, Prepared
from .tflite_layers import layer_report
from .tflite_runner import load_case, prepare_flatbuffer

NAME = "tflite-int8"


def _configure(converter: Any, tf: Any) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    return prepare_flatbuffer(
        artifact, ctx, backend=NAME, target={"target": "int8-dynamic"}, configure=_configure, install_hint=BACKEND.install_hint
    )


BACKEND = Backend(
    name=NAME,
    prepare=prepare,
    modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
    extra="tflite-int8",
    exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
    framework=("tensorflow",),
    precision="int8",
    load_case=load_case,
    layer_report=layer_report,
)
