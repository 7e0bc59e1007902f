"""pytest-xframe: parity-test torch models across torch, ONNX Runtime and TensorFlow.

Public names only; importing this package imports no deep-learning framework.
"""

from .errors import BackendUnavailable, ConversionError, DriftError, ExportError, ParityError, SpecError, XframeError
from .spec import Dim, TensorSpec

__all__ = [
    "BackendUnavailable",
    "ConversionError",
    "Dim",
    "DriftError",
    "ExportError",
    "ParityError",
    "SpecError",
    "TensorSpec",
    "XframeError",
]
__version__ = "0.1.0"
