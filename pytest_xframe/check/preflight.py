"""Checks made before anything runs: the model, the opset against the exporter, the input size.

Each refusal is a ``SpecError`` naming the value, why it cannot work and what to do, so a user's
mistake never reaches an exporter or a framework and comes back as its traceback.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..errors import SpecError
from ..inputs.spec import Dim, InputSlot

#: layer classes whose output in training mode is random or depends on the batch (torch.nn names)
TRAIN_ONLY_LAYERS = (
    "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "FeatureAlphaDropout",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LazyBatchNorm1d", "LazyBatchNorm2d",
    "LazyBatchNorm3d", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RReLU",
)


def validate_model(model: Any, name: str) -> None:
    """A module, with real weights, in eval mode; the message says exactly what is wrong."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise SpecError(
            f"xframe.check needs a torch.nn.Module, got {type(model).__name__}",
            hint="pass the model instance, e.g. xframe.check(MyModel().eval(), inputs=[...])",
        )
    meta = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if t.is_meta]
    if meta:
        raise SpecError(
            f"model has {len(meta)} parameter(s)/buffer(s) on the meta device, which hold no values to run",
            model=name,
            cause="on meta: " + ", ".join(meta[:3]) + (f" and {len(meta) - 3} more" if len(meta) > 3 else ""),
            hint="load real weights first (model.to_empty(device='cpu') then load_state_dict, or build it off the meta device)",
        )
    training = [n or type(model).__name__ for n, m in model.named_modules() if m.training]
    if training:
        raise _training_error(model, name, training)


def _training_error(model: Any, name: str, training: list[str]) -> SpecError:
    """What training mode does to this model: its train-only layers if it has any, else the mode alone."""
    where = ", ".join(training[:3]) + (f" and {len(training) - 3} more" if len(training) > 3 else "")
    layers = [
        f"{type(m).__name__} at {n or 'the top'}" for n, m in model.named_modules()
        if m.training and type(m).__name__ in TRAIN_ONLY_LAYERS
    ]
    if layers:
        shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        summary = f"model is in training mode and has train-only layers ({shown}): their outputs are random or batch-dependent, so no backend can match"
    else:
        summary = (
            "model is in training mode: it has no dropout or batch-norm layer, but the exporters "
            "record eval behaviour and forward may branch on self.training"
        )
    return SpecError(summary, model=name, cause=f"training=True on {where}", hint="call model.eval() before xframe.check")


def opset_range(exporter: str) -> tuple[int, int]:
    """The opsets torch.onnx's ``exporter`` produces, from torch's own constants.

    Private API, checked against torch 2.13: ``torch.onnx._constants``; the fallbacks are 2.13's values.
    """
    try:
        from torch.onnx import _constants as c
    except ImportError:  # pragma: no cover - a torch without the module
        c = None
    low = getattr(c, "ONNX_MIN_OPSET", 7)
    if exporter == "torchscript":
        return (low, getattr(c, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))
    return (low, getattr(c, "ONNX_MAX_OPSET", 23))


def supported_plan(plan: Iterable[tuple[str, int | None]], backend: str, model_name: str) -> tuple[tuple[str, int | None], ...]:
    """The (exporter, opset) pairs of ``plan`` the exporter can produce; none left is a SpecError
    that gives each exporter's range (a requested opset is never silently replaced)."""
    plan = tuple(plan)
    kept = tuple((e, o) for e, o in plan if o is None or opset_range(e)[0] <= o <= opset_range(e)[1])
    if not kept:
        ranges = "; ".join(f"{e}: {opset_range(e)[0]}..{opset_range(e)[1]}" for e in dict.fromkeys(e for e, _ in plan))
        raise SpecError(
            f"opset {plan[0][1]} is outside what the exporter supports ({ranges})",
            model=model_name,
            backend=backend,
            hint="pick an opset in that range, or leave opset unset for the exporter's choice",
        )
    return kept


def largest_input_bytes(slots: tuple[InputSlot, ...]) -> tuple[int, list[str]]:
    """Bytes of the largest example the specs can draw (every Dim at its max), and each input's
    largest shape, for the message."""
    import numpy as np

    total, shown = 0, []
    for slot in slots:
        if slot.spec is None:
            assert slot.value is not None
            total += slot.value.nbytes
            continue
        shape = [d.max if isinstance(d, Dim) else d for d in slot.spec.shape]
        size = math.prod(shape) * np.dtype(slot.spec.dtype).itemsize
        total += size
        shown.append(f"{slot.name}: {slot.spec.dtype}{shape} = {_bytes(size)}")
    return total, shown


def check_input_size(slots: tuple[InputSlot, ...], limit: int, model_name: str) -> None:
    """Refuse, before anything is drawn, a spec whose largest example exceeds ``limit`` bytes."""
    total, shown = largest_input_bytes(slots)
    if total > limit:
        raise SpecError(
            f"the inputs can reach {_bytes(total)} per example, over the limit of {_bytes(limit)}",
            model=model_name,
            cause="largest shapes: " + "; ".join(shown),
            hint="lower the Dim maxima, or raise max_input_bytes (check option, marker, ini xframe_max_input_bytes, --xframe-max-input-bytes)",
        )


def _bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.3g} {unit} ({n} bytes)"
    return f"{n} bytes"
