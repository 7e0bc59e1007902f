"""ONNX Runtime's own int8 quantization (``onnxruntime.quantization``), run on the CPU provider.

Which quantizer runs follows ONNX Runtime's advice ("dynamic quantization for RNNs and
transformer-based models, static quantization for CNN models"): a graph with a ``Conv`` is
quantized statically in the QDQ format (int8 activations and per-channel int8 weights),
calibrated (MinMax) on the check's calibration samples; any other graph with ``quantize_dynamic``
(int8 weights, activations quantized per call, no calibration). The quantized model is a cache
entry keyed by the ONNX model, the mode, the calibration samples' digest and the versions.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import ConversionError
from ...export.to_onnx import OnnxArtifact
from .. import Backend, BuildContext, Prepared, conversion_key
from ..quantization import QuantizationCount
from .quantized import count
from .runner import make_session

NAME = "onnxruntime-int8"
QUANTIZED_NAME = "model.int8.onnx"
#: bump when the quantization settings below change
REVISION = "1"


#: distributions whose versions decide a quantized model
DISTS = ("onnx", "onnxruntime", "numpy")

def mode(model: Any) -> str:
    """"static" (QDQ, calibrated) for a graph with a convolution, else "dynamic"."""
    return "static" if any(node.op_type == "Conv" for node in model.graph.node) else "dynamic"


class _Reader:
    """The calibration samples as ``onnxruntime.quantization.CalibrationDataReader`` wants them."""

    def __init__(self, samples: tuple[dict[str, np.ndarray], ...], inputs: set[str]) -> None:
        self._samples: Iterator[dict[str, np.ndarray]] = iter([{k: v for k, v in s.items() if k in inputs} for s in samples])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._samples, None)


def _quantization(model_name: str) -> Any:
    """``onnxruntime.quantization``, or a ConversionError naming the mismatch: recent onnxruntime
    releases read onnx names (``TensorProto.INT4``) that an older onnx lacks, at import time."""
    try:
        from onnxruntime import quantization
    except (ImportError, AttributeError) as exc:
        import onnx

        raise ConversionError(
            "onnxruntime.quantization does not import beside this onnx",
            model=model_name, backend=NAME, cause=f"{type(exc).__name__}: {exc} (onnx {onnx.__version__})",
            hint="pip install -U onnx (onnxruntime's quantization needs the onnx it was built against)",
        ) from None
    return quantization


def _quantize(source: Path, out: Path, model: Any, ctx: BuildContext) -> None:
    q = _quantization(ctx.model_name)

    target = out / QUANTIZED_NAME
    try:
        if mode(model) == "static":
            inputs = {i.name for i in model.graph.input}
            samples = ctx.calibration.samples if ctx.calibration is not None else ()
            q.quantize_static(
                str(source), str(target), _Reader(samples, inputs), quant_format=q.QuantFormat.QDQ,
                activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8, per_channel=True,
            )
        else:
            q.quantize_dynamic(str(source), str(target), weight_type=q.QuantType.QInt8)
    except Exception as exc:  # the quantizer raises ValueError, RuntimeError, onnx errors...
        raise ConversionError(
            f"onnxruntime.quantization ({mode(model)}) failed on the ONNX model",
            model=ctx.model_name, backend=NAME, cause=f"{type(exc).__name__}: {str(exc).strip()[:300]}",
            hint="try the tflite-int8 targets", routes=(("dynamo", None), ("torchscript", 17)),
            details="".join(traceback.format_exception(exc)),
        ) from exc


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    import onnx

    model = onnx.load(str(artifact.path), load_external_data=False)
    key = {
        **conversion_key(artifact, "onnxruntime.quantization", REVISION, DISTS),
        "mode": mode(model),
        "calibration": ctx.calibration.digest if ctx.calibration is not None and mode(model) == "static" else "none",
    }
    start = time.perf_counter()
    result = ctx.cache.get_or_build("ort-int8", key, lambda out: _quantize(artifact.path, out, model, ctx))
    converted = time.perf_counter()
    runner = make_session(str(result.path / QUANTIZED_NAME), threads=ctx.threads)
    return Prepared(
        runner, convert_seconds=converted - start, load_seconds=time.perf_counter() - converted, cache_hit=result.hit,
        converted_path=result.path, route=f"ONNX from {artifact.label}, int8 {mode(model)} (onnxruntime.quantization)",
        used_calibration=mode(model) == "static",
    )


def _as_passed_on(quantized: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The quantized model's value for each fp32 value name, as the next node receives it: after
    its QuantizeLinear/DequantizeLinear pair where the QDQ quantizer put one (it also folds a Relu
    into that pair, leaving the name on the Conv's unclipped output)."""
    out = {}
    for name in reference:
        found = quantized.get(f"{name}_DequantizeLinear_Output", quantized.get(name))
        if found is not None:
            out[name] = found
    return out


def layer_report(prepared: Prepared, artifact: OnnxArtifact, feeds: Mapping[str, np.ndarray], workdir: Path) -> str | None:
    """SNR of the quantized model's intermediate values vs the fp32 model's, by value name."""
    import onnx

    from ..layer_error import against_fp32, onnx_intermediates

    if prepared.converted_path is None:
        return None

    def quantized_values(model: Any, order: list[str], reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        _, quantized = onnx_intermediates(onnx.load(str(prepared.converted_path / QUANTIZED_NAME)), feeds)
        return _as_passed_on(quantized, reference)

    return against_fp32(
        artifact.path, feeds, quantized_values,
        lambda model: f"layer-by-layer SNR, int8 {mode(model)} model vs the fp32 model (onnxruntime) on this input",
        "the quantizer replaced the nodes that made them",
    )


def quantization_count(prepared: Prepared, artifact: OnnxArtifact) -> QuantizationCount:
    """``Backend.quantization_count``: what the quantized model stores as integers (``quantized.count``)."""
    import onnx

    if prepared.converted_path is None:
        raise ValueError("no quantized model to count")
    return count(prepared.converted_path / QUANTIZED_NAME, mode(onnx.load(str(artifact.path), load_external_data=False)))


def load_case(case_dir: Path, case: Mapping[str, Any]) -> Any:
    """A saved failing case's runner: its quantized model in a fresh session."""
    return make_session(str(case_dir / "converted" / QUANTIZED_NAME))


BACKEND = Backend(
    name=NAME,
    prepare=prepare,
    modules=("onnxruntime", "onnx"),
    extra="onnxruntime-int8",
    exports=(("dynamo", None), ("torchscript", 17)),
    framework=("onnxruntime",),
    precision="int8",
    load_case=load_case,
    layer_report=layer_report,
    calibrated=True,
    quantization_count=quantization_count,
    distributions=DISTS,
)
