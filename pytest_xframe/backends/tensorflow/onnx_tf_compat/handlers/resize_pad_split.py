"""Resize-18/19 (onnx-tf's own unless the new attributes are used), Split-18, Pad-18+."""

from __future__ import annotations

from typing import Any

from ..patches import delegating, onnx_tf_version
from .common import import_tf, input_tensor, static_ints, static_rank, str_attr

__all__ = ["pad_18", "resize_18", "split_18"]


def _resize_18_unsupported(node: Any) -> list[str]:
    """The attributes new in Resize-18/19 set to something onnx-tf's Resize-11 cannot do."""
    attrs = node.attrs
    unsupported = []
    if attrs.get("antialias", 0):
        unsupported.append("antialias=1")
    if attrs.get("axes") is not None:
        unsupported.append("axes")
    policy = str_attr(node, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        unsupported.append(f"keep_aspect_ratio_policy={policy}")
    if str_attr(node, "coordinate_transformation_mode", "half_pixel") == "half_pixel_symmetric":
        unsupported.append("coordinate_transformation_mode=half_pixel_symmetric")
    return unsupported


@delegating
def resize_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Resize-18/19: same as Resize-13 unless the new attributes are used."""
    unsupported = _resize_18_unsupported(node)
    if unsupported:
        raise NotImplementedError(
            f"Resize node {node.name!r} uses {', '.join(unsupported)}, which onnx-tf does not implement"
        )
    return onnx_tf_version(cls, 11, node, **kwargs)


def split_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Split-18: sizes from the ``split`` input, or ``num_outputs`` (last chunk may be smaller)."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    axis = int(node.attrs.get("axis", 0))
    sizes = static_ints(node, kwargs, 1, "split")
    if not sizes:
        n = int(node.attrs.get("num_outputs", len(node.outputs)))
        dim = x.shape[axis]
        if dim is None:
            raise NotImplementedError(f"Split node {node.name!r}: split axis has an unknown size")
        chunk = -(-int(dim) // n)
        sizes = [chunk] * (n - 1) + [int(dim) - chunk * (n - 1)]
    return list(tf.split(x, sizes, axis=axis))


def _full_pads(node: Any, kwargs: dict[str, Any], rank: int) -> list[list[int]]:
    """Pad-18's ``pads`` (for the dims in the optional ``axes`` input) as [before, after] per dim."""
    pads = static_ints(node, kwargs, 1, "pads") or []
    axes = static_ints(node, kwargs, 3, "axes")
    axes = [a % rank for a in axes] if axes else list(range(rank))
    n = len(axes)
    full = [[0, 0] for _ in range(rank)]
    for i, a in enumerate(axes):
        full[a] = [pads[i], pads[i + n]]
    if any(p < 0 for pair in full for p in pair):
        raise NotImplementedError(f"Pad node {node.name!r}: negative pads are not supported")
    return full


def _pad_edge(x: Any, full: list[list[int]]) -> Any:
    """Mode 'edge': repeat the first / last slice along each padded dim."""
    tf = import_tf()
    for a, (lo, hi) in enumerate(full):
        first = tf.gather(x, [0], axis=a)
        last = tf.gather(x, tf.shape(x)[a : a + 1] - 1, axis=a)
        x = tf.concat([tf.repeat(first, lo, axis=a), x, tf.repeat(last, hi, axis=a)], axis=a) if lo or hi else x
    return x


def pad_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Pad-18+: adds an ``axes`` input (and mode 'wrap' in 19), otherwise like Pad-13."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    full = _full_pads(node, kwargs, static_rank(x, node))
    value = input_tensor(node, kwargs, 2)
    mode = str_attr(node, "mode", "constant")
    if mode == "constant":
        cval = tf.reshape(value, []) if value is not None else tf.zeros([], x.dtype)
        return [tf.pad(x, full, mode="CONSTANT", constant_values=cval)]
    if mode == "reflect":
        return [tf.pad(x, full, mode="REFLECT")]
    if mode == "edge":
        return [_pad_edge(x, full)]
    raise NotImplementedError(f"Pad node {node.name!r}: mode {mode!r} is not supported")
