"""Make onnx-tf 1.10.0 (its last release) import and work on today's onnx / TensorFlow / Keras.

onnx-tf 1.10.0 stopped at onnx ~1.14 and TF 2.15 / Keras 2. On onnx 1.23, TF 2.21 and Keras 3 it
fails in three ways, each fixed here at run time (site-packages is never edited):

1. Import: it uses ``onnx.mapping`` / ``onnx.helper.mapping`` (removed in onnx 1.17) and imports
   ``tensorflow_addons`` (Hardmax) and ``tensorflow_probability`` (Bernoulli), which do not install
   on TF 2.21. We rebuild ``onnx.mapping`` from ``onnx._mapping`` only when it is missing, and put
   stand-ins in ``sys.modules`` only when the real packages cannot be imported. A stand-in raises
   :class:`MissingOptionalModule` (naming the op, the module and the fix) the moment a handler uses
   it, so a model that needs it fails loudly instead of converting wrongly.
2. Coverage: no handlers for op versions newer than ~opset 15. We add Unsqueeze/Squeeze-13,
   Reduce*-18 (and ReduceSum-13, whose onnx-tf version reduces over the first axis only),
   Reshape-19, Resize-18/19, LayerNormalization-17, Gelu-20, Split-18, Pad-18, and map the op
   versions of opsets 16-21 that only widened the types (Where-16, Cast-19, ...) onto onnx-tf's
   older handler, after checking any new attribute is unused (see :func:`handled_versions`).
3. Recurrent ops: its GRU rejects ``linear_before_reset=1`` (what PyTorch exports), its LSTM
   uses ``LSTMStateTuple`` (gone with Keras 3), and all three share one Keras cell between the
   RNN nodes of a model. We replace RNN, GRU and LSTM with small ``tf.scan`` implementations of
   the ONNX equations, which need no Keras at all.

And one for speed: onnx-tf traces its module with AutoGraph, which transpiles the source of every
handler a model uses, the first time each process meets it: 0.9-1.8 s of a small model's 1-2 s
conversion. The handlers build the graph with Python control flow over static attributes, so the
module is traced without AutoGraph (0.1 s), and :func:`with_autograph` brings it back for the few
that need it (NonMaxSuppression loops over a tensor in Python): ``convert``
retries with it whenever tracing without fails for another reason than a missing handler.

:func:`install` does all of that once per process. Nothing happens at import time of this module,
and it imports onnx / tensorflow / onnx_tf only inside functions.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from pytest_xframe.errors import ConversionError

__all__ = [
    "MissingOptionalModule",
    "handled_versions",
    "install",
    "last_failed_node",
    "reset_failed_node",
    "with_autograph",
]

_LOCK = threading.Lock()
_INSTALLED = False
# Handler classes we create. BackendHandler.__subclasses__() holds weak references only, so the
# classes must be kept alive here or onnx-tf would silently lose them.
_NEW_HANDLER_CLASSES: dict[str, type] = {}
_FAILED = threading.local()
# onnx-tf's own ``BackendTFModule.__call__`` (traced with AutoGraph), once replaced
_AUTOGRAPH_CALL: Any = None

# Optional modules onnx-tf imports at import time -> (ONNX op that needs it, pip distribution).
_STAND_IN_MODULES: dict[str, tuple[str, str]] = {
    "tensorflow_addons": ("Hardmax", "tensorflow-addons"),
    "tensorflow_probability": ("Bernoulli", "tensorflow-probability"),
}


class MissingOptionalModule(ConversionError, ModuleNotFoundError):
    """An onnx-tf handler needed a module that is not installed (a stand-in was called).

    It is a ``ModuleNotFoundError`` too, so code that already guards optional imports still
    recognises it, and a :class:`ConversionError`, so pytest-xframe reports it as a failed
    conversion of that op.
    """

    def __init__(
        self,
        op_type: str,
        module: str,
        distribution: str,
        *,
        op_version: int | None = None,
        node_name: str | None = None,
        model: str | None = None,
        details: str | None = None,
    ) -> None:
        self.distribution = distribution
        node = f" (node '{node_name}')" if node_name else ""
        label = f"{op_type}-{op_version}" if op_version else op_type
        super().__init__(
            f"ONNX op {label}{node} needs the Python module '{module}', which is not installed",
            op_type=op_type,
            op_version=op_version,
            node_name=node_name,
            model=model,
            backend="tensorflow (onnx-tf)",
            cause=f"onnx-tf implements {op_type} with {module}, which is not importable here "
            "(it has no release for this TensorFlow version)",
            hint=f"avoid {op_type} in the exported model, use a TensorFlow stack that "
            f"'{distribution}' supports, or compare against onnxruntime only",
            details=details,
        )
        self.name = module  # what ModuleNotFoundError.name means


# --------------------------------------------------------------------------------------------
# 1. onnx.mapping
# --------------------------------------------------------------------------------------------


def _build_onnx_mapping() -> types.ModuleType:
    """A plain-dict rebuild of the ``onnx.mapping`` module that onnx < 1.17 shipped."""
    from onnx import OptionalProto, SequenceProto, TensorProto
    from onnx._mapping import TENSOR_TYPE_MAP, TensorDtypeMap

    mod = types.ModuleType("onnx.mapping", "Rebuilt by pytest_xframe for onnx-tf (removed in onnx 1.17).")
    mod.__spec__ = importlib.machinery.ModuleSpec("onnx.mapping", None)
    to_np = {int(k): v.np_dtype for k, v in TENSOR_TYPE_MAP.items()}
    np_to: dict[Any, int] = {}
    for k, dtype in to_np.items():
        np_to.setdefault(dtype, k)  # the first (standard) type wins, as in onnx 1.15
    storage_to_field = {
        int(TensorProto.FLOAT): "float_data",
        int(TensorProto.INT32): "int32_data",
        int(TensorProto.INT64): "int64_data",
        int(TensorProto.UINT8): "int32_data",
        int(TensorProto.UINT16): "int32_data",
        int(TensorProto.DOUBLE): "double_data",
        int(TensorProto.COMPLEX64): "float_data",
        int(TensorProto.COMPLEX128): "double_data",
        int(TensorProto.UINT32): "uint64_data",
        int(TensorProto.UINT64): "uint64_data",
        int(TensorProto.STRING): "string_data",
        int(TensorProto.BOOL): "int32_data",
    }
    attrs: dict[str, Any] = {
        "TensorDtypeMap": TensorDtypeMap,
        "TENSOR_TYPE_MAP": dict(TENSOR_TYPE_MAP),
        "TENSOR_TYPE_TO_NP_TYPE": to_np,
        "TENSOR_TYPE_TO_STORAGE_TENSOR_TYPE": {int(k): int(v.storage_dtype) for k, v in TENSOR_TYPE_MAP.items()},
        "_NP_TYPE_TO_TENSOR_TYPE": np_to,
        "NP_TYPE_TO_TENSOR_TYPE": dict(np_to),
        "_STORAGE_TENSOR_TYPE_TO_FIELD": storage_to_field,
        "STORAGE_TENSOR_TYPE_TO_FIELD": dict(storage_to_field),
        "STORAGE_ELEMENT_TYPE_TO_FIELD": {
            int(SequenceProto.TENSOR): "tensor_values",
            int(SequenceProto.SPARSE_TENSOR): "sparse_tensor_values",
            int(SequenceProto.SEQUENCE): "sequence_values",
            int(SequenceProto.MAP): "map_values",
            int(OptionalProto.OPTIONAL): "optional_value",
        },
        "OPTIONAL_ELEMENT_TYPE_TO_FIELD": {
            int(OptionalProto.TENSOR): "tensor_value",
            int(OptionalProto.SPARSE_TENSOR): "sparse_tensor_value",
            int(OptionalProto.SEQUENCE): "sequence_value",
            int(OptionalProto.MAP): "map_value",
            int(OptionalProto.OPTIONAL): "optional_value",
        },
    }
    for key, value in attrs.items():
        setattr(mod, key, value)
    return mod


def _ensure_onnx_mapping() -> None:
    """Provide ``onnx.mapping`` and ``onnx.helper.mapping`` only where onnx no longer has them."""
    import onnx
    import onnx.helper

    existing = getattr(onnx, "mapping", None)
    if existing is None:
        try:
            existing = importlib.import_module("onnx.mapping")
        except ImportError:
            existing = _build_onnx_mapping()
            sys.modules["onnx.mapping"] = existing
        onnx.mapping = existing  # type: ignore[attr-defined]
    if getattr(onnx.helper, "mapping", None) is None:
        onnx.helper.mapping = existing  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------
# 2. tensorflow_addons / tensorflow_probability stand-ins
# --------------------------------------------------------------------------------------------


class _MissingAttr:
    """Any attribute of a stand-in module: attribute access works (onnx-tf does it at import
    time), calling it raises :class:`MissingOptionalModule`."""

    def __init__(self, module: str, path: str) -> None:
        self._module = module
        self._path = path
        self.__name__ = path.rsplit(".", 1)[-1]
        self.__qualname__ = self.__name__

    def __getattr__(self, name: str) -> _MissingAttr:
        if name.startswith("__"):
            raise AttributeError(name)
        return _MissingAttr(self._module, f"{self._path}.{name}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        op_type, dist = _STAND_IN_MODULES[self._module]
        raise MissingOptionalModule(op_type, self._module, dist)

    def __repr__(self) -> str:
        return f"<missing {self._path}>"


class _StandInModule(types.ModuleType):
    """Placeholder for an optional package that cannot be imported here."""

    def __getattr__(self, name: str) -> _MissingAttr:
        if name.startswith("__"):
            raise AttributeError(name)
        return _MissingAttr(self.__name__, f"{self.__name__}.{name}")


def _importable(name: str) -> bool:
    """Whether the real package imports; a failed attempt leaves nothing of it in sys.modules."""
    if name in sys.modules:
        return not isinstance(sys.modules[name], _StandInModule)
    try:
        with warnings.catch_warnings():  # tfa warns about its end of life before failing to import
            warnings.simplefilter("ignore")
            importlib.import_module(name)
    except Exception:  # noqa: BLE001 - tfa/tfp raise all sorts of errors on a newer TF
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        return False
    return True


def _stand_in(name: str) -> _StandInModule:
    """The stand-in module for ``name`` (one of ``_STAND_IN_MODULES``), not yet in sys.modules."""
    mod = _StandInModule(name, f"pytest_xframe stand-in: {name} is not importable")
    mod.__spec__ = importlib.machinery.ModuleSpec(name, None)
    return mod


def _ensure_stand_ins() -> None:
    """Install stand-ins only for optional modules that really cannot be imported."""
    for name in _STAND_IN_MODULES:
        if not _importable(name):
            sys.modules[name] = _stand_in(name)


# --------------------------------------------------------------------------------------------
# 3. extra / fixed handlers
# --------------------------------------------------------------------------------------------
# Each handler is ``fn(cls, node, **kwargs) -> list[tf.Tensor]``; ``node`` is onnx-tf's OnnxNode
# (``inputs``, ``outputs``, ``attrs``, ``name``) and ``kwargs["tensor_dict"]`` maps names to tensors.


def _tf() -> Any:
    import tensorflow as tf

    return tf


def _input(node: Any, kwargs: dict[str, Any], index: int) -> Any:
    """The node's ``index``-th input tensor, or None when absent or given as ''."""
    if index >= len(node.inputs) or not node.inputs[index]:
        return None
    return kwargs["tensor_dict"][node.inputs[index]]


def _static_ints(node: Any, kwargs: dict[str, Any], index: int, what: str) -> list[int] | None:
    """A constant int input (axes, ...) as a Python list; None when the input is absent.

    Exported models give axes as initializers / Constant nodes, so their value is known while
    tracing; a computed one is reported rather than guessed.
    """
    tensor = _input(node, kwargs, index)
    if tensor is None:
        return None
    value = _tf().get_static_value(tensor)
    if value is None:
        raise NotImplementedError(
            f"{node.op_type} node {node.name!r}: input '{what}' is computed at run time; "
            "only a constant (initializer or Constant node) is supported"
        )
    return [int(v) for v in value.reshape(-1)]


def _str_attr(node: Any, name: str, default: str) -> str:
    value = node.attrs.get(name, default)
    return value.decode() if isinstance(value, bytes) else value


def _rank(x: Any, node: Any) -> int:
    rank = x.shape.rank
    if rank is None:
        raise NotImplementedError(f"{node.op_type} node {node.name!r}: input rank is unknown")
    return int(rank)


def unsqueeze_13(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Unsqueeze-13+: ``axes`` is an input, not an attribute."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    axes = _static_ints(node, kwargs, 1, "axes") or []
    out_rank = _rank(x, node) + len(axes)
    for axis in sorted(a % out_rank for a in axes):
        x = tf.expand_dims(x, axis)
    return [x]


def squeeze_13(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Squeeze-13+: optional ``axes`` input; without it every size-1 dimension goes."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    axes = _static_ints(node, kwargs, 1, "axes")
    if not axes:
        return [tf.squeeze(x)]
    rank = _rank(x, node)
    return [tf.squeeze(x, axis=sorted(a % rank for a in axes))]


def shape_15(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Shape with ``start`` / ``end``: onnx-tf's takes ``len()`` of the run-time shape, which only
    AutoGraph can trace; the rank is static, so the slice bounds are plain ints."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    rank = _rank(x, node)

    def bound(value: int) -> int:
        return min(max(value + rank if value < 0 else value, 0), rank)

    start, end = bound(node.attrs.get("start", 0)), bound(node.attrs.get("end", rank))
    return [tf.shape(x, out_type=tf.int64)[start:max(start, end)]]


def _reduce_fn(op_type: str) -> Callable[..., Any]:
    tf = _tf()
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
    axes = _static_ints(node, kwargs, 1, "axes")
    if not axes:
        # noop skips only the reduction: like onnx's function bodies and onnxruntime, ReduceLogSum
        # still takes the log, ReduceSumSquare the square (tf.reduce_*(axis=[]) reduces nothing)
        axes = [] if node.attrs.get("noop_with_empty_axes", 0) else None
    keepdims = node.attrs.get("keepdims", 1) == 1
    if node.op_type in ("ReduceMax", "ReduceMin") and x.dtype == _tf().bool:
        tf = _tf()
        fn = tf.reduce_any if node.op_type == "ReduceMax" else tf.reduce_all
        return [fn(x, axis=axes, keepdims=keepdims)]
    return [_reduce_fn(node.op_type)(x, axis=axes, keepdims=keepdims)]


def resize_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Resize-18/19: same as Resize-13 unless the new attributes are used."""
    attrs = node.attrs
    unsupported = []
    if attrs.get("antialias", 0):
        unsupported.append("antialias=1")
    if attrs.get("axes") is not None:
        unsupported.append("axes")
    policy = _str_attr(node, "keep_aspect_ratio_policy", "stretch")
    if policy != "stretch":
        unsupported.append(f"keep_aspect_ratio_policy={policy}")
    if _str_attr(node, "coordinate_transformation_mode", "half_pixel") == "half_pixel_symmetric":
        unsupported.append("coordinate_transformation_mode=half_pixel_symmetric")
    if unsupported:
        raise NotImplementedError(
            f"Resize node {node.name!r} uses {', '.join(unsupported)}, which onnx-tf does not implement"
        )
    return getattr(cls, "version_11").__func__(cls, node, **kwargs)  # noqa: B009 - cls is onnx-tf's Resize


resize_18.delegates_to_onnx_tf = True  # type: ignore[attr-defined]


def layer_normalization_17(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """LayerNormalization-17 from primitives (normalise over dims ``axis``..rank-1)."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    scale = _input(node, kwargs, 1)
    bias = _input(node, kwargs, 2)
    rank = _rank(x, node)
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
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    return [tf.nn.gelu(x, approximate=_str_attr(node, "approximate", "none") == "tanh")]


def split_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Split-18: sizes from the ``split`` input, or ``num_outputs`` (last chunk may be smaller)."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    axis = int(node.attrs.get("axis", 0))
    sizes = _static_ints(node, kwargs, 1, "split")
    if not sizes:
        n = int(node.attrs.get("num_outputs", len(node.outputs)))
        dim = x.shape[axis]
        if dim is None:
            raise NotImplementedError(f"Split node {node.name!r}: split axis has an unknown size")
        chunk = -(-int(dim) // n)
        sizes = [chunk] * (n - 1) + [int(dim) - chunk * (n - 1)]
    return list(tf.split(x, sizes, axis=axis))


def pad_18(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """Pad-18+: adds an ``axes`` input (and mode 'wrap' in 19), otherwise like Pad-13."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    rank = _rank(x, node)
    pads = _static_ints(node, kwargs, 1, "pads") or []
    value = _input(node, kwargs, 2)
    axes = _static_ints(node, kwargs, 3, "axes")
    axes = [a % rank for a in axes] if axes else list(range(rank))
    n = len(axes)
    full = [[0, 0] for _ in range(rank)]
    for i, a in enumerate(axes):
        full[a] = [pads[i], pads[i + n]]
    mode = _str_attr(node, "mode", "constant")
    if any(p < 0 for pair in full for p in pair):
        raise NotImplementedError(f"Pad node {node.name!r}: negative pads are not supported")
    if mode == "constant":
        cval = tf.reshape(value, []) if value is not None else tf.zeros([], x.dtype)
        return [tf.pad(x, full, mode="CONSTANT", constant_values=cval)]
    if mode == "reflect":
        return [tf.pad(x, full, mode="REFLECT")]
    if mode == "edge":
        for a, (lo, hi) in enumerate(full):
            first = tf.gather(x, [0], axis=a)
            last = tf.gather(x, tf.shape(x)[a : a + 1] - 1, axis=a)
            x = tf.concat([tf.repeat(first, lo, axis=a), x, tf.repeat(last, hi, axis=a)], axis=a) if lo or hi else x
        return [x]
    raise NotImplementedError(f"Pad node {node.name!r}: mode {mode!r} is not supported")


def _same_as(version: int, guard: Callable[[Any], str | None] | None = None) -> Callable[..., list[Any]]:
    """A handler for a newer op version that only widened the types (or added an attribute that
    ``guard`` checks is unused): run onnx-tf's own ``version_<version>`` of the same class."""

    def handler(cls: type, node: Any, **kwargs: Any) -> list[Any]:
        reason = guard(node) if guard is not None else None
        if reason:
            raise NotImplementedError(f"{node.op_type} node {node.name!r}: {reason} is not supported by onnx-tf")
        return getattr(cls, f"version_{version}").__func__(cls, node, **kwargs)

    handler.__name__ = f"same_as_{version}"
    handler.delegates_to_onnx_tf = True  # type: ignore[attr-defined]
    handler.__doc__ = f"Reuse onnx-tf's version_{version}."
    return handler


def _no_reduction(node: Any) -> str | None:
    """ScatterElements/ScatterND-16+ added ``reduction``; onnx-tf implements only 'none'."""
    mode = _str_attr(node, "reduction", "none")
    return None if mode == "none" else f"reduction={mode}"


def _no_dilation(node: Any) -> str | None:
    """AveragePool-19 / LpPool-18 added ``dilations`` (LpPool also ``ceil_mode``)."""
    if any(int(d) != 1 for d in node.attrs.get("dilations", [])):
        return "dilations != 1"
    if node.op_type == "LpPool" and node.attrs.get("ceil_mode", 0):
        return "ceil_mode=1"
    return None


# (op, newer since_version) -> (onnx-tf version with the same semantics, guard)
_ALIASES: dict[tuple[str, int], tuple[int, Callable[[Any], str | None] | None]] = {
    **{(op, 16): (v, None) for op, v in (("Where", 9), ("LeakyRelu", 6), ("GreaterOrEqual", 12),
                                           ("LessOrEqual", 12), ("PRelu", 9))},
    **{(op, v): (13, None) for op in ("If", "Loop") for v in (16, 19, 21)},
    **{("Scan", v): (11, None) for v in (16, 19, 21)},
    **{(op, v): (13, _no_reduction) for op in ("ScatterElements", "ScatterND") for v in (16, 18)},
    ("AveragePool", 19): (11, _no_dilation),
    ("LpPool", 18): (11, _no_dilation),
    **{(op, v): (13, None) for op in ("Cast", "Constant") for v in (19, 21)},
    **{("CastLike", v): (15, None) for v in (19, 21)},
    **{("ConstantOfShape", v): (9, None) for v in (20, 21)},
    ("Equal", 19): (13, None),
    **{("Identity", v): (16, None) for v in (19, 21)},
    **{("Size", v): (13, None) for v in (19, 21)},
    ("IsInf", 20): (10, None),
    ("IsNaN", 20): (13, None),
    ("Flatten", 21): (13, None),
    ("Transpose", 21): (13, None),
    **{("Reshape", v): (14, None) for v in (19, 21)},
}


# ---- recurrent ops ----------------------------------------------------------------------------


def _rnn_activation(name: str, alpha: float | None, beta: float | None) -> Callable[[Any], Any]:
    tf = _tf()
    key = name.lower()
    simple = {
        "sigmoid": tf.sigmoid,
        "tanh": tf.tanh,
        "relu": tf.nn.relu,
        "softsign": tf.nn.softsign,
        "softplus": tf.nn.softplus,
    }
    if key in simple:
        return simple[key]
    if key == "leakyrelu":
        return lambda v: tf.nn.leaky_relu(v, alpha=0.01 if alpha is None else alpha)
    if key == "hardsigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda v: tf.clip_by_value(a * v + b, 0.0, 1.0)
    if key == "elu":
        a = 1.0 if alpha is None else alpha
        return lambda v: tf.where(v >= 0, v, a * (tf.exp(v) - 1.0))
    if key == "affine":
        a, b = (1.0 if alpha is None else alpha), (0.0 if beta is None else beta)
        return lambda v: a * v + b
    if key == "scaledtanh":
        a, b = (1.0 if alpha is None else alpha), (1.0 if beta is None else beta)
        return lambda v: a * tf.tanh(b * v)
    if key == "thresholdedrelu":
        a = 1.0 if alpha is None else alpha
        return lambda v: tf.where(v > a, v, tf.zeros_like(v))
    raise NotImplementedError(f"RNN activation {name!r} is not supported")


def _rnn_activations(node: Any, defaults: Sequence[str], num_directions: int) -> list[list[Callable[[Any], Any]]]:
    """Per direction, the activation functions (ONNX lists them direction after direction)."""
    names = [n.decode() if isinstance(n, bytes) else n for n in node.attrs.get("activations", [])]
    alphas = list(node.attrs.get("activation_alpha", []))
    betas = list(node.attrs.get("activation_beta", []))
    k = len(defaults)
    names = names or list(defaults) * num_directions
    if len(names) == k and num_directions == 2:
        names = names * 2
    out = []
    for d in range(num_directions):
        fns = []
        for i in range(k):
            j = d * k + i
            alpha = alphas[j] if j < len(alphas) else None
            beta = betas[j] if j < len(betas) else None
            fns.append(_rnn_activation(names[j], alpha, beta))
        out.append(fns)
    return out


def _rnn_prepare(node: Any, kwargs: dict[str, Any], gates: int) -> dict[str, Any]:
    """Shared input handling of LSTM/GRU: layout, direction, missing optional inputs."""
    tf = _tf()
    x = kwargs["tensor_dict"][node.inputs[0]]
    layout = int(node.attrs.get("layout", 0))
    if layout == 1:  # [batch, seq, ...] -> [seq, batch, ...]
        x = tf.transpose(x, [1, 0, 2])
    w = kwargs["tensor_dict"][node.inputs[1]]
    r = kwargs["tensor_dict"][node.inputs[2]]
    hidden = int(node.attrs.get("hidden_size", r.shape[-1]))
    direction = _str_attr(node, "direction", "forward")
    num_directions = 2 if direction == "bidirectional" else 1
    b = _input(node, kwargs, 3)
    if b is None:
        b = tf.zeros([num_directions, 2 * gates * hidden], x.dtype)
    seq_lens = _input(node, kwargs, 4)
    if seq_lens is not None:
        static = tf.get_static_value(seq_lens)
        if static is None or x.shape[0] is None or any(int(v) != int(x.shape[0]) for v in static.reshape(-1)):
            raise NotImplementedError(
                f"{node.op_type} node {node.name!r}: sequence_lens shorter than the sequence "
                "(padded batches) is not supported"
            )
    batch = tf.shape(x)[1]

    def initial(index: int) -> Any:
        given = _input(node, kwargs, index)
        if given is None:
            return tf.zeros(tf.stack([num_directions, batch, hidden]), x.dtype)
        return tf.transpose(given, [1, 0, 2]) if layout == 1 else given

    return {
        "x": x,
        "w": w,
        "r": r,
        "b": b,
        "hidden": hidden,
        "direction": direction,
        "num_directions": num_directions,
        "layout": layout,
        "initial": initial,
        "clip": node.attrs.get("clip"),
    }


def _rnn_outputs(node: Any, ys: list[Any], finals: list[list[Any]], layout: int) -> list[Any]:
    """Stack per-direction results into ONNX's Y [seq, dirs, batch, H] and Y_h/Y_c [dirs, batch, H]."""
    tf = _tf()
    y = tf.stack(ys, axis=1)
    states = [tf.stack(list(s), axis=0) for s in zip(*finals)]
    if layout == 1:
        y = tf.transpose(y, [2, 0, 1, 3])  # [batch, seq, dirs, H]
        states = [tf.transpose(s, [1, 0, 2]) for s in states]
    return [y, *states][: len(node.outputs)]


def _clip(v: Any, clip: float | None) -> Any:
    """ONNX RNN ``clip``: bounds the inputs of the activations."""
    return v if clip is None else _tf().clip_by_value(v, -clip, clip)


def _run_direction(step: Callable[[Any, Any], Any], x: Any, init: Any, reverse: bool) -> tuple[Any, Any]:
    """Scan ``step`` over time; returns all outputs (in input time order) and the last state."""
    tf = _tf()
    xs = tf.reverse(x, [0]) if reverse else x
    states = tf.scan(step, xs, initializer=init)
    h_all = states[0] if isinstance(states, (tuple, list)) else states
    last = tuple(s[-1] for s in states) if isinstance(states, (tuple, list)) else (states[-1],)
    if reverse:
        h_all = tf.reverse(h_all, [0])
    return h_all, last


def _lstm_step(w: Any, r: Any, b: Any, peep: Any, acts: list[Callable[[Any], Any]], clip: float | None,
               hidden: int) -> Callable[[Any, Any], Any]:
    """One LSTM time step for one direction: ``(h, c), x_t -> (h', c')``; ONNX gate order i, o, f, c."""
    tf = _tf()
    f_act, g_act, h_act = acts
    wt, rt, bias = tf.transpose(w), tf.transpose(r), b[: 4 * hidden] + b[4 * hidden :]
    pi, po, pf = (None, None, None) if peep is None else tf.split(peep, 3)

    def step(state: Any, xt: Any) -> Any:
        h, c = state
        zi, zo, zf, zc = tf.split(tf.matmul(xt, wt) + tf.matmul(h, rt) + bias, 4, axis=-1)
        if pi is not None:
            zi, zf = zi + pi * c, zf + pf * c
        i, f, g = f_act(_clip(zi, clip)), f_act(_clip(zf, clip)), g_act(_clip(zc, clip))
        c_new = f * c + i * g
        if po is not None:
            zo = zo + po * c_new
        return (f_act(_clip(zo, clip)) * h_act(c_new), c_new)

    return step


def _gru_step(w: Any, r: Any, b: Any, acts: list[Callable[[Any], Any]], clip: float | None, hidden: int,
              linear_before_reset: bool) -> Callable[[Any, Any], Any]:
    """One GRU time step for one direction: ``h, x_t -> h'``; ONNX gate order z, r, h."""
    tf = _tf()
    f_act, g_act = acts
    w_zr, w_h = tf.split(w, [2 * hidden, hidden], axis=0)
    r_zr, r_h = tf.split(r, [2 * hidden, hidden], axis=0)
    wb, rb = b[: 3 * hidden], b[3 * hidden :]
    b_zr, wb_h, rb_h = wb[: 2 * hidden] + rb[: 2 * hidden], wb[2 * hidden :], rb[2 * hidden :]

    def step(h: Any, xt: Any) -> Any:
        zr = tf.matmul(xt, w_zr, transpose_b=True) + tf.matmul(h, r_zr, transpose_b=True) + b_zr
        z, r_gate = tf.split(f_act(_clip(zr, clip)), 2, axis=-1)
        x_part = tf.matmul(xt, w_h, transpose_b=True) + wb_h
        if linear_before_reset:
            hh = x_part + r_gate * (tf.matmul(h, r_h, transpose_b=True) + rb_h)
        else:
            hh = x_part + tf.matmul(r_gate * h, r_h, transpose_b=True) + rb_h
        hh = g_act(_clip(hh, clip))
        return (1.0 - z) * hh + z * h

    return step


def rnn_7(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """RNN-7/14 (``h' = f(x W^T + h R^T + Wb + Rb)``) as a ``tf.scan``; onnx-tf's needs Keras 2 cells."""
    tf = _tf()
    p = _rnn_prepare(node, kwargs, gates=1)
    h0 = p["initial"](5)
    acts = _rnn_activations(node, ["Tanh"], p["num_directions"])
    ys, finals = [], []
    for d in range(p["num_directions"]):
        wt, rt = tf.transpose(p["w"][d]), tf.transpose(p["r"][d])
        bias = p["b"][d][: p["hidden"]] + p["b"][d][p["hidden"] :]

        def step(h: Any, xt: Any, wt: Any = wt, rt: Any = rt, bias: Any = bias, act: Any = acts[d][0]) -> Any:
            return act(_clip(tf.matmul(xt, wt) + tf.matmul(h, rt) + bias, p["clip"]))

        y, last = _run_direction(step, p["x"], h0[d], reverse=p["direction"] == "reverse" or d == 1)
        ys.append(y)
        finals.append(list(last))
    return _rnn_outputs(node, ys, finals, p["layout"])


def lstm_7(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """LSTM-7/14 as a ``tf.scan`` over the ONNX equations; needs no Keras (gone LSTMStateTuple)."""
    p = _rnn_prepare(node, kwargs, gates=4)
    if node.attrs.get("input_forget", 0):
        raise NotImplementedError(f"LSTM node {node.name!r}: input_forget=1 is not supported")
    peep = _input(node, kwargs, 7)
    h0, c0 = p["initial"](5), p["initial"](6)
    acts = _rnn_activations(node, ["Sigmoid", "Tanh", "Tanh"], p["num_directions"])
    ys, finals = [], []
    for d in range(p["num_directions"]):
        step = _lstm_step(p["w"][d], p["r"][d], p["b"][d], None if peep is None else peep[d], acts[d], p["clip"],
                          p["hidden"])
        y, last = _run_direction(step, p["x"], (h0[d], c0[d]), reverse=p["direction"] == "reverse" or d == 1)
        ys.append(y)
        finals.append(list(last))
    return _rnn_outputs(node, ys, finals, p["layout"])


def gru_7(cls: type, node: Any, **kwargs: Any) -> list[Any]:
    """GRU-7/14 as a ``tf.scan``, including ``linear_before_reset=1`` (what PyTorch exports)."""
    p = _rnn_prepare(node, kwargs, gates=3)
    h0 = p["initial"](5)
    acts = _rnn_activations(node, ["Sigmoid", "Tanh"], p["num_directions"])
    lbr = bool(node.attrs.get("linear_before_reset", 0))
    ys, finals = [], []
    for d in range(p["num_directions"]):
        step = _gru_step(p["w"][d], p["r"][d], p["b"][d], acts[d], p["clip"], p["hidden"], lbr)
        y, last = _run_direction(step, p["x"], h0[d], reverse=p["direction"] == "reverse" or d == 1)
        ys.append(y)
        finals.append(list(last))
    return _rnn_outputs(node, ys, finals, p["layout"])


_REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
               "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare")


def _handler_table() -> dict[str, dict[int, Callable[..., list[Any]]]]:
    """ONNX op -> {since_version: handler} that :func:`install` adds to onnx-tf."""
    table: dict[str, dict[int, Callable[..., list[Any]]]] = {
        "Unsqueeze": {v: unsqueeze_13 for v in (13, 21)},
        "Squeeze": {v: squeeze_13 for v in (13, 21)},
        "Resize": {18: resize_18, 19: resize_18},
        "LayerNormalization": {17: layer_normalization_17},
        "Gelu": {20: gelu_20},
        "Split": {18: split_18},
        "Pad": {v: pad_18 for v in (18, 19, 21)},
        "Shape": {v: shape_15 for v in (15, 19, 21)},
        # all versions: onnx-tf's own RNN handlers need Keras 2 cells (and share one between nodes)
        "RNN": {v: rnn_7 for v in (1, 7, 14)},
        "GRU": {v: gru_7 for v in (1, 3, 7, 14)},
        "LSTM": {v: lstm_7 for v in (1, 7, 14)},
    }
    for op in _REDUCE_OPS:
        table[op] = {18: reduce_18, 20: reduce_18} if op in ("ReduceMax", "ReduceMin") else {18: reduce_18}
    # onnx-tf's own ReduceSum-13 reduces over the first of several axes only
    table["ReduceSum"] = {13: reduce_18}
    for (op, version), (old, guard) in _ALIASES.items():
        table.setdefault(op, {})[version] = _same_as(old, guard)
    return table


def handled_versions() -> dict[str, list[int]]:
    """ONNX op -> op versions this module adds to (or replaces in) onnx-tf; for reports and tests."""
    return {op: sorted(versions) for op, versions in sorted(_handler_table().items())}


def _register_handlers() -> None:
    """Attach our ``version_N`` methods to onnx-tf's handler classes, or create the class."""
    import tensorflow as tf
    from onnx_tf.handlers.backend_handler import BackendHandler

    existing = {c.ONNX_OP: c for c in BackendHandler.__subclasses__() if getattr(c, "DOMAIN", "") == ""}
    for op, versions in _handler_table().items():
        cls = existing.get(op)
        if cls is None:
            cls = type(op, (BackendHandler,), {"ONNX_OP": op, "DOMAIN": "", "__module__": __name__})
            _NEW_HANDLER_CLASSES[op] = cls
        if op in ("RNN", "GRU", "LSTM"):
            # ours need no tf.Variables and accept every attribute combination we implement
            setattr(cls, "get_req_vars_template", classmethod(lambda c, node, init_dict: {}))  # noqa: B010
            setattr(cls, "args_check", classmethod(lambda c, node, **kw: None))  # noqa: B010
        for version, fn in versions.items():
            # Ours use plain Python control flow only: AutoGraph conversion adds nothing but
            # warnings. Those delegating to onnx-tf's own code keep AutoGraph, as onnx-tf expects.
            if not getattr(fn, "delegates_to_onnx_tf", False):
                fn = tf.autograph.experimental.do_not_convert(fn)
            setattr(cls, f"version_{version}", classmethod(fn))


def _track_failing_node() -> None:
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


def _trace_without_autograph() -> None:
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


def last_failed_node() -> tuple[str, str, str] | None:
    """``(op_type, node_name, domain)`` of the node whose conversion last failed in this thread."""
    return getattr(_FAILED, "node", None)


def reset_failed_node() -> None:
    """Forget the last failing node (call before a conversion)."""
    _FAILED.node = None


def install() -> None:
    """Make ``import onnx_tf`` work and register the extra handlers; idempotent, cheap once done.

    Raises ImportError when onnx, tensorflow or onnx_tf themselves are not installed.
    """
    global _INSTALLED
    if _INSTALLED:
        return
    with _LOCK:
        if _INSTALLED:
            return
        _ensure_onnx_mapping()
        _ensure_stand_ins()
        importlib.import_module("onnx_tf.backend")
        _register_handlers()
        _track_failing_node()
        _trace_without_autograph()
        _INSTALLED = True
