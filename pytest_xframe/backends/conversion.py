"""ONNX -> TensorFlow-family converters, one module each; onnx_tf_compat keeps onnx-tf working."""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from ..errors import BackendUnavailable, ConversionError, TooLargeError, first_line, shown_bytes


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


#: protobuf refuses to serialize a message of 2 GiB or more (a GraphDef, an ONNX model without
#: external data); module-level so tests can lower it and check the refusals on a tiny model
PROTOBUF_LIMIT = 2**31
#: FlatBuffers' 32-bit offsets cap a flatbuffer at 2 GiB; the TFLite converter places constant
#: buffers after it (buffer offsets) only when asked, so it is the TFLite routes' switch point
FLATBUFFER_LIMIT = 2**31


def refuse_over(
    size: int, limit: int, *, what: str, converter: str, backend: str, model_name: str | None, limit_name: str, cause: str,
    hint: str | None = None,
) -> None:
    """TooLargeError, before converting, when ``size`` bytes of ``what`` reach ``limit``: the
    message gives both figures, the limit's name and why this converter is bound by it."""
    if size < limit:
        return
    raise TooLargeError(
        f"{converter} cannot convert this model: its {what} take {shown_bytes(size)}, over {limit_name} ({shown_bytes(limit)})",
        model=model_name,
        backend=backend,
        cause=cause,
        hint=hint or f"check this model against onnxruntime (it reads external data), or shrink it (fewer or smaller layers) for {backend}",
    )
