"""One sample of ``data=``, bound to the model's inputs and checked against their specs.

A sample is a mapping by input name (an ``.npz``'s arrays, a dict), a tuple in input order or a
single array; a ``label`` key, or one value more than the model has inputs, is its label. Each
value must fit its input's spec, as calibration samples must (``calibration.check_value``): float
data for a float input, integer data for an integer one, each ``Dim`` within its range. A value
that lacks only a leading batch axis gets one of size 1 (a row of a stacked ``.npz``). Float
inputs must be finite; integer inputs must lie within the spec's ``low``/``high`` (token ids
beyond a vocabulary are an index error, not a parity result). Every error is a ``SpecError``
naming the sample (its file, row or index) and the input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...errors import SpecError
from ..calibration import as_array, bind_sample, check_value
from ..spec import Dim, InputSlot

#: the key of a sample's label in an ``.npz`` or a dict
LABEL = "label"


@dataclass(frozen=True)
class Sample:
    """A checked sample: its index in the data, where it came from, its inputs and label."""

    index: int
    where: str
    feeds: dict[str, np.ndarray]
    label: np.ndarray | None = None


def check_sample(values: Any, index: int, where: str, slots: tuple[InputSlot, ...], model_name: str) -> Sample:
    """``values`` as read from a source, bound to the inputs and checked (see the module docstring)."""
    what = f"data sample {where}"
    values, label = _split_label(values, slots)
    bound = bind_sample(values, what, slots, model_name)
    missing = [s.name for s in slots if s.name not in bound and s.spec is not None]
    if missing:
        given = ", ".join(map(repr, bound)) or "nothing"
        raise SpecError(f"{what} lacks input(s) {', '.join(map(repr, missing))}", model=model_name,
                        cause=f"it holds {given}", hint=f"give every input the model takes, keyed by name ('{LABEL}' for a label)")
    feeds = {s.name: _checked(bound.get(s.name, s.value), s, what, model_name) for s in slots}
    return Sample(index, where, feeds, None if label is None else _label(label, what, model_name))


def _split_label(values: Any, slots: tuple[InputSlot, ...]) -> tuple[Any, Any]:
    names = [s.name for s in slots]
    if isinstance(values, Mapping):
        if LABEL in values and LABEL not in names:
            return {k: v for k, v in values.items() if k != LABEL}, values[LABEL]
        return values, None
    if isinstance(values, (tuple, list)) and len(values) == len(names) + 1:
        return tuple(values[:-1]), values[-1]
    return values, None


def _admits_one(entry: int | Dim) -> bool:
    return entry == 1 if isinstance(entry, int) else entry.min <= 1 <= entry.max


def _checked(value: Any, slot: InputSlot, what: str, model_name: str) -> np.ndarray:
    array = as_array(value)
    spec = slot.spec
    if spec is not None and isinstance(array, np.ndarray) and spec.shape and array.ndim == len(spec.shape) - 1 and _admits_one(spec.shape[0]):
        array = array[None]
    if spec is not None and isinstance(array, np.ndarray) and array.dtype.kind in "iu" and array.size:
        low, high = spec.bounds
        if array.min() < low or array.max() > high:
            raise SpecError(f"{what}, input {slot.name!r} holds values in [{array.min()}, {array.max()}], outside the spec's [{low:g}, {high:g}]",
                            model=model_name, hint="fix the sample, or widen the TensorSpec's low/high if those values are valid")
    checked = check_value(array, slot, what, model_name)
    if checked.dtype.kind == "f" and not np.isfinite(checked).all():
        bad = int(np.size(checked) - np.isfinite(checked).sum())
        raise SpecError(f"{what}, input {slot.name!r} holds {bad} NaN or Inf value(s)", model=model_name,
                        hint="parity is undefined on non-finite inputs: fix or drop the sample")
    return checked


def _label(value: Any, what: str, model_name: str) -> np.ndarray:
    label = as_array(value)
    if not isinstance(label, np.ndarray) or label.dtype.kind not in "iub":
        kind = label.dtype if isinstance(label, np.ndarray) else type(value).__name__
        raise SpecError(f"{what} has a label of {kind}, not class indices", model=model_name,
                        hint="labels are integer class indices, one per row of the classifier's output")
    return label
