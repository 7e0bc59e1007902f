"""pytest-xframe: parity-test torch models across torch, ONNX Runtime and TensorFlow.

Public names only; importing this package imports no deep-learning framework. Module paths from
before the package layout still import, with a DeprecationWarning (``_moved``).
"""

from ._moved import install as _answer_moved_modules
from .errors import (
    BackendUnavailable,
    ConversionError,
    DiskFullError,
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
    VacuousGenerationWarning,
    XframeError,
    XframeWarning,
)
from .inputs.spec import Dim, TensorSpec

__all__ = [
    "BackendUnavailable",
    "ConversionError",
    "DiskFullError",
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
    "VacuousGenerationWarning",
    "XframeError",
    "XframeWarning",
]
__version__ = "0.1.0"

_answer_moved_modules()
