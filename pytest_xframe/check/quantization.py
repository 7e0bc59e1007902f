"""Did a quantized target quantize anything? Asked of the backend once it is prepared.

An int8 backend that offers ``quantization_count`` (``backends/quantization.py``) reports how many
of the model's weight tensors its converted artifact stores as integers. A target that quantized
none of them runs the float model and would pass with fp32's error: the check warns
(``NothingQuantizedWarning``) naming the reason where the backend knows it (a converter that leaves
small weight tensors in float, say), and fails under ``strict_quantization``. The count is in the report
either way.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

from ..errors import NothingQuantizedWarning, QuantizationError, describe_exception, first_line

if TYPE_CHECKING:
    from ..backends import Target
    from ..judge.results import BackendResult
    from .options import CheckOptions


def note(result: BackendResult, target: Target, options: CheckOptions, model_name: str, stacklevel: int = 1) -> None:
    """Count what ``target`` quantized into ``result``; warn, or raise under ``strict_quantization``,
    when it quantized nothing (``result.unquantized`` then records why it fails). ``stacklevel``
    is ``warnings.warn``'s, counted from this function: where the warning points."""
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
        result.unquantized = first_line(text)
        raise QuantizationError(text, model=model_name, backend=target.name,
                                hint="quantize a model with larger weight tensors, or drop strict_quantization to only warn")
    try:
        warnings.warn(NothingQuantizedWarning(text), stacklevel=stacklevel)
    except NothingQuantizedWarning:  # -W error: the check fails, and its report says why
        result.unquantized = first_line(text)
        raise
