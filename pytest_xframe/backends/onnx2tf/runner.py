"""TensorFlow through onnx2tf: convert to a SavedModel, load it back, compare in the ONNX layout.

onnx2tf makes image-like tensors channels-last. Inputs stay in the ONNX layout at conversion
(see :mod:`pytest_xframe.backends.onnx2tf.convert`); outputs it made channels-last are transposed back
here, and outputs whose dtype onnx2tf narrowed are cast back to the ONNX dtype so that the
comparison shows values, not a dtype mismatch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...export.to_onnx import OnnxArtifact
from .. import Backend, BuildContext, Prepared, conversion_key, convert_and_load
from ..tensorflow.runner import limit_tensorflow

#: distributions whose versions decide an onnx2tf conversion
DISTS = ("onnx2tf", "onnx", "onnx_graphsurgeon", "tensorflow", "tensorflow-cpu", "tf_keras", "numpy")


@dataclass
class Onnx2tfRunner:
    """Calls ``serving_default`` of an onnx2tf SavedModel for every example."""

    function: Any
    metadata: dict[str, Any]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import tensorflow as tf

        from .convert import to_onnx_layout

        kwargs = {}
        for spec in self.metadata["inputs"]:
            value = np.asarray(feeds[spec["onnx"]])
            if spec["perm"]:
                value = np.transpose(value, spec["perm"])
            declared = self._input_dtypes.get(spec["key"])
            if declared is not None and value.dtype != declared:
                value = value.astype(declared)
            kwargs[spec["key"]] = tf.constant(value)
        result = self.function(**kwargs)
        out = {}
        for spec in self.metadata["outputs"]:
            if spec["key"] not in result:
                continue
            value = to_onnx_layout(result[spec["key"]].numpy(), spec)
            if str(value.dtype) != spec["dtype"]:
                value = value.astype(spec["dtype"])
            out[spec["onnx"]] = value
        return out

    def __post_init__(self) -> None:
        _, kwargs = self.function.structured_input_signature
        self._input_dtypes = {k: np.dtype(v.dtype.as_numpy_dtype) for k, v in kwargs.items()}


def load_saved_model(path: Path) -> Onnx2tfRunner:
    import tensorflow as tf

    from .convert import read_metadata

    metadata = read_metadata(path)
    loaded = tf.saved_model.load(str(path))
    function = loaded.signatures[metadata["signature"]]
    function._xframe_owner = loaded  # keep the trackable alive as long as the function
    return Onnx2tfRunner(function, metadata)


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    import onnx

    from .convert import convert, converter_revision, refuse_whole_model_limit

    refuse_whole_model_limit(artifact, ctx.model_name)

    return convert_and_load(
        ctx,
        "onnx2tf",
        conversion_key(artifact, "onnx2tf", converter_revision(), DISTS),
        build=lambda out: convert(onnx.load(str(artifact.path)), out, model_name=ctx.model_name),
        load=load_saved_model,
    )


def load_case(case_dir: Path, case: Mapping[str, Any]) -> Onnx2tfRunner:
    """A saved failing case's runner: its onnx2tf SavedModel."""
    return load_saved_model(case_dir / "converted")


BACKEND = Backend(
    name="onnx2tf",
    prepare=prepare,
    # onnx2tf itself is installed with --no-deps (it pins old numpy/onnx/tensorflow)
    modules=("tensorflow", "onnx2tf", "tf_keras", "onnx_graphsurgeon", "sng4onnx", "psutil", "ai_edge_litert"),
    extra="onnx2tf",
    exports=(("torchscript", 17), ("dynamo", None), ("torchscript", 13)),
    framework=("tensorflow",),
    load_case=load_case,
    distributions=DISTS,
    limit_threads=limit_tensorflow,
)
