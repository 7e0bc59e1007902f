"""Normalization and activations: LayerNormalization-17 and Gelu-20, from TF primitives."""

from __future__ import annotations

from typing import Any

from .common import import_tf, input_tensor, static_rank, str_attr

__all__ = ["gelu_20", "layer_normalization_17"]


def layer_normalization_17(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """LayerNormalization-17 from primitives (normalise over dims ``axis``..rank-1)."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    scale = input_tensor(node, kwargs, 1)
    bias = input_tensor(node, kwargs, 2)
    rank = static_rank(x, node)
    axis = int(node.attrs.get("axis", -1)) % rank
    eps = float(node.attrs.get("epsilon", 1e-5))
    stash = int(node.attrs.get("stash_type", 1))
    compute = tf.float32 if stash == 1 and x.dtype in (tf.float16, tf.bfloat16) else x.dtype
    xc = tf.cast(x, compute)
    dims = list(range(axis, rank))
    mean = tf.reduce_mean(xc, axis=dims, keepdims=True)
    centered = xc - mean
    var = tf.reduce_mean(tf.square(centered), axis=dims, keepdims=True)
    inv_std = tf.math.rsqrt(var + tf.cast(eps, compute))
    y = tf.cast(centered * inv_std, x.dtype)
    if scale is not None:
        y = y * scale
    if bias is not None:
        y = y + bias
    outs = [y, mean, inv_std]
    return outs[: len(node.outputs)]


def gelu_20(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Gelu-20: exact (erf) or ``approximate='tanh'``."""
    tf = import_tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    return [tf.nn.gelu(x, approximate=str_attr(node, "approximate", "none") == "tanh")]
