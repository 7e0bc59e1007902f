"""TFLite with dynamic-range int8 quantization: ``optimizations=[DEFAULT]``, no calibration.

Weights are stored as int8 (per channel where the kernel allows); activations stay float and
kernels that support it quantize them on the fly per call. Inputs and outputs are float.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...export.to_onnx import OnnxArtifact
from .. import BuildContext, Prepared
from .layers import layer_report
from .quantized import quantization_count
from .runner import BACKEND as TFLITE
from .runner import prepare_flatbuffer

NAME = "tflite-int8"


def _configure(converter: Any, tf: Any) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    return prepare_flatbuffer(
        artifact, ctx, backend=NAME, target={"target": "int8-dynamic"}, configure=_configure, install_hint=BACKEND.install_hint
    )


#: the fp32 tflite route's packages, exports and framework: only the conversion differs
BACKEND = replace(
    TFLITE, name=NAME, prepare=prepare, extra="tflite-int8", precision="int8", layer_report=layer_report, quantization_count=quantization_count,
)
