"""pytest-xframe: parity-test torch models across torch, ONNX Runtime and TensorFlow.

Public names only; importing this package imports no deep-learning framework.
"""

from .errors import (
    BackendUnavailable,
    ConversionError,
    DriftError,
    ExportError,
    ModelStateWarning,
    NondeterminismError,
    NothingQuantizedWarning,
    ParityError,
    QuantizationError,
    ResourceError,
    SpecError,
    StorageWarning,
    VacuousCheckWarning,
    XframeError,
    XframeWarning,
)
from .spec import Dim, TensorSpec

__all__ = [
    "BackendUnavailable",
    "ConversionError",
    "Dim",
    "DriftError",
    "ExportError",
    "ModelStateWarning",
    "NondeterminismError",
    "NothingQuantizedWarning",
    "ParityError",
    "QuantizationError",
    "ResourceError",
    "SpecError",
    "StorageWarning",
    "TensorSpec",
    "VacuousCheckWarning",
    "XframeError",
    "XframeWarning",
]
__version__ = "0.1.0"
