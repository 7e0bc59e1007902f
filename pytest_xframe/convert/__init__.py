"""ONNX -> TensorFlow-family converters, one module each; onnx_tf_compat keeps onnx-tf working."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from pytest_xframe.errors import BackendUnavailable, ConversionError, first_line


def import_converter(importer: Callable[[], Any], *, name: str, backend: str, model_name: str | None, hint: str) -> Any:
    """Run ``importer``: a missing package is a skip (BackendUnavailable naming the extra), a
    package that is installed but fails to import (a version clash) is a ConversionError."""
    try:
        return importer()
    except ImportError as exc:
        raise BackendUnavailable(
            f"{name} not installed",
            model=model_name,
            backend=backend,
            cause=f"{type(exc).__name__}: {exc}",
            hint=hint,
            details=traceback.format_exc(),
        ) from exc
    except Exception as exc:  # noqa: BLE001 - installed but broken: not a skip
        raise ConversionError(
            f"{name} is installed but fails to import",
            model=model_name,
            backend=backend,
            cause=f"{type(exc).__name__}: {first_line(str(exc))}",
            hint=f"reinstall it: {hint}",
            details=traceback.format_exc(),
        ) from exc
