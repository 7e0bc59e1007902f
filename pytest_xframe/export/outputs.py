"""Stable names for a model's outputs, whatever structure ``forward`` returns.

Exporters flatten tuples, lists and dicts depth-first in insertion order; we flatten the same
way so ONNX output names and torch outputs line up one to one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def flatten(obj: Any, is_leaf: Callable[[Any], bool], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield ``(name, leaf)`` pairs; a bare tensor is ``output``, tuple items ``output_<i>``."""
    for name, _, leaf in _walk(obj, is_leaf, prefix, "output"):
        yield name, leaf


def _walk(obj: Any, is_leaf: Callable[[Any], bool], prefix: str, path: str) -> Iterator[tuple[str, str, Any]]:
    """``(name, path, leaf)``: the ONNX name, where forward's output holds it (``output['a'][0]``), the leaf."""
    if obj is None:
        return
    if is_leaf(obj):
        yield (prefix or "output", path, obj)
    elif isinstance(obj, Mapping):
        for key, value in obj.items():
            yield from _walk(value, is_leaf, f"{prefix}.{key}" if prefix else str(key), f"{path}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from _walk(value, is_leaf, f"{prefix}.{i}" if prefix else f"output_{i}", f"{path}[{i}]")
    else:
        raise TypeError(f"unsupported output type {type(obj).__name__} at {prefix or 'output'}")


#: a path step ``['']`` (an empty dict key), not one inside a quoted key
_EMPTY_KEY = re.compile(r"\[''\](?=\[|$)")


def unclear_name(obj: Any, is_leaf: Callable[[Any], bool], input_names: Iterable[str]) -> str | None:
    """Why the outputs' names would not tell them apart, or None: an empty dict key (it would be
    renamed), two outputs flattening to one name (``{"a": {"b": y}, "a.b": z}``), an output named
    like an input (ONNX names each value once)."""
    seen: dict[str, str] = {}
    inputs = set(input_names)
    for name, path, _ in _walk(obj, is_leaf, "", "output"):
        if _EMPTY_KEY.search(path):
            return f"{path} has an empty dict key, which cannot name an ONNX output"
        if name in seen:
            return f"{seen[name]} and {path} both flatten to the output name {name!r}"
        if name in inputs:
            return f"{path} is named {name!r}, like the input {name!r}: ONNX names each value once"
        seen[name] = path
    return None


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
    """A raw output's tensors as numpy, under the names the ONNX export gets; a complex tensor as
    its (real, imag) pairs along a last axis of 2, which is how the ONNX export returns it."""
    import torch

    return {
        name: (torch.view_as_real(t) if t.is_complex() else t).detach().cpu().numpy()
        for name, t in flatten(out, lambda x: isinstance(x, torch.Tensor))
    }


def real_pairs(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A backend's outputs with any complex array as (real, imag) pairs along a last axis of 2,
    as torch's are (``as_numpy``): ONNX has no complex outputs, a framework may still return one."""
    return {k: np.stack([v.real, v.imag], axis=-1) if np.iscomplexobj(v) else v for k, v in outputs.items()}
