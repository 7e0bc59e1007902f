"""Walking two outputs slice by slice: comparisons and metrics work in float64, and on a whole
large output their temporaries would be many copies of it (a 1e8-element float32 output peaked
at 22x its size). Over slices of ``SLICE`` elements they cost a few MiB whatever the output's size.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

#: elements per slice: 2**20 float64 values are 8 MiB per temporary
SLICE = 1 << 20


def flat_slices(*arrays: np.ndarray, size: int | None = None) -> Iterator[tuple[int, tuple[np.ndarray, ...]]]:
    """``(start, (a[start:stop], b[start:stop], ...))`` over the arrays flattened in C order (views
    where the arrays are contiguous); ``size`` elements each, ``SLICE`` unless given."""
    size = size or SLICE
    flats = [np.asarray(a).reshape(-1) for a in arrays]
    total = flats[0].size if flats else 0
    for start in range(0, total, size):
        yield start, tuple(f[start : start + size] for f in flats)


def float_slices(ref: np.ndarray, got: np.ndarray, size: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The two arrays' slices as float64; a shape mismatch is a ValueError."""
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        raise ValueError(f"shapes differ: reference {list(ref.shape)}, candidate {list(got.shape)}")
    for _, (r, g) in flat_slices(ref, got, size=size):
        yield r.astype(np.float64), g.astype(np.float64)


def row_blocks(a: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
    """Blocks of whole rows (the last axis) of ``a`` as a 2-D array, about ``size`` elements each."""
    size = size or SLICE
    rows = a.reshape(-1, a.shape[-1])
    step = max(1, size // max(1, a.shape[-1]))
    for start in range(0, rows.shape[0], step):
        yield rows[start : start + step]


class Top:
    """The largest finite values seen, enough of them for a high percentile of all of them."""

    def __init__(self, total: int, q: float) -> None:
        #: how many of the largest values the ``q``-th percentile of up to ``total`` values can need
        self.keep = min(total, int(np.ceil(total * (100 - q) / 100)) + 2)
        self.q = q
        self.count = 0
        self.values = np.empty(0)

    def add(self, finite: np.ndarray) -> None:
        self.count += finite.size
        joined = np.concatenate([self.values, finite])
        self.values = joined if joined.size <= self.keep else np.partition(joined, joined.size - self.keep)[-self.keep :]

    def percentile(self) -> float:
        """numpy's linear percentile of every value added (inf when there were none)."""
        if not self.count:
            return float("inf")
        if self.values.size == self.count:
            return float(np.percentile(self.values, self.q))
        ranked = np.sort(self.values)
        below = self.count - ranked.size  # values smaller than every kept one
        h = (self.count - 1) * self.q / 100
        lo = int(np.floor(h))
        low = ranked[lo - below]
        high = ranked[min(lo + 1, self.count - 1) - below]
        return float(low + (h - lo) * (high - low))
