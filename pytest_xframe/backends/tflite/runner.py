"""TFLite through the TensorFlow route: ONNX -> onnx-tf SavedModel -> TFLiteConverter -> LiteRT.

The SavedModel is the tensorflow backend's (same cache entry, so a run with both backends
converts once); ``tf.lite.TFLiteConverter.from_saved_model`` turns it into a flatbuffer (builtin
ops only: the standalone LiteRT interpreter has no TensorFlow "select" ops), which
``ai_edge_litert.interpreter.Interpreter`` runs through its ``serving_default`` signature runner:

* inputs and outputs are matched by name (signature outputs come back as a key-sorted dict,
  not in ONNX order);
* feeds are cast to the dtypes the flatbuffer declares (int64 token ids -> int32 where the
  converter narrowed them; a value that does not fit raises instead of wrapping around), and
  outputs are cast back to the ONNX dtype;
* the signature runner resizes inputs and re-allocates tensors on every call, so dynamic
  dimensions (a batch ``Dim``) work.

The interpreter, the feed casting and :class:`TfliteRunner` are shared with the ``litert-torch``
backend (:mod:`pytest_xframe.backends.litert_torch.runner`), which makes its flatbuffer from the torch module instead.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import BackendUnavailable, ConversionError
from ...export.to_onnx import OnnxArtifact
from ...identity import source_revision
from .. import Backend, BuildContext, Prepared, convert_and_load
from ..tensorflow.runner import ONNX_TF_DISTS, limit_tensorflow, match_names, onnx_tf_key

NAME = "tflite"
#: exports worth trying when the converter fails on one (``check`` drops those already tried)
_ROUTES: tuple[tuple[str, int | None], ...] = (("dynamo", None), ("torchscript", 17), ("torchscript", 13))
SIGNATURE = "serving_default"
FLATBUFFER_NAME = "model.tflite"


def _revision() -> str:
    return source_revision(Path(__file__))


def _cast_feed(value: np.ndarray, dtype: np.dtype, name: str) -> np.ndarray:
    if value.dtype == dtype:
        return value
    if value.dtype.kind in "iu" and dtype.kind in "iu" and value.size:
        info = np.iinfo(dtype)
        low, high = value.min(), value.max()
        if low < info.min or high > info.max:
            raise ValueError(
                f"input {name!r} holds values in [{low}, {high}], outside {dtype} which the TFLite model declares"
            )
    return value.astype(dtype)


#: LiteRT kernels' refusals at run time (the kernel's source and check in the message, as LiteRT
#: 2.x words them) and what the user can do about each
KERNEL_REFUSALS = (
    (
        re.compile(r"kernels/div\.cc:\d+ data\[i\] != zero_point"),
        "LiteRT's int8 DIV kernel refuses a divisor that quantizes to its zero point: the divisor (often "
        "a normalisation's norm, as RMSNorm's rsqrt lowers to 1 / Sqrt) is below half a step of its int8 "
        "scale, so the model does not run in full-integer int8; judge it on tflite-int8 (dynamic range: "
        "activations stay float) or tflite-fp16",
    ),
)


@dataclass
class TfliteRunner:
    """One LiteRT interpreter and its signature runner, reused for every example."""

    interpreter: Any
    signature: Any
    #: ONNX input name -> (signature input key, dtype the flatbuffer declares)
    inputs: dict[str, tuple[str, np.dtype]]
    #: signature output key -> (ONNX output name, ONNX dtype)
    outputs: dict[str, tuple[str, np.dtype]]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        kwargs = {
            key: np.ascontiguousarray(_cast_feed(np.asarray(feeds[name]), dtype, name))
            for name, (key, dtype) in self.inputs.items()
        }
        result = self.signature(**kwargs)
        out = {}
        for key, value in result.items():
            if key in self.outputs:
                name, dtype = self.outputs[key]
                out[name] = np.array(value, dtype=dtype, copy=True)
        return out

    def explain(self, exc: BaseException) -> str | None:
        """What to do about a kernel's refusal (``KERNEL_REFUSALS``); None for other errors."""
        return next((hint for pattern, hint in KERNEL_REFUSALS if pattern.search(str(exc))), None)


def open_signature(path: Path, threads: int | None = None) -> tuple[Any, Any]:
    """A LiteRT interpreter on the flatbuffer at ``path`` (``threads`` CPU threads, None for its
    default) and its ``serving_default`` signature runner (the only signature, whatever its name)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    signatures = interpreter.get_signature_list()
    key = SIGNATURE if SIGNATURE in signatures else next(iter(signatures))
    return interpreter, interpreter.get_signature_runner(key)


def load_flatbuffer(path: Path, onnx_model: Any, model_name: str | None = None, threads: int | None = None) -> TfliteRunner:
    import onnx.helper

    from ..tensorflow.onnx_tf import signature_input_names

    interpreter, runner = open_signature(path, threads)
    input_details = runner.get_input_details()
    output_details = runner.get_output_details()
    initialized = {init.name for init in onnx_model.graph.initializer}
    onnx_inputs = [vi.name for vi in onnx_model.graph.input if vi.name not in initialized]
    in_map = match_names(onnx_inputs, list(input_details), signature_input_names(onnx_model))
    out_map = match_names([vi.name for vi in onnx_model.graph.output], list(output_details))
    onnx_dtypes = {
        vi.name: np.dtype(onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
        for vi in onnx_model.graph.output
    }
    missing = [n for n in onnx_inputs if n not in in_map]
    if missing or len(in_map) != len(input_details):
        raise ConversionError(
            "the TFLite model's inputs do not match the ONNX inputs",
            model=model_name,
            backend=NAME,
            cause=f"ONNX {onnx_inputs}, TFLite signature {sorted(input_details)}",
        )
    return TfliteRunner(
        interpreter,
        runner,
        {name: (k, np.dtype(input_details[k]["dtype"])) for name, k in in_map.items()},
        {k: (name, onnx_dtypes[name]) for name, k in out_map.items()},
    )


def _converter_error(exc: BaseException, model_name: str) -> ConversionError:
    """One readable line out of the MLIR converter's message: the op and what it objects to."""
    text = str(exc)
    select = re.search(r"TF Select ops: ([^\n]+)", text)
    if select:
        ops = select.group(1).strip()
        return ConversionError.from_exception(
            exc,
            f"TFLite has no builtin kernel for {ops} (in the onnx-tf SavedModel)",
            op_type=ops.split(",")[0].strip(),
            model=model_name,
            backend=NAME,
            cause=f"the converter would need TensorFlow 'select' ops ({ops}), which the LiteRT interpreter does not include",
            hint="try the tensorflow or onnx2tf backend", routes=_ROUTES,
        )
    line = next((ln.strip() for ln in text.splitlines() if "error:" in ln), text.strip().splitlines()[0] if text.strip() else "")
    op = re.search(r'fused\["([A-Za-z0-9_.]+):', line)
    message = line.split("error:", 1)[-1].strip()
    if message.startswith("loc("):  # loc(callsite(fused[...] at ...))): 'tfl.squeeze' op ...
        message = re.sub(r"^loc\(.*?\)+: ", "", message, count=1)
    return ConversionError.from_exception(
        exc,
        "TFLiteConverter failed on the onnx-tf SavedModel" + (f" at a TensorFlow {op.group(1)} op" if op else ""),
        op_type=op.group(1) if op else None,
        model=model_name,
        backend=NAME,
        cause=f"{type(exc).__name__}: {message[:300]}",
        hint="try the tensorflow or onnx2tf backend", routes=_ROUTES,
    )


#: fn(converter, tf) setting a TFLiteConverter's options before it converts
Configure = Callable[[Any, Any], None]


def _to_flatbuffer(
    saved_model: Path, out: Path, model_name: str, configure: Configure | None = None, backend: str = NAME, buffer_offsets: bool = False,
) -> None:
    import tensorflow as tf

    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if configure is not None:  # a reduced-precision target sets its optimizations
            configure(converter, tf)
        if buffer_offsets:
            # weights after the flatbuffer, found by 64-bit offsets: models over its 2 GiB limit.
            # A private attribute of TFLiteConverter, checked against TensorFlow 2.21 (its
            # ConverterFlags field use_buffer_offset); LiteRT's interpreter reads such files.
            converter._experimental_use_buffer_offset = True
        with warnings.catch_warnings():  # restores the filter list on exit
            # a calibrating converter runs TensorFlow's own tf.lite.Interpreter, which warns of its
            # deprecation: TensorFlow's to act on, not the user's (checked against TensorFlow 2.21)
            warnings.filterwarnings("ignore", message=r"\s*Warning: tf\.lite\.Interpreter is deprecated", category=UserWarning)
            flatbuffer = converter.convert()
    except Exception as exc:  # the converter raises ConverterError and others
        error = _converter_error(exc, model_name)
        error.backend = backend
        raise error from exc
    (out / FLATBUFFER_NAME).write_bytes(flatbuffer)


#: bytes under FlatBuffers' limit kept for the model's structure (ops, tensors, signature): a
#: model whose files reach ``FLATBUFFER_LIMIT - FLATBUFFER_MARGIN`` has its weights placed after
#: the flatbuffer
FLATBUFFER_MARGIN = 2**27


def needs_buffer_offsets(artifact: OnnxArtifact) -> bool:
    """Whether the model's weights (the export's files: the fp32 size, an upper bound for every
    target) come too near FlatBuffers' 2 GiB limit to sit inside the flatbuffer."""
    from .. import conversion
    from ..onnx_weights import file_bytes

    return file_bytes(artifact.files) >= conversion.FLATBUFFER_LIMIT - FLATBUFFER_MARGIN


def prepare_flatbuffer(
    artifact: OnnxArtifact, ctx: BuildContext, *, backend: str = NAME, install_hint: str | None = None,
    target: dict[str, str] | None = None, configure: Configure | None = None, load: Callable[[Path, Any], Any] | None = None,
) -> Prepared:
    """The onnx-tf SavedModel (one cache entry, shared with the tensorflow backend and every TFLite
    target) converted to a flatbuffer (its own entry, keyed by the SavedModel's key + ``target``);
    weights past the flatbuffer's limit go after it (buffer offsets)."""
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError as exc:
        raise BackendUnavailable(
            f"{backend} backend not installed", model=ctx.model_name, backend=backend, cause=str(exc),
            hint=install_hint or BACKEND.install_hint,
        ) from exc
    from ..onnx_weights import onnx_structure
    from ..tensorflow.onnx_tf import convert_file

    offsets = needs_buffer_offsets(artifact)
    saved_model_key = onnx_tf_key(artifact)  # the tensorflow backend's entry: both share one SavedModel
    key = {**saved_model_key, "converter": "onnx-tf+tflite", "tflite_revision": _revision(), "buffer_offsets": str(offsets), **(target or {})}

    def build(out: Path) -> None:
        saved = ctx.cache.get_or_build(
            "onnx-tf", saved_model_key, lambda d: convert_file(artifact.path, d, model_name=ctx.model_name, scratch=artifact.path.parent)
        )
        try:
            _to_flatbuffer(saved.path, out, ctx.model_name, configure, backend, offsets)
        finally:
            if ctx.cache.root is None:  # an uncached SavedModel is a scratch dir only we know of
                shutil.rmtree(saved.path, ignore_errors=True)

    model = onnx_structure(artifact.path)
    loader = load or (lambda path, m: load_flatbuffer(path, m, ctx.model_name, ctx.threads))
    return convert_and_load(ctx, "tflite", key, build, load=lambda path: loader(path / FLATBUFFER_NAME, model))


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    return prepare_flatbuffer(artifact, ctx)


def load_case(case_dir: Path, case: Mapping[str, Any]) -> TfliteRunner:
    """A saved failing case's runner: its flatbuffer, names matched against its ONNX model."""
    import onnx

    return load_flatbuffer(case_dir / "converted" / FLATBUFFER_NAME, onnx.load(str(case_dir / "model.onnx")))


BACKEND = Backend(
    name=NAME,
    prepare=prepare,
    modules=("tensorflow", "onnx_tf", "ai_edge_litert"),
    extra="tflite",
    exports=_ROUTES,
    framework=("tensorflow",),
    load_case=load_case,
    distributions=(*ONNX_TF_DISTS, "ai-edge-litert"),
    limit_threads=limit_tensorflow,
)
