"""Make onnx-tf 1.10.0 (its last release) import and work on today's onnx / TensorFlow / Keras.

onnx-tf 1.10.0 stopped at onnx ~1.14 and TF 2.15 / Keras 2. On onnx 1.23, TF 2.21 and Keras 3 it
fails in three ways, each fixed here at run time (site-packages is never edited):

1. Import: it uses ``onnx.mapping`` / ``onnx.helper.mapping`` (removed in onnx 1.17) and imports
   ``tensorflow_addons`` (Hardmax) and ``tensorflow_probability`` (Bernoulli), which do not install
   on TF 2.21. We rebuild ``onnx.mapping`` from ``onnx._mapping`` only when it is missing
   (:mod:`.mapping`), and put stand-ins in ``sys.modules`` only when the real packages cannot be
   imported (:mod:`.stand_ins`). A stand-in raises :class:`MissingOptionalModule` (naming the op,
   the module and the fix) the moment a handler uses it, so a model that needs it fails loudly
   instead of converting wrongly.
2. Coverage: no handlers for op versions newer than ~opset 15. We add Unsqueeze/Squeeze-13,
   Reduce*-18 (and ReduceSum-13, whose onnx-tf version reduces over the first axis only),
   Reshape-19, Resize-18/19, LayerNormalization-17, Gelu-20, Split-18, Pad-11+ (onnx-tf's own
   Pad-11/13 fails with ``KeyError: ''`` on the empty optional input the TorchScript exporter
   writes), GridSample-16/20/22 (no handler at all in onnx-tf), and map the op
   versions of opsets 16-21 that only widened the types (Where-16, Cast-19, ...) onto onnx-tf's
   older handler, after checking any new attribute is unused (:mod:`.handlers`, one module per op
   family; see :func:`handled_versions`).
3. Recurrent ops: its GRU rejects ``linear_before_reset=1`` (what PyTorch exports), its LSTM
   uses ``LSTMStateTuple`` (gone with Keras 3), and all three share one Keras cell between the
   RNN nodes of a model. We replace RNN, GRU and LSTM with small ``tf.scan`` implementations of
   the ONNX equations, which need no Keras at all (:mod:`.handlers.recurrent`).

And one for speed: onnx-tf traces its module with AutoGraph, which transpiles the source of every
handler a model uses, the first time each process meets it: 0.9-1.8 s of a small model's 1-2 s
conversion. The handlers build the graph with Python control flow over static attributes, so the
module is traced without AutoGraph (0.1 s), and :func:`with_autograph` brings it back for the few
that need it (NonMaxSuppression loops over a tensor in Python): ``convert``
retries with it whenever tracing without fails for another reason than a missing handler.

Every use of onnx-tf's or TensorFlow's internals (handler registration, the per-node conversion
call, the traced module call) sits in :mod:`.patches`, each with the versions it was checked
against; the handlers use only onnx-tf's handler interface (``node``, ``tensor_dict``).

:func:`install` does all of that once per process. Nothing happens at import time of this
package, and it imports onnx / tensorflow / onnx_tf only inside functions.
"""

from __future__ import annotations

import importlib
import threading

from .handlers import RECURRENT_OPS, handled_versions, handler_table
from .mapping import ensure_onnx_mapping
from .patches import (
    hold_as_variables,
    last_failed_node,
    prepare_unchecked,
    register_handlers,
    reset_failed_node,
    trace_without_autograph,
    track_failing_node,
    with_autograph,
)
from .stand_ins import MissingOptionalModule, ensure_stand_ins

__all__ = [
    "MissingOptionalModule",
    "handled_versions",
    "hold_as_variables",
    "install",
    "last_failed_node",
    "prepare_unchecked",
    "reset_failed_node",
    "with_autograph",
]

_LOCK = threading.Lock()
_INSTALLED = False


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
        ensure_onnx_mapping()
        ensure_stand_ins()
        importlib.import_module("onnx_tf.backend")
        register_handlers(handler_table(), RECURRENT_OPS)
        track_failing_node()
        trace_without_autograph()
        _INSTALLED = True
