"""Shape and reshape ops: Unsqueeze/Squeeze-13+ (``axes`` became an input) and Shape-15+.

(Reshape-19/21 only widened the types: an alias of onnx-tf's Reshape-14, in :mod:`.aliases`.)
"""

from __future__ import annotations

from typing import Any

from .common import import_tf, static_ints, static_rank

__all__ = ["shape_15", "squeeze_13", "unsqueeze_13"]


def unsqueeze_13(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Unsqueeze-13+: ``axes`` is an input, not an attribute."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    axes = static_ints(node, kwargs, 1, "axes") or []
    out_rank = static_rank(x, node) + len(axes)
    for axis in sorted(a % out_rank for a in axes):
        x = tf.expand_dims(x, axis)
    return [x]


def squeeze_13(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Squeeze-13+: optional ``axes`` input; without it every size-1 dimension goes."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    axes = static_ints(node, kwargs, 1, "axes")
    if not axes:
        return [tf.squeeze(x)]
    rank = static_rank(x, node)
    return [tf.squeeze(x, axis=sorted(a % rank for a in axes))]


def shape_15(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Shape with ``start`` / ``end``: onnx-tf's takes ``len()`` of the run-time shape, which only
    AutoGraph can trace; the rank is static, so the slice bounds are plain ints."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    rank = static_rank(x, node)

    def bound(value: int) -> int:
        return min(max(value + rank if value < 0 else value, 0), rank)

    start, end = bound(node.attrs.get("start", 0)), bound(node.attrs.get("end", rank))
    return [tf.shape(x, out_type=tf.int64)[start:max(start, end)]]
