"""Every place this layer reaches into onnx-tf's or TensorFlow's internals, and nowhere else.

Checked against onnx-tf 1.10.0 (its last release) and TensorFlow 2.21; tox's ``py311-tf215``
stack runs the same tests on TensorFlow 2.15. Each function names the internals it relies on; if a release changes one,
``tests/unit/backends/test_onnx_tf_compat.py`` and ``tests/unit/backends/test_onnx_tf.py`` fail on it.

* :func:`onnx_tf_version` / :func:`delegating`: a handler reusing onnx-tf's own ``version_N``
  classmethod of the op's handler class (``BackendHandler`` subclasses).
* :func:`register_handlers`: finds the handler classes through ``BackendHandler.__subclasses__()``
  (how ``onnx_tf.common.handler_helper`` finds them), sets ``version_N`` classmethods, and turns
  off ``get_req_vars_template`` / ``args_check`` for the recurrent ops.
* :func:`track_failing_node`: wraps the private ``TensorflowBackend._onnx_node_to_tensorflow_op``.
* :func:`prepare_unchecked`: ``TensorflowBackend.prepare`` minus its ``onnx.checker`` call (it sets
  ``common.logger``'s level and ``common.sys_config``, then ``onnx_model_to_tensorflow_rep``).
* :func:`hold_as_variables`: adds ``tf.Variable``s to ``BackendTFModule.initializer_dict`` (the
  tracked dict of initializers its traced call merges into the tensor dict).
* :func:`trace_without_autograph` / :func:`with_autograph`: replace
  ``BackendTFModule.__call__`` (a ``tf.function``; ``.python_function`` is TF's attribute for the
  undecorated function).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

__all__ = [
    "delegating",
    "hold_as_variables",
    "prepare_unchecked",
    "last_failed_node",
    "onnx_tf_version",
    "register_handlers",
    "reset_failed_node",
    "trace_without_autograph",
    "track_failing_node",
    "with_autograph",
]

F = TypeVar("F", bound=Callable[..., Any])

# Handler classes we create. BackendHandler.__subclasses__() holds weak references only, so the
# classes must be kept alive here or onnx-tf would silently lose them.
_NEW_HANDLER_CLASSES: dict[str, type] = {}
_FAILED = threading.local()
# onnx-tf's own ``BackendTFModule.__call__`` (traced with AutoGraph), once replaced
_AUTOGRAPH_CALL: Any = None


def onnx_tf_version(cls: type, version: int, node: Any, **kwargs: Any) -> list[Any]:
    """Run onnx-tf's own ``version_<version>`` handler of the op class ``cls`` on ``node``."""
    return getattr(cls, f"version_{version}").__func__(cls, node, **kwargs)


def delegating(fn: F) -> F:
    """Mark a handler that runs onnx-tf's own code: it keeps AutoGraph, as onnx-tf expects."""
    fn.delegates_to_onnx_tf = True  # type: ignore[attr-defined]
    return fn


def _handler_class(op: str, existing: dict[str, type], base: type, recurrent: bool) -> type:
    """onnx-tf's handler class of ``op``, or a new one (kept alive in ``_NEW_HANDLER_CLASSES``)."""
    cls = existing.get(op)
    if cls is None:
        cls = type(op, (base,), {"ONNX_OP": op, "DOMAIN": "", "__module__": __name__})
        _NEW_HANDLER_CLASSES[op] = cls
    if recurrent:
        # ours need no tf.Variables and accept every attribute combination we implement
        setattr(cls, "get_req_vars_template", classmethod(lambda c, node, init_dict: {}))  # noqa: B010
        setattr(cls, "args_check", classmethod(lambda c, node, **kw: None))  # noqa: B010
    return cls


def register_handlers(table: Mapping[str, Mapping[int, Callable[..., Any]]], recurrent_ops: Collection[str]) -> None:
    """Attach our ``version_N`` methods (``table``: op -> {version: handler}, ``handlers.handler_table``)
    to onnx-tf's handler classes, or create the class; ``recurrent_ops`` are wholly ours."""
    import tensorflow as tf
    from onnx_tf.handlers.backend_handler import BackendHandler

    existing = {c.ONNX_OP: c for c in BackendHandler.__subclasses__() if getattr(c, "DOMAIN", "") == ""}
    for op, versions in table.items():
        cls = _handler_class(op, existing, BackendHandler, op in recurrent_ops)
        for version, fn in versions.items():
            # Ours use plain Python control flow only: AutoGraph conversion adds nothing but
            # warnings. Those delegating to onnx-tf's own code keep AutoGraph, as onnx-tf expects.
            if not getattr(fn, "delegates_to_onnx_tf", False):
                fn = tf.autograph.experimental.do_not_convert(fn)
            setattr(cls, f"version_{version}", classmethod(fn))


def track_failing_node() -> None:
    """Remember which ONNX node a conversion failed on (onnx-tf's errors often do not say)."""
    from onnx_tf.backend import TensorflowBackend

    original = TensorflowBackend.__dict__["_onnx_node_to_tensorflow_op"].__func__
    if getattr(original, "_xframe_wrapped", False):
        return

    def _onnx_node_to_tensorflow_op(cls: type, node: Any, tensor_dict: Any, handlers: Any = None,
                                    opset: Any = None, strict: bool = True) -> Any:
        try:
            return original(cls, node, tensor_dict, handlers, opset=opset, strict=strict)
        except Exception:
            if getattr(_FAILED, "node", None) is None:  # innermost node (inside If/Loop) wins
                _FAILED.node = (node.op_type, node.name, node.domain)
            raise

    _onnx_node_to_tensorflow_op._xframe_wrapped = True  # type: ignore[attr-defined]
    TensorflowBackend._onnx_node_to_tensorflow_op = classmethod(_onnx_node_to_tensorflow_op)


def last_failed_node() -> tuple[str, str, str] | None:
    """``(op_type, node_name, domain)`` of the node whose conversion last failed in this thread."""
    return getattr(_FAILED, "node", None)


def reset_failed_node() -> None:
    """Forget the last failing node (call before a conversion)."""
    _FAILED.node = None


def prepare_unchecked(model: Any, logging_level: str = "ERROR") -> Any:
    """onnx-tf's ``TensorflowBackend.prepare(model)`` without ``onnx.checker.check_model``: the
    graph it gets has no large weights (they are added as variables afterwards), which the checker
    rejects as undefined inputs; and on a model holding them it would serialize a copy of all."""
    from onnx_tf import common
    from onnx_tf.backend import TensorflowBackend

    common.logger.setLevel(logging_level)
    common.logger.handlers[0].setLevel(logging_level)
    common.sys_config.auto_cast = False
    common.sys_config.device = "CPU"
    return TensorflowBackend.onnx_model_to_tensorflow_rep(model, True)


def hold_as_variables(rep: Any, variables: Iterable[tuple[str, Any]]) -> None:
    """Give the module of onnx-tf's ``rep`` each of ``variables`` (ONNX initializer name,
    ``tf.Variable``), taken one at a time, before its call is traced.

    onnx-tf makes every initializer a ``tf.constant`` captured by the traced call, which
    ``tf.saved_model.save`` writes into the GraphDef (one protobuf, 2 GiB at most, and a copy of
    every weight). Variables go to the SavedModel's ``variables/`` checkpoint instead. The dict
    is tracked by ``tf.Module``, so the variables are saved and restored with the module.
    """
    table = rep.tf_module.initializer_dict
    for name, variable in variables:
        table[name] = variable


def trace_without_autograph() -> None:
    """Replace onnx-tf's module call by the same function traced without AutoGraph."""
    global _AUTOGRAPH_CALL
    import tensorflow as tf
    from onnx_tf.backend_tf_module import BackendTFModule

    if _AUTOGRAPH_CALL is None:
        _AUTOGRAPH_CALL = BackendTFModule.__call__
        BackendTFModule.__call__ = tf.function(_AUTOGRAPH_CALL.python_function, autograph=False)


@contextmanager
def with_autograph() -> Iterator[None]:
    """Within the block, onnx-tf traces with AutoGraph again, as it does on its own."""
    from onnx_tf.backend_tf_module import BackendTFModule

    fast = BackendTFModule.__call__
    BackendTFModule.__call__ = _AUTOGRAPH_CALL
    try:
        yield
    finally:
        BackendTFModule.__call__ = fast
