"""TensorFlow through onnx-tf: convert to a SavedModel, load it back, call it as a deployment would."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...export.to_onnx import OnnxArtifact
from .. import Backend, BuildContext, Prepared, conversion_key, convert_and_load

if TYPE_CHECKING:
    import onnx


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


def match_names(onnx_names: list[str] | tuple[str, ...], keys: list[str], preferred: Mapping[str, str] | None = None) -> dict[str, str]:
    """ONNX name -> signature key: the ``preferred`` key, the name itself, or the sanitized form
    onnx-tf and TensorFlow may use (also for TFLite signatures made from such a SavedModel).
    One key per name: a sanitized form never takes a key another name matches exactly ("a.b"
    and "a_b" are two outputs), so an output it cannot tell apart is missing, never another's."""
    mapping: dict[str, str] = {}
    for name in onnx_names:
        exact = next((c for c in ((preferred or {}).get(name), name) if c in keys), None)
        if exact is not None:
            mapping[name] = exact
    taken = set(mapping.values())
    by_sanitized: dict[str, list[str]] = {}
    for k in keys:
        if k not in taken:
            by_sanitized.setdefault(_sanitize(k), []).append(k)
    for name in onnx_names:
        if name not in mapping:
            found = by_sanitized.get(_sanitize(name), [])
            if len(found) == 1 and found[0] not in taken:
                mapping[name] = found[0]
                taken.add(found[0])
    return mapping


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


def load_saved_model(path: Path, input_names: tuple[str, ...], output_names: tuple[str, ...]) -> SavedModelRunner:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    function = loaded.signatures["serving_default"]
    function._xframe_owner = loaded  # keep the trackable alive as long as the function
    _, kwargs = function.structured_input_signature
    inputs = match_names(input_names, list(kwargs))
    outputs = {key: name for name, key in match_names(output_names, list(function.structured_outputs)).items()}
    return SavedModelRunner(function, inputs, outputs)


def limit_tensorflow(count: int | None) -> bool:
    """Size TensorFlow's pools; False when its runtime was already started (it then keeps its own)."""
    if count is None:
        return True
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(count)
        tf.config.threading.set_inter_op_parallelism_threads(count)
    except RuntimeError:  # "... cannot be modified after initialization"
        return False
    return True


#: distributions whose versions decide an onnx-tf conversion
ONNX_TF_DISTS = ("onnx", "onnx-tf", "tensorflow", "tensorflow-cpu", "keras", "numpy")


def onnx_tf_key(artifact: OnnxArtifact) -> dict[str, str]:
    """Cache key of an onnx-tf SavedModel; the tflite backend builds on the same entry."""
    from .onnx_tf import converter_revision

    return conversion_key(artifact, "onnx-tf", converter_revision(), ONNX_TF_DISTS)


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    from .onnx_tf import convert_file

    return convert_and_load(
        ctx,
        "onnx-tf",
        onnx_tf_key(artifact),
        build=lambda out: convert_file(artifact.path, out, model_name=ctx.model_name, scratch=artifact.path.parent),
        load=lambda path: load_saved_model(path, artifact.input_names, artifact.output_names),
    )


def load_case(case_dir: Path, case: Mapping[str, Any]) -> SavedModelRunner:
    """A saved failing case's runner: its SavedModel."""
    return load_saved_model(case_dir / "converted", tuple(case["input_names"]), tuple(case["output_names"]))


def run_intermediates(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], workdir: Path, model_name: str) -> dict[str, np.ndarray]:
    """Convert ``model`` (its intermediate values exposed as graph outputs) with onnx-tf into a new
    ``workdir/divergence_saved_model_*`` and run it: every output by ONNX name."""
    from .onnx_tf import convert, signature_input_names

    graph = model.graph
    initialized = {t.name for t in graph.initializer}
    input_names = tuple(i.name for i in graph.input if i.name not in initialized)
    Path(workdir).mkdir(parents=True, exist_ok=True)
    out_dir = Path(tempfile.mkdtemp(prefix="divergence_saved_model_", dir=workdir))
    convert(model, out_dir, model_name=model_name)
    runner = load_saved_model(out_dir, input_names, tuple(o.name for o in graph.output))
    _, kwargs = runner.function.structured_input_signature
    signature = signature_input_names(model)
    mapped = {n: signature.get(n, n) for n in input_names if signature.get(n, n) in kwargs}
    if len(mapped) == len(input_names):
        runner.inputs = mapped
    return runner.run({n: np.asarray(feeds[n]) for n in input_names})


BACKEND = Backend(
    name="tensorflow",
    prepare=prepare,
    modules=("tensorflow", "onnx_tf"),
    extra="tf",
    exports=(("dynamo", None), ("torchscript", 17), ("torchscript", 13)),
    framework=("tensorflow",),
    load_case=load_case,
    run_intermediates=run_intermediates,
    distributions=ONNX_TF_DISTS,
    limit_threads=limit_tensorflow,
)
