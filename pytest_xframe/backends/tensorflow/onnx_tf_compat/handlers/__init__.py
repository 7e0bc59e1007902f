"""The handlers this layer adds to (or replaces in) onnx-tf, one module per op family.

:func:`handler_table` is the one list of them; :mod:`..patches` attaches it to onnx-tf.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .aliases import ALIASES, same_as
from .grid_sample import grid_sample_16
from .normalization import gelu_20, layer_normalization_17
from .recurrent import gru_7, lstm_7, rnn_7
from .reduce import REDUCE_OPS, reduce_18
from .resize_pad_split import pad_11, resize_18, split_18
from .shape import shape_15, squeeze_13, unsqueeze_13

__all__ = ["RECURRENT_OPS", "handled_versions", "handler_table"]

Handler = Callable[..., list[Any]]

#: ops whose every version is ours (onnx-tf's need Keras 2 cells and share one between nodes)
RECURRENT_OPS = ("RNN", "GRU", "LSTM")


def handler_table() -> dict[str, dict[int, Handler]]:
    """ONNX op -> {since_version: handler} that ``install()`` adds to onnx-tf."""
    table: dict[str, dict[int, Handler]] = {
        "Unsqueeze": {v: unsqueeze_13 for v in (13, 21)},
        "Squeeze": {v: squeeze_13 for v in (13, 21)},
        "Resize": {18: resize_18, 19: resize_18},
        "LayerNormalization": {17: layer_normalization_17},
        "Gelu": {20: gelu_20},
        "Split": {18: split_18},
        "GridSample": {v: grid_sample_16 for v in (16, 20, 22)},
        "Pad": {v: pad_11 for v in (11, 13, 18, 19, 21)},
        "Shape": {v: shape_15 for v in (15, 19, 21)},
        "RNN": {v: rnn_7 for v in (1, 7, 14)},
        "GRU": {v: gru_7 for v in (1, 3, 7, 14)},
        "LSTM": {v: lstm_7 for v in (1, 7, 14)},
    }
    for op in REDUCE_OPS:
        table[op] = {18: reduce_18, 20: reduce_18} if op in ("ReduceMax", "ReduceMin") else {18: reduce_18}
    # onnx-tf's own ReduceSum-13 reduces over the first of several axes only
    table["ReduceSum"] = {13: reduce_18}
    for (op, version), (old, guard) in ALIASES.items():
        table.setdefault(op, {})[version] = same_as(old, guard)
    return table


def handled_versions() -> dict[str, list[int]]:
    """ONNX op -> op versions this layer adds to (or replaces in) onnx-tf; for reports and tests."""
    return {op: sorted(versions) for op, versions in sorted(handler_table().items())}
