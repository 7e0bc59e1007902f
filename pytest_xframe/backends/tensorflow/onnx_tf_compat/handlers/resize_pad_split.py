"""Resize-18/19 (onnx-tf's own unless the new attributes are used), Split-18, Pad-11+."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from ..patches import delegating, onnx_tf_version
from .common import import_tf, input_tensor, static_ints, static_rank, str_attr

__all__ = ["pad_11", "resize_18", "split_18"]


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


def _pads(node: Any, kwargs: dict[str, Any], rank: int) -> tuple[list[Any], list[Any]]:
    """``pads`` (for the dims of the optional ``axes`` input, Pad-18+) as (before, after) per dim:
    Python ints where the pads are constant, scalar tensors where the graph computes them (a
    detector pads its batch to a multiple of the stride from the input's run-time shape)."""
    tf = import_tf()
    axes = static_ints(node, kwargs, 3, "axes")
    axes = [a % rank for a in axes] if axes else list(range(rank))
    tensor = input_tensor(node, kwargs, 1)
    value = None if tensor is None else tf.get_static_value(tensor)
    if tensor is None:
        pads: list[Any] = [0] * (2 * len(axes))
    elif value is not None:
        pads = [int(v) for v in value.reshape(-1)]
    else:
        pads = tf.unstack(tf.cast(tf.reshape(tensor, [2 * len(axes)]), tf.int32))
    before: list[Any] = [0] * rank
    after: list[Any] = [0] * rank
    for i, a in enumerate(axes):
        before[a], after[a] = pads[i], pads[i + len(axes)]
    return before, after


def _ops(*values: Any) -> Any:
    """numpy where every value is a Python int (the padded axis then keeps a static length),
    else the same functions from TensorFlow."""
    if all(isinstance(v, int) for v in values):
        return SimpleNamespace(range=np.arange, clip=np.clip, mod=np.mod, maximum=np.maximum, where=np.where)
    tf = import_tf()
    return SimpleNamespace(range=tf.range, clip=tf.clip_by_value, mod=tf.math.floormod, maximum=tf.maximum, where=tf.where)


def _source_indices(size: Any, lo: Any, hi: Any, mode: str) -> Any:
    """For each position of the padded axis, the index it copies from (``edge``, ``reflect``,
    ``wrap``). A negative ``lo`` / ``hi`` crops that side first; the other side then pads the
    cropped axis (what onnxruntime does)."""
    ops = _ops(size, lo, hi)
    first, grow_lo, grow_hi = ops.maximum(-lo, 0), ops.maximum(lo, 0), ops.maximum(hi, 0)
    kept = size - first - ops.maximum(-hi, 0)
    i = ops.range(-grow_lo, kept + grow_hi)
    if mode == "edge":
        return first + ops.clip(i, 0, kept - 1)
    if mode == "wrap":
        return first + ops.mod(i, kept)
    period = ops.maximum(2 * kept - 2, 1)  # reflect about the first and last element kept
    i = ops.mod(i, period)
    return first + ops.where(i < kept, i, period - i)


def _pad_constant(x: Any, before: list[Any], after: list[Any], value: Any) -> Any:
    """tf.pad by the positive pads, then a slice for the negative ones (ONNX crops there)."""
    tf = import_tf()
    grow = [[_ops(b).maximum(b, 0), _ops(a).maximum(a, 0)] for b, a in zip(before, after)]
    cval = tf.zeros([], x.dtype) if value is None else tf.reshape(tf.cast(value, x.dtype), [])
    y = tf.pad(x, grow, mode="CONSTANT", constant_values=cval)
    if all(isinstance(p, int) and p >= 0 for p in before + after):
        return y
    sizes = [int(n) if n is not None else tf.shape(y)[d] for d, n in enumerate(y.shape)]
    return y[tuple(slice(_ops(b).maximum(-b, 0), n - _ops(a).maximum(-a, 0)) for n, b, a in zip(sizes, before, after))]


def _pad_by_index(x: Any, before: list[Any], after: list[Any], mode: str) -> Any:
    """Modes 'edge', 'reflect' and 'wrap': gather each padded axis from its source indices."""
    tf = import_tf()
    for axis, (lo, hi) in enumerate(zip(before, after)):
        if isinstance(lo, int) and isinstance(hi, int) and lo == hi == 0:
            continue
        static = x.shape[axis]
        size = int(static) if static is not None else tf.shape(x)[axis]
        x = tf.gather(x, _source_indices(size, lo, hi, mode), axis=axis)
    return x


def pad_11(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Pad-11+: pads (and the constant value) are inputs; an optional input may be given as ''
    (the TorchScript exporter writes ``Pad(x, pads, '')``), which onnx-tf's own handler looks up
    as a tensor name; Pad-18 adds an ``axes`` input, Pad-19 mode 'wrap'. Pads may be computed at
    run time and may be negative (a crop), as ONNX allows."""
    x = kwargs["tensor_dict"][node.inputs[0]]
    before, after = _pads(node, kwargs, static_rank(x, node))
    mode = str_attr(node, "mode", "constant")
    if mode == "constant":
        return [_pad_constant(x, before, after, input_tensor(node, kwargs, 2))]
    if mode in ("edge", "reflect", "wrap"):
        return [_pad_by_index(x, before, after, mode)]
    raise NotImplementedError(f"Pad node {node.name!r}: mode {mode!r} is not supported")
