"""``onnx.mapping`` for onnx-tf, rebuilt only where onnx no longer ships it (removed in onnx 1.17).

onnx-tf 1.10 reads ``onnx.mapping`` and ``onnx.helper.mapping`` at import time. The rebuild uses
``onnx._mapping``, onnx's private table behind the public ``onnx.helper.tensor_dtype_to_*``
helpers (checked against onnx 1.23); tests compare the rebuild with those helpers.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import types
from typing import Any

__all__ = ["build_onnx_mapping", "ensure_onnx_mapping"]


def _storage_fields(tensor_proto: Any) -> dict[int, str]:
    """Storage element type -> TensorProto field, as onnx 1.15's ``STORAGE_TENSOR_TYPE_TO_FIELD``."""
    t = tensor_proto
    return {
        int(t.FLOAT): "float_data",
        int(t.INT32): "int32_data",
        int(t.INT64): "int64_data",
        int(t.UINT8): "int32_data",
        int(t.UINT16): "int32_data",
        int(t.DOUBLE): "double_data",
        int(t.COMPLEX64): "float_data",
        int(t.COMPLEX128): "double_data",
        int(t.UINT32): "uint64_data",
        int(t.UINT64): "uint64_data",
        int(t.STRING): "string_data",
        int(t.BOOL): "int32_data",
    }


def _container_fields(sequence_proto: Any, optional_proto: Any) -> dict[str, dict[int, str]]:
    """The sequence / optional element type -> field tables of onnx 1.15's module."""
    s, o = sequence_proto, optional_proto
    return {
        "STORAGE_ELEMENT_TYPE_TO_FIELD": {
            int(s.TENSOR): "tensor_values",
            int(s.SPARSE_TENSOR): "sparse_tensor_values",
            int(s.SEQUENCE): "sequence_values",
            int(s.MAP): "map_values",
            int(o.OPTIONAL): "optional_value",
        },
        "OPTIONAL_ELEMENT_TYPE_TO_FIELD": {
            int(o.TENSOR): "tensor_value",
            int(o.SPARSE_TENSOR): "sparse_tensor_value",
            int(o.SEQUENCE): "sequence_value",
            int(o.MAP): "map_value",
            int(o.OPTIONAL): "optional_value",
        },
    }


def build_onnx_mapping() -> types.ModuleType:
    """A plain-dict rebuild of the ``onnx.mapping`` module that onnx < 1.17 shipped."""
    from onnx import OptionalProto, SequenceProto, TensorProto
    from onnx._mapping import TENSOR_TYPE_MAP, TensorDtypeMap

    mod = types.ModuleType("onnx.mapping", "Rebuilt by pytest_xframe for onnx-tf (removed in onnx 1.17).")
    mod.__spec__ = importlib.machinery.ModuleSpec("onnx.mapping", None)
    to_np = {int(k): v.np_dtype for k, v in TENSOR_TYPE_MAP.items()}
    np_to: dict[Any, int] = {}
    for k, dtype in to_np.items():
        np_to.setdefault(dtype, k)  # the first (standard) type wins, as in onnx 1.15
    storage_to_field = _storage_fields(TensorProto)
    attrs: dict[str, Any] = {
        "TensorDtypeMap": TensorDtypeMap,
        "TENSOR_TYPE_MAP": dict(TENSOR_TYPE_MAP),
        "TENSOR_TYPE_TO_NP_TYPE": to_np,
        "TENSOR_TYPE_TO_STORAGE_TENSOR_TYPE": {int(k): int(v.storage_dtype) for k, v in TENSOR_TYPE_MAP.items()},
        "_NP_TYPE_TO_TENSOR_TYPE": np_to,
        "NP_TYPE_TO_TENSOR_TYPE": dict(np_to),
        "_STORAGE_TENSOR_TYPE_TO_FIELD": storage_to_field,
        "STORAGE_TENSOR_TYPE_TO_FIELD": dict(storage_to_field),
        **_container_fields(SequenceProto, OptionalProto),
    }
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def ensure_onnx_mapping() -> None:
    """Provide ``onnx.mapping`` and ``onnx.helper.mapping`` only where onnx no longer has them."""
    import onnx
    import onnx.helper

    existing = getattr(onnx, "mapping", None)
    if existing is None:
        try:
            existing = importlib.import_module("onnx.mapping")
        except ImportError:
            existing = build_onnx_mapping()
            sys.modules["onnx.mapping"] = existing
        onnx.mapping = existing  # type: ignore[attr-defined]
    if getattr(onnx.helper, "mapping", None) is None:
        onnx.helper.mapping = existing  # type: ignore[attr-defined]
