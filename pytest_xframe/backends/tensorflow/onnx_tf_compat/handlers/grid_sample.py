"""GridSample-16/20/22, which onnx-tf has no handler for (optical flow, spatial transformers,
deformable sampling all export it).

Follows onnxruntime's kernel (the reference a conversion is judged against), for every mode
(``bilinear``/``linear``, ``nearest``, ``bicubic``/``cubic``), padding mode (``zeros``,
``border``, ``reflection``) and ``align_corners``, on inputs of any spatial rank (GridSample-20
allows N-D; cubic is 2-D only in ONNX):

1. a grid value in [-1, 1] maps to a pixel coordinate (``align_corners`` decides whether -1 is
   the first pixel's centre or its outer edge);
2. a sample point outside the image on any axis is moved back in: clamped (``border``, except in
   cubic mode) or mirrored (``reflection``); ``zeros`` leaves it where it is;
3. each tap (1 for nearest, 2 per axis for linear, 4 for cubic with A = -0.75) reads its pixel,
   through the padding mode again: 0 outside the image, the clamped or the mirrored pixel.

The taps of all axes are gathered at once (``tf.gather_nd``) and summed with the product of their
per-axis weights: a few dozen TensorFlow ops per node, whatever the mode.
"""

from __future__ import annotations

from typing import Any

from .common import import_tf, static_rank, str_attr

__all__ = ["grid_sample_16"]

#: GridSample-16's mode names and GridSample-20's
_MODES = {"bilinear": "linear", "linear": "linear", "nearest": "nearest", "bicubic": "cubic", "cubic": "cubic"}
_PADDINGS = ("zeros", "border", "reflection")
#: the cubic convolution's A, as in onnxruntime and PyTorch
_CUBIC_A = -0.75


def _attrs(node: Any, spatial: int) -> tuple[str, str, bool]:
    mode = _MODES.get(str_attr(node, "mode", "linear"))  # the default: bilinear (16), linear (20)
    padding = str_attr(node, "padding_mode", "zeros")
    if mode is None or padding not in _PADDINGS:
        raise NotImplementedError(
            f"GridSample node {node.name!r}: mode {str_attr(node, 'mode', '')!r} / padding_mode {padding!r} is not supported"
        )
    if mode == "cubic" and spatial != 2:
        raise NotImplementedError(f"GridSample node {node.name!r}: cubic mode on a {spatial}-D input (ONNX defines it for 2-D only)")
    return mode, padding, bool(node.attrs.get("align_corners", 0))


def _reflect(tf: Any, c: Any, lo: Any, hi: Any) -> Any:
    """Mirror ``c`` about ``lo`` and ``hi`` until it lies between them (onnxruntime's GsReflect)."""
    span = hi - lo
    below, above = lo - c, c - hi
    outside = tf.maximum(below, above)
    flips = tf.math.floor(outside / tf.maximum(span, 1e-12))
    rest = outside - flips * span
    even = tf.equal(tf.math.floormod(flips, 2.0), 0.0)
    from_low = tf.where(even, lo + rest, hi - rest)
    from_high = tf.where(even, hi - rest, lo + rest)
    mirrored = tf.where(below > 0, from_low, tf.where(above > 0, from_high, c))
    return tf.where(span > 0, mirrored, lo)


class _Axis:
    """One spatial axis: its size and the bounds its padding mode mirrors or clamps within."""

    def __init__(self, tf: Any, size: Any, align_corners: bool, dtype: Any) -> None:
        self.tf, self.size = tf, size
        self.n = tf.cast(size, dtype)
        self.lo = tf.zeros([], dtype) if align_corners else tf.constant(-0.5, dtype)
        self.hi = self.n - 1.0 if align_corners else self.n - 0.5
        self.align_corners = align_corners

    def coordinate(self, g: Any) -> Any:
        """The grid value in [-1, 1] as a pixel coordinate."""
        return (g + 1.0) / 2.0 * (self.n - 1.0) if self.align_corners else ((g + 1.0) * self.n - 1.0) / 2.0

    def outside(self, c: Any) -> Any:
        return (c < self.lo) | (c > self.hi)

    def move_in(self, c: Any, padding: str, any_outside: Any) -> Any:
        """Step 2: a point outside the image (on any axis) clamped or mirrored back in."""
        tf = self.tf
        if padding == "border":
            return tf.where(any_outside, tf.clip_by_value(c, 0.0, self.n - 1.0), c)
        if padding == "reflection":
            return _reflect(tf, c, self.lo, self.hi)
        return c

    def tap(self, index: Any, padding: str) -> tuple[Any, Any]:
        """Step 3: (the pixel index to read, whether it lies inside) for an integer tap index."""
        tf = self.tf
        inside = (index >= 0) & (index < self.size)
        if padding == "reflection":
            mirrored = _reflect(tf, tf.cast(index, self.n.dtype), self.lo, self.hi)
            index = tf.cast(mirrored, index.dtype)  # truncated toward zero, as the C++ cast
        index = tf.clip_by_value(index, 0, self.size - 1)
        return index, inside if padding == "zeros" else tf.ones_like(inside)


def _cubic_weights(t: Any) -> list[Any]:
    """Keys' cubic convolution weights of the taps at -1, 0, 1, 2 for a fractional offset ``t``."""
    a = _CUBIC_A

    def near(x: Any) -> Any:  # |x| <= 1
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0

    def far(x: Any) -> Any:  # 1 < |x| < 2
        return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a

    return [far(t + 1.0), near(t), near(1.0 - t), far(2.0 - t)]


def _taps(tf: Any, c: Any, mode: str) -> tuple[Any, Any]:
    """(integer index, weight) of the taps along one axis at coordinate ``c``, stacked on a new last axis."""
    if mode == "nearest":
        return tf.expand_dims(tf.cast(tf.math.round(c), tf.int32), -1), tf.expand_dims(tf.ones_like(c), -1)  # half to even, as nearbyint
    base = tf.math.floor(c)
    t = c - base
    first = tf.expand_dims(tf.cast(base, tf.int32), -1)
    if mode == "linear":
        return tf.concat([first, first + 1], -1), tf.stack([1.0 - t, t], -1)
    return first + tf.range(-1, 3), tf.stack(_cubic_weights(t), -1)


def _every_tap(tf: Any, per_axis: list[tuple[Any, Any]]) -> tuple[Any, Any]:
    """The taps of all axes combined: indices [..., T, k] and weights [..., T] (T = K^k), by
    broadcasting each axis's K taps against the others'."""
    k, taps = len(per_axis), int(per_axis[0][0].shape[-1])
    indices, weight = [], None
    for d, (index, w) in enumerate(per_axis):
        at = [1] * k
        at[d] = taps
        lead = tf.shape(index)[:-1]
        index = tf.reshape(index, tf.concat([lead, at], 0))
        w = tf.reshape(w, tf.concat([lead, at], 0))
        indices.append(index)
        weight = w if weight is None else weight * w
    full = tf.concat([lead, [taps] * k], 0)
    index = tf.stack([tf.broadcast_to(i, full) for i in indices], -1)
    flat = tf.concat([lead, [taps**k]], 0)
    return tf.reshape(index, tf.concat([flat, [k]], 0)), tf.reshape(weight, flat)


def grid_sample_16(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """GridSample-16/20/22: ``X`` [N, C, D1..Dk] sampled at ``grid`` [N, O1..Ok, k] -> [N, C, O1..Ok]."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    grid = kwargs["tensor_dict"][node.inputs[1]]
    rank = static_rank(x, node)
    spatial = rank - 2
    mode, padding, align_corners = _attrs(node, spatial)
    channels_last = tf.transpose(x, [0, *range(2, rank), 1])  # [N, D1..Dk, C]: gather_nd reads C at once
    shape = tf.shape(x)
    axes = [_Axis(tf, shape[2 + d], align_corners, grid.dtype) for d in range(spatial)]
    # the grid's last axis lists coordinates innermost first (x = width, then y = height, ...);
    # no ellipsis slicing here: TFLite has no builtin kernel for it on dynamic shapes
    components = tf.unstack(grid, num=spatial, axis=-1)
    coords = [axis.coordinate(components[spatial - 1 - d]) for d, axis in enumerate(axes)]
    any_outside = tf.reduce_any(tf.stack([axis.outside(c) for axis, c in zip(axes, coords)]), axis=0)
    # cubic reads 4 taps around the point itself: a clamped point would move them (onnxruntime, torch)
    moved = "zeros" if mode == "cubic" and padding == "border" else padding
    coords = [axis.move_in(c, moved, any_outside) for axis, c in zip(axes, coords)]
    per_axis = []
    for axis, c in zip(axes, coords):
        index, weight = _taps(tf, c, mode)
        index, inside = axis.tap(index, padding)
        per_axis.append((index, weight * tf.cast(inside, weight.dtype)))
    index, weight = _every_tap(tf, per_axis)
    values = tf.gather_nd(channels_last, index, batch_dims=1)  # [N, O1..Ok, T, C]
    out = tf.reduce_sum(values * tf.expand_dims(tf.cast(weight, x.dtype), -1), axis=-2)
    return [tf.transpose(out, [0, rank - 1, *range(1, rank - 1)])]
