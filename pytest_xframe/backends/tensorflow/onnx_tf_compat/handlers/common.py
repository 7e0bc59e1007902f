"""What every handler needs: TensorFlow (imported late), its inputs, constant inputs, attributes.

A handler is ``fn(cls, node, **kwargs) -> list[tf.Tensor]``, onnx-tf's handler interface:
``node`` is onnx-tf's OnnxNode (``inputs``, ``outputs``, ``attrs``, ``name``, ``op_type``) and
``kwargs["tensor_dict"]`` maps value names to tensors. ``cls`` is onnx-tf's handler class of the op.
"""

from __future__ import annotations

from typing import Any

__all__ = ["import_tf", "input_tensor", "static_ints", "static_rank", "str_attr"]


def import_tf() -> Any:
    """``tensorflow``, imported only when a handler runs."""
    import tensorflow as tf

    return tf


def input_tensor(node: Any, kwargs: dict[str, Any], index: int) -> Any:
    """The node's ``index``-th input tensor, or None when absent or given as ''."""
    if index >= len(node.inputs) or not node.inputs[index]:
        return None
    return kwargs["tensor_dict"][node.inputs[index]]


def static_ints(node: Any, kwargs: dict[str, Any], index: int, what: str) -> list[int] | None:
    """A constant int input (axes, ...) as a Python list; None when the input is absent.

    Exported models give axes as initializers / Constant nodes, so their value is known while
    tracing; a computed one is reported rather than guessed.
    """
    tensor = input_tensor(node, kwargs, index)
    if tensor is None:
        return None
    value = import_tf().get_static_value(tensor)
    if value is None:
        raise NotImplementedError(
            f"{node.op_type} node {node.name!r}: input '{what}' is computed at run time; "
            "only a constant (initializer or Constant node) is supported"
        )
    return [int(v) for v in value.reshape(-1)]


def str_attr(node: Any, name: str, default: str) -> str:
    """A string attribute (onnx-tf hands them over as bytes)."""
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def static_rank(x: Any, node: Any) -> int:
    """The rank of ``x``, which the handlers need at trace time."""
    rank = x.shape.rank
    if rank is None:
        raise NotImplementedError(f"{node.op_type} node {node.name!r}: input rank is unknown")
    return int(rank)
