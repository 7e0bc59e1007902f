"""Stable names for a model's outputs, whatever structure ``forward`` returns.

Exporters flatten tuples, lists and dicts depth-first in insertion order; we flatten the same
way so ONNX output names and torch outputs line up one to one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def flatten(obj: Any, is_leaf: Callable[[Any], bool], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(name, leaf)`` pairs; a bare tensor is ``output``, tuple items ``output_<i>``."""
    if obj is None:
        return
    if is_leaf(obj):
        yield (prefix or "output", obj)
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from flatten(value, is_leaf, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from flatten(value, is_leaf, f"{prefix}.{i}" if prefix else f"output_{i}")
    else:
        raise TypeError(f"unsupported output type {type(obj).__name__} at {prefix or 'output'}")


def torch_outputs(model: Any, feeds: Mapping[str, np.ndarray], names: list[str], positional: bool) -> dict[str, np.ndarray]:
    """Run ``model`` on numpy ``feeds``: its outputs as numpy, under the names the ONNX export gets.

    ``names`` orders positional arguments as ``forward`` declares them.
    """
    return as_numpy(call_forward(model, feeds, names, positional))


def call_forward(model: Any, feeds: Mapping[str, np.ndarray], names: list[str], positional: bool) -> Any:
    """``model``'s raw output for numpy ``feeds`` (no gradients recorded)."""
    import torch

    from .to_onnx import torch_feeds

    tensors = torch_feeds(model, feeds, names)
    with torch.no_grad():
        return model(*tensors.values()) if positional else model(**tensors)


def as_numpy(out: Any) -> dict[str, np.ndarray]:
    """A raw output's tensors as numpy, under the names the ONNX export gets."""
    import torch

    return {name: t.detach().cpu().numpy() for name, t in flatten(out, lambda x: isinstance(x, torch.Tensor))}
