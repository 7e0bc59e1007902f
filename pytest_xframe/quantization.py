"""Did a quantized target quantize anything? Counted from the converted artifact itself.

Each int8 backend may offer ``quantization_count(prepared, artifact) -> QuantizationCount``: its
weight tensors (the weight operand of each matmul, convolution or embedding, followed through a
dequantize op to the stored constant) and how many are stored as integers. A target that
quantized none of them runs the float model and would pass with fp32's error: the check warns
(``NothingQuantizedWarning``) naming the reason where the backend knows it (TFLite leaves tensors
under 1024 elements in float), and fails under ``strict_quantization``. The count is in the
report either way.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from .errors import NothingQuantizedWarning, QuantizationError, describe_exception, first_line

if TYPE_CHECKING:
    from .results import BackendResult, Target
    from .settings import CheckOptions


@dataclass(frozen=True)
class QuantizationCount:
    """Weight tensors of a converted model: how many, and their bytes as stored, are quantized."""

    quantized: int
    total: int
    quantized_bytes: int
    total_bytes: int
    #: why nothing was quantized, where the backend can tell
    reason: str | None = None

    def describe(self) -> str:
        shown = f"{self.quantized} of {self.total} weight tensor(s) quantized"
        return shown + f" ({_size(self.quantized_bytes)} of {_size(self.total_bytes)} of weights as stored)" if self.total else shown

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def note(result: BackendResult, target: Target, options: CheckOptions, model_name: str) -> None:
    """Count what ``target`` quantized into ``result``; warn, or raise under ``strict_quantization``,
    when it quantized nothing. The warning points at the test's ``check`` call (warn < note <
    _prepare_targets < run_check < Xframe.check < the test)."""
    __tracebackhide__ = True
    counter = target.backend.quantization_count
    if counter is None or target.backend.precision != "int8":
        return
    try:
        count = counter(target.prepared, target.artifact)
    except Exception as exc:  # noqa: BLE001 - a count that fails says so in the report; the check goes on
        result.quantization = {"error": describe_exception(exc, 200)}
        return
    result.quantization = count.to_dict()
    if count.quantized:
        return
    why = count.reason or "the converter did not say why"
    text = (f"{target.name} quantized nothing in {model_name}: none of its {count.total} weight tensor(s) is stored as an integer, "
            f"so this int8 target runs the float model and its figures say nothing about quantization ({why})")
    if options.strict_quantization:
        result.verdict, result.message = "failed", first_line(text)
        raise QuantizationError(text, model=model_name, backend=target.name,
                                hint="quantize a model with larger weight tensors, or drop strict_quantization to only warn")
    try:
        warnings.warn(NothingQuantizedWarning(text), stacklevel=5)
    except NothingQuantizedWarning:  # -W error: the check fails, and its report says why
        result.verdict, result.message = "failed", first_line(text)
        raise
