"""Reductions: Reduce*-18 (``axes`` became an input) and ReduceSum-13, whose onnx-tf version
reduces over the first of several axes only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .common import import_tf, static_ints

__all__ = ["REDUCE_OPS", "reduce_18"]

#: the Reduce ops whose version 18 moved ``axes`` to an input (ReduceSum did so in 13)
REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def _reduce_fn(op_type: str) -> Callable[..., Any]:
    tf = import_tf()
    return {
        "ReduceMean": tf.reduce_mean,
        "ReduceMax": tf.reduce_max,
        "ReduceMin": tf.reduce_min,
        "ReduceProd": tf.reduce_prod,
        "ReduceSum": tf.reduce_sum,
        "ReduceL1": lambda x, axis, keepdims: tf.reduce_sum(tf.abs(x), axis=axis, keepdims=keepdims),
        "ReduceL2": lambda x, axis, keepdims: tf.sqrt(tf.reduce_sum(tf.square(x), axis=axis, keepdims=keepdims)),
        "ReduceLogSum": lambda x, axis, keepdims: tf.math.log(tf.reduce_sum(x, axis=axis, keepdims=keepdims)),
        "ReduceLogSumExp": tf.reduce_logsumexp,
        "ReduceSumSquare": lambda x, axis, keepdims: tf.reduce_sum(tf.square(x), axis=axis, keepdims=keepdims),
    }[op_type]


def reduce_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Reduce*-18 and ReduceSum-13: ``axes`` is an optional input; ``noop_with_empty_axes``."""
    x = kwargs["tensor_dict"][node.inputs[0]]
    axes = static_ints(node, kwargs, 1, "axes")
    if not axes:
        # noop skips only the reduction: like onnx's function bodies and onnxruntime, ReduceLogSum
        # still takes the log, ReduceSumSquare the square (tf.reduce_*(axis=[]) reduces nothing)
        axes = [] if node.attrs.get("noop_with_empty_axes", 0) else None
    keepdims = node.attrs.get("keepdims", 1) == 1
    if node.op_type in ("ReduceMax", "ReduceMin") and x.dtype == import_tf().bool:
        tf = import_tf()
        fn = tf.reduce_any if node.op_type == "ReduceMax" else tf.reduce_all
        return [fn(x, axis=axes, keepdims=keepdims)]
    return [_reduce_fn(node.op_type)(x, axis=axes, keepdims=keepdims)]
