"""hypothesis's search around the real samples, once every sample has run as it is.

Each drawn input starts from one sample of the data and changes it within a stated scale:

* every dynamic dim (a ``Dim``, shared by name across inputs) may be cropped (its first n
  entries kept) or padded (its last entry repeated) to any size within the ``Dim``'s range;
* every float value moves by at most ``data_scale`` times its input's standard deviation over the
  data (uniform noise, scaled by an amplitude in [0, 1]), then stays within the spec's ``low`` and
  ``high`` where the spec sets them, else within the range the data spans, widened by
  ``data_scale`` standard deviations: the spec's range is taken from the data; integer and bool
  values (token ids, masks) are not changed.

hypothesis shrinks toward the sample itself: the first sample, amplitude 0, dims kept. The search
stays adversarial (``hypothesis.target`` steers it toward the largest error) but inside the
data's neighbourhood, not in the spec's whole box.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..spec import Dim, InputSlot
from ..strategies import Feeds, shared_dims
from .dataset import DataSet, InputStats


class SampleFeeds(Feeds):
    """Feeds that came from a data sample: the repr says which, and how it was changed."""

    origin: str = ""

    def __repr__(self) -> str:
        return f"{super().__repr__()} from data sample {self.origin}"


def from_sample(feeds: Mapping[str, np.ndarray], origin: str) -> SampleFeeds:
    out = SampleFeeds(feeds)
    out.origin = origin
    return out


def _resize(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Crop to the first ``size`` entries along ``axis``, or pad by repeating the last one."""
    have = array.shape[axis]
    if size <= have:
        return np.take(array, np.arange(size), axis=axis)
    pad = [(0, 0)] * array.ndim
    pad[axis] = (0, size - have)
    return np.pad(array, pad, mode="edge" if have else "constant")


def perturb(
    feeds: Mapping[str, np.ndarray], slots: tuple[InputSlot, ...], stats: Mapping[str, InputStats], scale: float,
    amplitude: float, seed: int, sizes: Mapping[str, int | None],
) -> dict[str, np.ndarray]:
    """One sample, its dims resized to ``sizes`` (None keeps one) and its float values moved by
    up to ``amplitude * scale * std`` each (see the module docstring)."""
    rng = np.random.default_rng(seed)
    out = {}
    for slot in slots:
        array = feeds[slot.name]
        spec = slot.spec
        if spec is None:
            out[slot.name] = array
            continue
        for axis, entry in enumerate(spec.shape):
            if isinstance(entry, Dim) and sizes.get(entry.name) is not None:
                array = _resize(array, axis, sizes[entry.name])
        if array.dtype.kind == "f" and amplitude > 0 and array.size and slot.name in stats:
            seen = stats[slot.name]
            moved = array.astype(np.float64) + amplitude * scale * seen.std * rng.uniform(-1.0, 1.0, array.shape)
            # the spec's range where it sets one, else the data's, widened by the same scale
            low = seen.low - scale * seen.std if spec.low is None else spec.low
            high = seen.high + scale * seen.std if spec.high is None else spec.high
            array = np.clip(moved, low, high).astype(array.dtype)
        out[slot.name] = np.ascontiguousarray(array)
    return out


def around_samples(data: DataSet, scale: float) -> Any:
    """A strategy of ``SampleFeeds`` around the samples of ``data`` (see the module docstring)."""
    from hypothesis import strategies as st

    dims = shared_dims(data.slots)
    sizes = st.fixed_dictionaries({name: st.none() | st.integers(d.min, d.max) for name, d in dims.items()})
    # every sample ran before the search starts (a failing one stops the check before it)
    draw = st.tuples(st.integers(0, len(data) - 1), st.floats(0.0, 1.0), st.integers(0, 2**32 - 1), sizes)
    return draw.map(_materialise(data, scale))


def _materialise(data: DataSet, scale: float) -> Callable[[tuple], SampleFeeds]:
    def build(drawn: tuple) -> SampleFeeds:
        index, amplitude, seed, sizes = drawn
        sample = data.sample(index)
        feeds = perturb(sample.feeds, data.slots, data.stats, scale, amplitude, seed, sizes)
        changes = [f"{name} -> {size}" for name, size in sizes.items() if size is not None]
        if amplitude:
            changes.append(f"noise {amplitude:.3g} x data_scale")
        return from_sample(feeds, sample.where + (f" ({', '.join(changes)})" if changes else ""))

    return build
