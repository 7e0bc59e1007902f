"""The torch side of the export search: one run of the model with every module hooked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ModuleCall", "TorchRun", "run_torch_hooked"]


@dataclass(frozen=True)
class ModuleCall:
    """One call of a torch module: the tensors it took and returned, as numpy copies."""

    inputs: list[np.ndarray]
    outputs: list[np.ndarray]


@dataclass(frozen=True)
class TorchRun:
    """What one hooked run of the torch model saw."""

    #: module qualified name ('' is the model itself) -> its calls, in the order they finished
    calls: dict[str, list[ModuleCall]]
    #: the model's own output tensors, flattened
    outputs: list[np.ndarray]


def _tensor_leaves(obj: Any, torch: Any) -> list[Any]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, Mapping):
        return [t for v in obj.values() for t in _tensor_leaves(v, torch)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensor_leaves(v, torch)]
    return []


def _to_numpy(t: Any) -> np.ndarray:
    return t.detach().cpu().clone().numpy()


def _hook_every_module(torch_model: Any, inputs: dict[str, list[list[np.ndarray]]],
                       outputs: dict[str, list[list[np.ndarray]]]) -> list[Any]:
    """Register hooks that append each module call's tensor inputs / outputs; returns the handles."""
    import torch

    def hook(qname: str) -> Callable[..., None]:
        def capture(module: Any, args: Any, kwargs: Any, output: Any) -> None:
            outputs.setdefault(qname, []).append([_to_numpy(t) for t in _tensor_leaves(output, torch)])
        return capture

    def pre_hook(qname: str) -> Callable[..., None]:
        def capture(module: Any, args: Any, kwargs: Any) -> None:
            # copied before forward runs, in case forward changes them in place
            inputs.setdefault(qname, []).append([_to_numpy(t) for t in _tensor_leaves(list(args) + list(kwargs.values()), torch)])
        return capture

    handles = []
    for qname, module in torch_model.named_modules():
        handles.append(module.register_forward_pre_hook(pre_hook(qname), with_kwargs=True))
        handles.append(module.register_forward_hook(hook(qname), with_kwargs=True))
    return handles


def run_torch_hooked(torch_model: Any, feeds: Mapping[str, np.ndarray], positional: bool) -> TorchRun:
    """Run the model once with every module hooked: per module, per call, its tensors in and out."""
    import torch

    from ...export.to_onnx import model_device

    device = model_device(torch_model)
    tensors = {k: torch.from_numpy(np.array(v, copy=True)).to(device) for k, v in feeds.items()}
    inputs: dict[str, list[list[np.ndarray]]] = {}
    outputs: dict[str, list[list[np.ndarray]]] = {}
    handles = _hook_every_module(torch_model, inputs, outputs)
    try:
        with torch.no_grad():
            out = torch_model(*tensors.values()) if positional else torch_model(**tensors)
    finally:
        for handle in handles:
            handle.remove()
    # calls of one module start and finish in the same order unless it recurses into itself
    calls: dict[str, list[ModuleCall]] = {}
    for qname, outs in outputs.items():
        ins = inputs.get(qname, [])
        calls[qname] = [ModuleCall(ins[i] if i < len(ins) else [], o) for i, o in enumerate(outs)]
    return TorchRun(calls, [_to_numpy(t) for t in _tensor_leaves(out, torch)])
