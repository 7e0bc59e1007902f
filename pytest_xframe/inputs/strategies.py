"""Hypothesis strategies for a model's inputs, drawn from ``TensorSpec``s.

Small tensors are drawn element by element, so hypothesis can shrink every value. Large ones
(images, long sequences) would make hypothesis slow and trip its data-size limits, so for those it
draws a seed and numpy fills the tensor: shrinking then minimises the dynamic dims and the seed.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import SpecError
from ..formatting import describe_array
from .spec import Dim, InputSlot

#: tensors with at most this many elements are drawn element-wise by hypothesis
ELEMENTWISE_LIMIT = 1024


class Feeds(dict):
    """Named input arrays with a short repr, so a falsifying example reads as shapes, not walls."""

    def __repr__(self) -> str:
        return "Feeds(" + ", ".join(f"{k}={describe_array(v)}" for k, v in self.items()) + ")"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # hypothesis would otherwise print how the value was built (the mapping lambda)
        printer.text(repr(self))


def shared_dims(slots: tuple[InputSlot, ...]) -> dict[str, Dim]:
    """Dims by name across inputs; one name is one size, so bounds must agree."""
    dims: dict[str, Dim] = {}
    for slot in slots:
        for dim in slot.spec.dims if slot.spec else ():
            seen = dims.setdefault(dim.name, dim)
            if seen != dim:
                raise SpecError(
                    f"Dim {dim.name!r} is declared with different bounds: {seen} and {dim}",
                    hint="a Dim name stands for one size across all inputs; give it one range",
                )
    return dims


def _float_bounds(lo: float, hi: float, dtype: np.dtype) -> tuple[float, float]:
    """Round bounds inward to values the dtype can represent (hypothesis insists)."""
    lo_t, hi_t = dtype.type(lo), dtype.type(hi)
    if float(lo_t) < lo:
        lo_t = np.nextafter(lo_t, dtype.type(np.inf))
    if float(hi_t) > hi:
        hi_t = np.nextafter(hi_t, dtype.type(-np.inf))
    return float(lo_t), float(hi_t)


def _array(slot: InputSlot, sizes: dict[str, int]) -> Any:
    from hypothesis import strategies as st
    from hypothesis.extra import numpy as hnp

    if slot.spec is None:
        return st.just(slot.value)
    spec = slot.spec
    shape = tuple(sizes[d.name] if isinstance(d, Dim) else d for d in spec.shape)
    dtype = np.dtype(spec.dtype)
    lo, hi = spec.bounds
    if math.prod(shape) <= ELEMENTWISE_LIMIT:
        if dtype.kind == "b":
            elements = st.booleans()
        elif dtype.kind in "iu":
            elements = st.integers(int(lo), int(hi))
        else:
            flo, fhi = _float_bounds(lo, hi, dtype)
            elements = st.floats(flo, fhi, allow_nan=False, allow_infinity=False, width=dtype.itemsize * 8)
        return hnp.arrays(dtype, shape, elements=elements)

    def fill(seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        if dtype.kind in "iub":
            return rng.integers(int(lo), int(hi), size=shape, endpoint=True).astype(dtype)
        return rng.uniform(lo, hi, size=shape).astype(dtype)

    return st.integers(0, 2**32 - 1).map(fill)


def feeds_strategy(slots: tuple[InputSlot, ...]) -> Any:
    """A strategy of ``Feeds``: dynamic dims first (shared by name), then each tensor."""
    from hypothesis import strategies as st

    dims = shared_dims(slots)
    sizes = st.fixed_dictionaries({name: st.integers(d.min, d.max) for name, d in dims.items()})
    names = [s.name for s in slots]
    return sizes.flatmap(
        lambda chosen: st.tuples(*(_array(s, chosen) for s in slots)).map(lambda arrays: Feeds(zip(names, arrays)))
    )
