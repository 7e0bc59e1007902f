"""TFLite with full-integer int8 quantization, calibrated on a representative dataset.

``optimizations=[DEFAULT]``, ``representative_dataset`` = the check's calibration samples
(``pytest_xframe.calibration``: from the input spec by default, or ``calibration=``), and
``target_spec.supported_ops=[TFLITE_BUILTINS_INT8]``: every op runs an int8 kernel, and a model
with an op that has none fails to convert, naming it (no silent float fallback).

Inputs and outputs stay float32 by default (the converter adds quantize/dequantize ops at the
edges). With ``int8_io=True`` float inputs and outputs are int8 in the flatbuffer, as on a
microcontroller; the runner then quantizes each feed with its tensor's scale and zero point and
dequantizes each output, so the comparison with torch stays in float.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SpecError
from ...export.to_onnx import OnnxArtifact
from .. import BuildContext, Prepared
from .layers import layer_report
from .quantized import quantization_count
from .runner import BACKEND as TFLITE
from .runner import FLATBUFFER_NAME, TfliteRunner, load_flatbuffer, prepare_flatbuffer

NAME = "tflite-int8-full"


def _representative(onnx_model: Any, ctx: BuildContext) -> Any:
    """The calibration samples as the converter wants them: dicts by signature input name."""
    from ..tensorflow.onnx_tf import signature_input_names

    if ctx.calibration is None:
        raise SpecError("tflite-int8-full needs calibration samples and got none", model=ctx.model_name, backend=NAME)
    names = signature_input_names(onnx_model)
    samples = ctx.calibration.samples

    def dataset() -> Iterator[dict[str, np.ndarray]]:
        for sample in samples:
            yield {names.get(k, k): v for k, v in sample.items() if k in names}

    return dataset


def _one_shape(ctx: BuildContext) -> None:
    """TFLite's calibrator sizes the model's inputs once, from the first sample: refuse samples of
    several shapes before converting, rather than let it fail on the second."""
    samples = ctx.calibration.samples if ctx.calibration is not None else ()
    shapes = {tuple((k, v.shape) for k, v in sorted(s.items())) for s in samples}
    if len(shapes) > 1:
        raise SpecError(
            f"{NAME} calibrates on one input shape, and the calibration samples have {len(shapes)}",
            model=ctx.model_name, backend=NAME,
            cause="TFLite's calibrator sizes the model's inputs once, from the first sample",
            hint="give samples of one shape (for a Dim, its largest size covers the widest ranges)",
        )


def _configure(onnx_model: Any, ctx: BuildContext) -> Any:
    def configure(converter: Any, tf: Any) -> None:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(onnx_model, ctx)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if ctx.int8_io:
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8

    return configure


def _quantization(detail: Mapping[str, Any]) -> tuple[float, int] | None:
    """(scale, zero point) of an int8/uint8 tensor with per-tensor parameters, else None."""
    scale, zero = detail.get("quantization", (0.0, 0))
    if np.dtype(detail["dtype"]).kind not in "iu" or not scale:
        return None
    return float(scale), int(zero)


@dataclass
class Int8IoRunner:
    """A flatbuffer with int8 inputs and outputs, fed and read in float."""

    inner: TfliteRunner
    #: ONNX input name / signature output key -> (scale, zero point, int dtype)
    quantize: dict[str, tuple[float, int, np.dtype]]
    dequantize: dict[str, tuple[float, int]]

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        kwargs = {}
        for name, (key, dtype) in self.inner.inputs.items():
            value = np.asarray(feeds[name])
            if name in self.quantize and value.dtype.kind == "f":
                scale, zero, qtype = self.quantize[name]
                info = np.iinfo(qtype)
                value = np.clip(np.round(value / scale) + zero, info.min, info.max).astype(qtype)
            kwargs[key] = np.ascontiguousarray(value.astype(dtype, copy=False))
        out = {}
        for key, value in self.inner.signature(**kwargs).items():
            if key in self.inner.outputs:
                name, dtype = self.inner.outputs[key]
                if key in self.dequantize:
                    scale, zero = self.dequantize[key]
                    value = (np.asarray(value, dtype=np.float64) - zero) * scale
                out[name] = np.array(value, dtype=dtype, copy=True)
        return out


def _with_int8_io(runner: TfliteRunner) -> Any:
    """The runner, wrapped to quantize and dequantize where the flatbuffer's I/O is int8."""
    ins, outs = runner.signature.get_input_details(), runner.signature.get_output_details()
    quantize = {}
    for name, (key, dtype) in runner.inputs.items():
        q = _quantization(ins[key])
        if q is not None:
            quantize[name] = (*q, dtype)
    dequantize = {key: q for key in runner.outputs if (q := _quantization(outs[key])) is not None}
    return Int8IoRunner(runner, quantize, dequantize) if quantize or dequantize else runner


def load_case(case_dir: Path, case: Mapping[str, Any]) -> Any:
    """A saved failing case's runner: its flatbuffer, with int8 I/O handled as when it ran."""
    import onnx

    path = case_dir / "converted" / FLATBUFFER_NAME
    return _with_int8_io(load_flatbuffer(path, onnx.load(str(case_dir / "model.onnx"))))


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    from ..onnx_weights import onnx_structure

    _one_shape(ctx)
    onnx_model = onnx_structure(artifact.path)  # its input names only: not its weights
    calibration = ctx.calibration.digest if ctx.calibration is not None else "none"
    target = {"target": "int8-full", "calibration": calibration, "int8_io": str(ctx.int8_io)}
    return prepare_flatbuffer(
        artifact, ctx, backend=NAME, target=target, configure=_configure(onnx_model, ctx),
        load=lambda path, model: _with_int8_io(load_flatbuffer(path, model, ctx.model_name, ctx.threads)),
        install_hint=BACKEND.install_hint,
    )


#: the fp32 tflite route's packages, exports and framework: only the conversion differs
BACKEND = replace(
    TFLITE, name=NAME, prepare=prepare, extra="tflite-int8-full", precision="int8", layer_report=layer_report, load_case=load_case, calibrated=True,
    quantization_count=quantization_count,
)
