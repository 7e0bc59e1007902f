"""ONNX -> TensorFlow-family converters, one module each; onnx_tf_compat keeps onnx-tf working."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailable, ConversionError, TooLargeError, first_line


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
    except Exception as exc:
        raise ConversionError(
            f"{name} is installed but fails to import",
            model=model_name,
            backend=backend,
            cause=f"{type(exc).__name__}: {first_line(str(exc))}",
            hint=f"reinstall it: {hint}",
            details=traceback.format_exc(),
        ) from exc


#: why the TensorFlow-family converters cannot take a model with external data (the default)
PROTOBUF_CAUSE = "handles the ONNX model (and the TensorFlow graph it builds) as one protobuf message, which protobuf caps at 2 GiB"


def refuse_external_data(
    artifact: Any, *, converter: str, backend: str, model_name: str | None, limit: str = "protobuf's 2 GiB limit", cause: str = PROTOBUF_CAUSE
) -> None:
    """Fail up front, naming the reason, for a model whose weights are ONNX external data (too
    close to a 2 GiB limit for one message): the TensorFlow-family converters load and serialize
    the whole model as one protobuf (ONNX, then a TF GraphDef), litert-torch writes one FlatBuffer;
    neither can hold it, and they would crash deep inside protobuf or run out of memory instead.
    ``limit`` and ``cause`` name the format's limit and why the converter is bound by it."""
    if not getattr(artifact, "external_data", ()):
        return
    size = sum(f.stat().st_size for f in artifact.files)
    shown = f"{size / 2**30:.2f} GiB" if size >= 2**28 else f"{size / 2**10:.0f} KiB"
    raise TooLargeError(
        f"{converter} cannot convert a model over {limit} ({shown}, weights in external data)",
        model=model_name,
        backend=backend,
        cause=f"{converter} {cause}",
        hint="check this model against onnxruntime, which runs it from its external data file; "
        f"or shrink it (fewer or smaller layers) for {backend}",
    )
