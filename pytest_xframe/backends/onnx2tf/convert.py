"""ONNX -> TensorFlow SavedModel through onnx2tf (PINTO0309), quietly, offline, process state kept.

onnx2tf builds a tf_keras model whose image-like tensors are channels-last. What we do about it:

* Inputs of rank 3-5 are kept in the ONNX (torch) layout with onnx2tf's
  ``keep_ncw_or_nchw_or_ncdhw_input_names``; onnx2tf then transposes inside the model.
* Outputs have no such option in onnx2tf 1.29: the layout onnx2tf reports per output
  (``model.onnx_output_layouts``) is written to ``xframe_onnx2tf.json`` beside the SavedModel and
  the runner transposes channels-last outputs back (``to_onnx_layout``).

What onnx2tf would otherwise do to the process, and how it is avoided:

* At import it raises the recursion limit to 2**31-1, adds "ignore" warning filters, sets
  ``TF_USE_LEGACY_KERAS=1`` / ``TF_CPP_MIN_LOG_LEVEL=3``, seeds ``random``, numpy and TensorFlow,
  enables TF op determinism and lowers the TF / absl log levels. :func:`load` imports it under
  :func:`_kept_process_state`, which puts every one of these back.
* While converting it re-seeds ``random``/numpy (each op module does at import) and sets
  ``CUDA_VISIBLE_DEVICES=-1``: :func:`convert` runs under the same guard.
* For models whose inputs all look like small batches of 3-channel images it downloads a
  calibration file from GitHub (``download_test_image_data``), even for a float32 conversion and
  with no option to skip it (only a copy of that file in the current directory would). We
  replace that function, for the conversion only, by deterministic local data of the same shape:
  onnx2tf uses it only as sample input for its own validation inference.
* It prints progress; ``non_verbose=True`` keeps only errors, and stdout/stderr are captured into
  the ConversionError's ``details``. It calls ``sys.exit(1)`` on some errors: caught too.
* It may rewrite the ONNX file it is given (shape inference); it gets a private copy.
* onnxsim is run as a subprocess unless ``not_use_onnxsim=True`` (onnxsim is not installed).
* Its own saving writes float32 and float16 .tflite files too: we pass ``disable_model_save=True``
  and save the returned model ourselves (tf_keras ``ExportArchive``: variables + one signature).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import random
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ...errors import ConversionError, first_line
from ...identity import dist_version
from ..conversion import import_converter

if TYPE_CHECKING:
    import onnx

__all__ = [
    "BACKEND",
    "METADATA_NAME",
    "convert",
    "converter_revision",
    "load",
    "read_metadata",
    "to_onnx_layout",
]

BACKEND = "onnx2tf"
METADATA_NAME = "xframe_onnx2tf.json"
SIGNATURE = "serving_default"
_INSTALL_HINT = (
    "pip install 'pytest-xframe[onnx2tf]' && pip install --no-deps onnx2tf==1.29.24 tf_keras "
    "(onnx2tf pins old numpy/onnx/tensorflow: install it without dependencies)"
)
_ALTERNATIVES = "try the tensorflow (onnx-tf) or tflite backend, or compare against onnxruntime only"
#: environment variables onnx2tf sets at import or while converting
_ENV_KEYS = ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL", "CUDA_VISIBLE_DEVICES")
#: shape of onnx2tf's calibration sample (20 RGB images, 128x128, NHWC, float32 in [0, 1])
_CALIBRATION_SHAPE = (20, 128, 128, 3)

_lock = threading.Lock()
_module: Any = None


@contextlib.contextmanager
def _kept_process_state() -> Iterator[None]:
    """Undo onnx2tf's changes to process-wide state made inside the block (see module doc)."""
    import numpy as np
    import tensorflow as tf  # imported first so TF reads the environment the user gave it
    from absl import logging as absl_logging
    from tensorflow.python.autograph.utils import ag_logging
    from tensorflow.python.eager import context
    from tensorflow.python.framework import config as tf_config

    recursion = sys.getrecursionlimit()
    env = {k: os.environ.get(k) for k in _ENV_KEYS}
    py_random = random.getstate()
    np_random = np.random.get_state()
    tf_seed = context.global_seed()
    determinism = tf_config.is_op_determinism_enabled()
    tf_log_level = tf.get_logger().level
    absl_level = absl_logging.get_verbosity()
    ag_level = ag_logging.get_verbosity()
    try:
        with warnings.catch_warnings():  # restores the filter list on exit
            yield
    finally:
        sys.setrecursionlimit(recursion)
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        random.setstate(py_random)
        np.random.set_state(np_random)
        if context.global_seed() != tf_seed:
            context.set_global_seed(tf_seed)
        if tf_config.is_op_determinism_enabled() != determinism:
            (tf_config.enable_op_determinism if determinism else tf_config.disable_op_determinism)()
        tf.get_logger().setLevel(tf_log_level)
        absl_logging.set_verbosity(absl_level)
        ag_logging.set_verbosity(ag_level)


def load(model_name: str | None = None) -> Any:
    """Import onnx2tf once without keeping its changes to process state; its ``convert`` module.

    BackendUnavailable when it (or what it imports) is not installed; ConversionError when it is
    installed but fails to import (typically a dependency version clash).
    """
    global _module
    with _lock:
        if _module is not None:
            return _module
        def importer() -> Any:
            import tensorflow  # noqa: F401

            with _kept_process_state():
                import onnx2tf  # noqa: F401
                import onnx2tf.onnx2tf as module
            return module

        module = import_converter(importer, name="onnx2tf", backend=BACKEND, model_name=model_name, hint=_INSTALL_HINT)
        _module = module
        return module


def converter_revision() -> str:
    """A short hash of this module and the runner: part of the cache key of conversions."""
    from ...identity import source_revision

    here = pathlib.Path(__file__).resolve()
    return source_revision(here, here.parent / "runner.py")


def refuse_whole_model_limit(artifact: Any, model_name: str | None) -> None:
    """TooLargeError for a model whose initializers reach 2 GiB: onnx2tf then switches to its
    auto-split mode and converts the model as separate partitions (each its own TensorFlow
    model), not as the one model a parity check compares."""
    from .. import conversion
    from ..onnx_weights import file_bytes

    conversion.refuse_over(
        file_bytes(artifact.files), conversion.PROTOBUF_LIMIT, what="weights", converter="onnx2tf", backend=BACKEND,
        model_name=model_name, limit_name="the size at which onnx2tf splits a model",
        cause="onnx2tf converts a model whose initializers pass 2 GiB (protobuf's limit) only split into "
        "partitions, each its own model (its auto-split mode), not as the one model a parity check runs",
        hint="check it on the tensorflow or tflite backend (weights as variables / after the flatbuffer), or against onnxruntime",
    )


def _offline_calibration_data() -> Any:
    """Stand-in for onnx2tf's ``download_test_image_data``: same shape and range, no network."""
    import numpy as np

    return np.random.default_rng(0).uniform(0.0, 1.0, size=_CALIBRATION_SHAPE).astype(np.float32)


@contextlib.contextmanager
def _offline(module: Any) -> Iterator[None]:
    original = module.download_test_image_data
    module.download_test_image_data = _offline_calibration_data
    try:
        yield
    finally:
        module.download_test_image_data = original


def _first_line(message: str) -> str:
    """The line that says what went wrong; tf_keras's 'Exception encountered when calling layer'
    wrapper line is skipped, the real message follows it."""
    return first_line(message, skip=("Exception encountered when calling layer",))


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def _dims(value_info: Any) -> list[int | None]:
    return [d.dim_value if d.HasField("dim_value") else None for d in value_info.type.tensor_type.shape.dim]


def _np_dtype(elem_type: int) -> str:
    import onnx.helper

    return str(__import__("numpy").dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))


def _graph_io(model: onnx.ModelProto) -> tuple[list[Any], list[Any]]:
    initialized = {init.name for init in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in initialized], list(model.graph.output)


def _channels_last_perm(rank: int) -> list[int]:
    """NC... -> N...C, e.g. [0, 2, 3, 1] for rank 4."""
    return [0, *range(2, rank), 1]


def _fits(shape: list[int | None], onnx_dims: list[int | None]) -> bool:
    return len(shape) == len(onnx_dims) and all(a is None or b is None or a == b for a, b in zip(shape, onnx_dims))


def _error(exc: BaseException, model: onnx.ModelProto, model_name: str, log: str) -> ConversionError:
    """ConversionError naming the ONNX node onnx2tf failed on (it tags exceptions with it)."""
    node_name = getattr(exc, "onnx_op_name", None)
    op_type = None
    if node_name:
        op_type = next((n.op_type for n in model.graph.node if n.name == node_name), None)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if isinstance(exc, SystemExit):
        errors = [line for line in _strip_ansi(log).splitlines() if "ERROR" in line]
        cause = _first_line(errors[-1] if errors else f"onnx2tf called sys.exit({exc.code})")
    else:
        cause = f"{type(exc).__name__}: {_first_line(_strip_ansi(str(exc)))}"
    op_label = f"{op_type} " if op_type else ""
    where = f"node '{node_name}', " if node_name else ""
    return ConversionError.from_exception(
        exc,
        f"onnx2tf failed converting {op_label or 'the model '}({where}model opset {opset})",
        op_type=op_type,
        node_name=node_name,
        model=model_name,
        backend=BACKEND,
        cause=cause,
        hint=_ALTERNATIVES,
        log=_strip_ansi(log),
    )


def convert(onnx_model: onnx.ModelProto, out_dir: pathlib.Path, *, model_name: str) -> dict[str, Any]:
    """Convert ``onnx_model`` to a SavedModel in ``out_dir`` plus ``xframe_onnx2tf.json``.

    The SavedModel's ``serving_default`` signature takes ``input_<i>`` and returns
    ``output_<i>``, numbered in ONNX graph order; the JSON says which ONNX name each is, the
    layout each has (see :func:`read_metadata`), and is returned too. Raises BackendUnavailable
    when onnx2tf is not installed, ConversionError when it fails.
    """
    import onnx

    module = load(model_name)
    inputs, outputs = _graph_io(onnx_model)
    keep = [vi.name for vi in inputs if 3 <= len(_dims(vi)) <= 5]
    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="xframe-onnx2tf-") as scratch:
        onnx_path = pathlib.Path(scratch) / "model.onnx"
        onnx.save(onnx_model, str(onnx_path))  # onnx2tf may rewrite the file it is given
        try:
            with _kept_process_state(), _offline(module), contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                keras_model = module.convert(
                    input_onnx_file_path=str(onnx_path),
                    output_folder_path=str(pathlib.Path(scratch) / "out"),
                    keep_ncw_or_nchw_or_ncdhw_input_names=keep or None,
                    not_use_onnxsim=True,
                    disable_model_save=True,
                    non_verbose=True,
                    verbosity="error",
                )
                metadata = _describe(keras_model, inputs, outputs, keep)
                _save(keras_model, out_dir)
        except ConversionError as exc:
            exc.model = exc.model or model_name
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as exc:
            raise _error(exc, onnx_model, model_name, log.getvalue()) from exc
    metadata["onnx2tf"] = dist_version("onnx2tf") or "absent"
    (out_dir / METADATA_NAME).write_text(json.dumps(metadata, indent=1, sort_keys=True), encoding="utf-8")
    return metadata


def _describe(keras_model: Any, inputs: list[Any], outputs: list[Any], keep: list[str]) -> dict[str, Any]:
    """Which ONNX tensor each signature argument / result is, and in which layout."""
    if len(keras_model.inputs) != len(inputs) or len(keras_model.outputs) != len(outputs):
        raise ConversionError(
            "onnx2tf produced a model with a different number of inputs or outputs",
            backend=BACKEND,
            cause=f"ONNX {len(inputs)} in / {len(outputs)} out, TensorFlow {len(keras_model.inputs)} in / {len(keras_model.outputs)} out",
            hint=_ALTERNATIVES,
        )
    layouts = getattr(keras_model, "onnx_output_layouts", {}) or {}
    described_inputs = []
    for i, (vi, tensor) in enumerate(zip(inputs, keras_model.inputs)):
        onnx_dims = _dims(vi)
        tf_dims = list(tensor.shape)
        perm = None
        if not (vi.name in keep and _fits(tf_dims, onnx_dims)) and 3 <= len(onnx_dims) <= 5:
            moved = [onnx_dims[p] for p in _channels_last_perm(len(onnx_dims))]
            if _fits(tf_dims, moved) and not _fits(tf_dims, onnx_dims):
                perm = _channels_last_perm(len(onnx_dims))
        if perm is None and not _fits(tf_dims, onnx_dims):
            raise ConversionError(
                f"onnx2tf changed the shape of input {vi.name!r}",
                backend=BACKEND,
                cause=f"ONNX {onnx_dims}, TensorFlow {tf_dims}",
                hint=_ALTERNATIVES,
            )
        described_inputs.append(
            {"onnx": vi.name, "key": f"input_{i}", "perm": perm, "dtype": _np_dtype(vi.type.tensor_type.elem_type)}
        )
    described_outputs = []
    for i, vi in enumerate(outputs):
        described_outputs.append(
            {
                "onnx": vi.name,
                "key": f"output_{i}",
                "channels_last": bool(layouts.get(vi.name, False)),
                "shape": _dims(vi),
                "dtype": _np_dtype(vi.type.tensor_type.elem_type),
            }
        )
    return {"signature": SIGNATURE, "inputs": described_inputs, "outputs": described_outputs}


def _save(keras_model: Any, out_dir: pathlib.Path) -> None:
    """Variables and one ``serving_default`` signature (``input_<i>`` -> ``{output_<i>: ...}``)."""
    import tensorflow as tf
    import tf_keras

    specs = [tf.TensorSpec(t.shape, t.dtype, name=f"input_{i}") for i, t in enumerate(keras_model.inputs)]
    n_out = len(keras_model.outputs)

    def serve(*args: Any) -> dict[str, Any]:
        result = keras_model(list(args))
        values = list(result) if isinstance(result, (list, tuple)) else [result]
        return {f"output_{i}": tf.identity(v) for i, v in enumerate(values[:n_out])}

    archive = tf_keras.export.ExportArchive()
    archive.track(keras_model)
    archive.add_endpoint(name=SIGNATURE, fn=serve, input_signature=specs)
    archive.write_out(str(out_dir))


def read_metadata(path: pathlib.Path) -> dict[str, Any]:
    """The JSON :func:`convert` wrote beside the SavedModel in ``path``."""
    return json.loads((pathlib.Path(path) / METADATA_NAME).read_text(encoding="utf-8"))


def to_onnx_layout(value: Any, output: dict[str, Any]) -> Any:
    """Move a channels-last output back to the ONNX layout.

    Trusts onnx2tf's per-output layout flag, but checks it against the ONNX output's static
    dims: when only the other layout fits them, that one is used.
    """
    import numpy as np

    value = np.asarray(value)
    rank = value.ndim
    onnx_dims = output.get("shape") or [None] * rank
    if rank < 3 or len(onnx_dims) != rank:
        return value
    back = np.transpose(value, np.argsort(_channels_last_perm(rank)))
    raw_fits, back_fits = _fits(list(value.shape), onnx_dims), _fits(list(back.shape), onnx_dims)
    if output.get("channels_last"):
        return back if back_fits or not raw_fits else value
    return value if raw_fits or not back_fits else back
