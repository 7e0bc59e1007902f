"""TensorFlow through onnx-tf: convert to a SavedModel, load it back, call it as a deployment would."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..export import OnnxArtifact
from . import BuildContext, Prepared, conversion_key, convert_and_load

def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


@dataclass
class SavedModelRunner:
    """Calls the SavedModel's ``serving_default`` signature, once traced, for every example."""

    function: Any
    #: ONNX input name -> signature keyword; signature output key -> ONNX output name
    inputs: dict[str, str]
    outputs: dict[str, str]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        result = self.function(**{kw: tf.constant(feeds[name]) for name, kw in self.inputs.items()})
        return {self.outputs[key]: np.asarray(value.numpy()) for key, value in result.items() if key in self.outputs}


def _match(onnx_names: tuple[str, ...], keys: list[str]) -> dict[str, str]:
    """Map ONNX names to signature keys: exact, else the sanitized form onnx-tf/TF may use."""
    by_sanitized = {_sanitize(k): k for k in keys}
    mapping = {}
    for name in onnx_names:
        if name in keys:
            mapping[name] = name
        elif _sanitize(name) in by_sanitized:
            mapping[name] = by_sanitized[_sanitize(name)]
    return mapping


def load_saved_model(path: Path, input_names: tuple[str, ...], output_names: tuple[str, ...]) -> SavedModelRunner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    function = loaded.signatures["serving_default"]
    function._xframe_owner = loaded  # keep the trackable alive as long as the function
    _, kwargs = function.structured_input_signature
    inputs = _match(input_names, list(kwargs))
    outputs = {key: name for name, key in _match(output_names, list(function.structured_outputs)).items()}
    return SavedModelRunner(function, inputs, outputs)


#: distributions whose versions decide an onnx-tf conversion
ONNX_TF_DISTS = ("onnx", "onnx-tf", "tensorflow", "tensorflow-cpu", "keras", "numpy")


def onnx_tf_key(artifact: OnnxArtifact) -> dict[str, str]:
    """Cache key of an onnx-tf SavedModel; the tflite backend builds on the same entry."""
    from ..convert.onnx_tf import converter_revision

    return conversion_key(artifact, "onnx-tf", converter_revision(), ONNX_TF_DISTS)


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    import onnx

    from ..convert import refuse_external_data
    from ..convert.onnx_tf import BACKEND, convert

    refuse_external_data(artifact, converter="onnx-tf", backend=BACKEND, model_name=ctx.model_name)
    return convert_and_load(
        ctx,
        "onnx-tf",
        onnx_tf_key(artifact),
        build=lambda out: convert(onnx.load(str(artifact.path)), out, model_name=ctx.model_name),
        load=lambda path: load_saved_model(path, artifact.input_names, artifact.output_names),
    )
