"""TFLite with float16 weights: the tflite backend's flatbuffer, converted with
``optimizations=[DEFAULT]`` and ``target_spec.supported_types=[tf.float16]``.

Weights are stored as float16 and dequantized to float32 when the interpreter loads them on the
CPU, so the error is the weights' rounding (about 1e-3 relative), not float16 arithmetic.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ...export.to_onnx import OnnxArtifact
from .. import BuildContext, Prepared
from .layers import layer_report
from .runner import BACKEND as TFLITE
from .runner import prepare_flatbuffer

NAME = "tflite-fp16"


def _configure(converter: Any, tf: Any) -> None:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.target_spec.supported_types = [tf.float16]


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    return prepare_flatbuffer(
        artifact, ctx, backend=NAME, target={"target": "fp16"}, configure=_configure, install_hint=BACKEND.install_hint
    )


#: the fp32 tflite route's packages, exports and framework: only the conversion differs
BACKEND = replace(
    TFLITE, name=NAME, prepare=prepare, extra="tflite-fp16", precision="fp16", layer_report=layer_report,
)
