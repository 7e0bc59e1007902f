"""What a quantized target really quantized, counted from the converted artifact itself.

Each int8 backend may offer ``quantization_count(prepared, artifact) -> QuantizationCount``
(``tflite/quantized.py``, ``onnxruntime/quantized.py``): its weight tensors (the weight operand of
each matmul, convolution or embedding, followed through a dequantize op to the stored constant)
and how many are stored as integers, with the reason where it quantized none and the converter's
rule is known. What a check does with the count is ``check/quantization.py``'s.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


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
