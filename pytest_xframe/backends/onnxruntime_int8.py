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

from ..errors import ConversionError
from ..export import OnnxArtifact
from . import Backend, BuildContext, Prepared, conversion_key
from .onnxruntime_runner import make_session

NAME = "onnxruntime-int8"
QUANTIZED_NAME = "model.int8.onnx"
#: bump when the quantization settings below change
REVISION = "1"


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
            hint="try another exporter / opset, or the tflite-int8 targets",
            details="".join(traceback.format_exception(exc)),
        ) from exc


def prepare(artifact: OnnxArtifact, ctx: BuildContext) -> Prepared:
    import onnx

    model = onnx.load(str(artifact.path), load_external_data=False)
    key = {
        **conversion_key(artifact, "onnxruntime.quantization", REVISION, ("onnx", "onnxruntime", "numpy")),
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


#: op type -> index of its weight operand, in a float graph and in what the quantizers make of it
WEIGHT_OPERANDS = {
    "Conv": 1, "ConvTranspose": 1, "Gemm": 1, "MatMul": 1, "Gather": 0, "ConvInteger": 1, "MatMulInteger": 1, "QLinearConv": 3, "QLinearMatMul": 3,
    "DynamicQuantizeMatMul": 1, "MatMulIntegerToFloat": 1,
}
#: ops a weight passes through on its way from the stored constant to the op that uses it
_PASS_THROUGH = ("DequantizeLinear", "Transpose", "Reshape", "Cast", "Identity")


def weights(model: Any) -> list[tuple[Any, str]]:
    """Each weight initializer of the graph (once) and the op type that uses it: the weight operand
    of a matmul, convolution or embedding, followed back through dequantize, transpose, reshape."""
    initializers = {i.name: i for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    found: dict[str, tuple[Any, str]] = {}
    for node in model.graph.node:
        position = WEIGHT_OPERANDS.get(node.op_type)
        if position is None or len(node.input) <= position:
            continue
        name = node.input[position]
        while name not in initializers and name in producer and producer[name].op_type in _PASS_THROUGH:
            name = producer[name].input[0]
        if name in initializers and _stored_kind(initializers[name]) in ("float", "quantized"):  # not an index table or a shape
            found.setdefault(name, (initializers[name], node.op_type))
    return list(found.values())


def _stored_kind(init: Any) -> str:
    """"float", "quantized" (an integer of 16 bits or fewer) or "other" (int32/int64 indices, shapes)."""
    import onnx

    dtype = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type))
    return "float" if dtype.kind == "f" else "quantized" if dtype.kind in "iu" and dtype.itemsize <= 2 else "other"


def quantization_count(prepared: Prepared, artifact: OnnxArtifact) -> Any:
    """The weights the quantized ONNX model stores as integers, against all its weights; where it
    quantized none, the reason: the ops using them, which the chosen quantizer leaves in float."""
    import onnx

    from ..quantization import QuantizationCount

    if prepared.converted_path is None:
        raise ValueError("no quantized model to count")
    model = onnx.load(str(prepared.converted_path / QUANTIZED_NAME), load_external_data=False)
    found = weights(model)

    def size(init: Any) -> int:
        return int(np.prod(init.dims, dtype=np.int64)) * onnx.helper.tensor_dtype_to_np_dtype(init.data_type).itemsize

    quantized = [init for init, _ in found if _stored_kind(init) == "quantized"]
    reason = None
    if not quantized:
        ops = sorted({op for _, op in found})
        reason = (f"its weights feed {', '.join(ops)}, which onnxruntime.quantization ({mode(onnx.load(str(artifact.path), load_external_data=False))}) "
                  "leaves in float" if ops else "the model has no matmul, convolution or embedding weights")
    return QuantizationCount(len(quantized), len(found), sum(map(size, quantized)), sum(size(i) for i, _ in found), reason)


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
)
