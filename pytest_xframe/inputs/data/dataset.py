"""The samples of ``data=`` as a check reads them: opened once, streamed, checked one by one.

``open_data`` turns the option's value into a :class:`DataSet`: a path (a directory of ``.npz``
files or one stacked ``.npz``, relative to the rootdir), an object with ``len`` and indexing (a
list, a torch ``Dataset``), or any other iterable, which is read once and spooled to the
session's work directory. ``data_limit`` keeps the first N samples. The data set then gives
samples by index (for calibration and for hypothesis's exploration around them) or in order
(the run over every sample), and learns each float input's spread as the samples run
(:class:`InputStats`), which scales the exploration's perturbations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import SpecError
from ..calibration import Calibration, digest
from ..spec import InputSlot
from .samples import LABEL, Sample, check_sample
from .sources import Indexed, NpzDirectory, NpzStack, Source, indexable


@dataclass
class InputStats:
    """Running figures of one float input over the samples seen: count, mean, spread, range."""

    count: int = 0
    total: float = 0.0
    squares: float = 0.0
    low: float = np.inf
    high: float = -np.inf

    def add(self, array: np.ndarray) -> None:
        values = np.asarray(array, dtype=np.float64)
        if not values.size:
            return
        self.count += values.size
        self.total += float(values.sum())
        self.squares += float(np.square(values).sum())
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))

    @property
    def std(self) -> float:
        """The standard deviation of every element seen (0 before any)."""
        if not self.count:
            return 0.0
        mean = self.total / self.count
        return float(np.sqrt(max(self.squares / self.count - mean * mean, 0.0)))


@dataclass
class DataSet:
    """Checked samples by index or in order; ``stats`` fills as ``__iter__`` runs."""

    source: Source
    slots: tuple[InputSlot, ...]
    model_name: str
    limit: int | None = None
    stats: dict[str, InputStats] = field(default_factory=dict)
    #: samples read in order so far (``__iter__``)
    seen: int = 0
    _calibrations: dict[int, Calibration] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.source) if self.limit is None else min(self.limit, len(self.source))

    @property
    def description(self) -> str:
        shown = f"the first {len(self)} of " if len(self) < len(self.source) else ""
        return shown + self.source.description

    def where(self, index: int) -> str:
        return self.source.where(index)

    def sample(self, index: int) -> Sample:
        return check_sample(self.source.read(index), index, self.where(index), self.slots, self.model_name)

    def __iter__(self) -> Iterator[Sample]:
        """Every sample in order, checked; each float input's figures are added to ``stats``."""
        for index, values in enumerate(self.source.records(len(self))):
            sample = check_sample(values, index, self.where(index), self.slots, self.model_name)
            for name, array in sample.feeds.items():
                if array.dtype.kind == "f":
                    self.stats.setdefault(name, InputStats()).add(array)
            self.seen = index + 1
            yield sample

    def calibration(self, count: int) -> Calibration:
        """Up to ``count`` samples spread evenly over the data, of one shape (the first's: TFLite's
        calibrator sizes its inputs once), as calibration samples; read once per check."""
        if count in self._calibrations:
            return self._calibrations[count]
        n = len(self)
        picked = sorted({int(i) for i in np.linspace(0, n - 1, min(count, n)).round()})
        samples = [self.sample(i).feeds for i in picked]
        shape = _shapes(samples[0])
        kept = tuple(s for s in samples if _shapes(s) == shape)
        origin = f"{len(kept)} of the {n} samples of data=, evenly spaced"
        if len(kept) < len(samples):
            origin += f" (those of the first one's shape, {len(samples) - len(kept)} of other shapes left out)"
        self._calibrations[count] = Calibration(kept, "data", None, digest(kept), origin=origin)
        return self._calibrations[count]


def _shapes(feeds: dict[str, np.ndarray]) -> tuple:
    return tuple((k, v.shape) for k, v in sorted(feeds.items()))


def open_data(value: Any, slots: tuple[InputSlot, ...], model_name: str, rootdir: Path, workdir: Path, limit: int | None) -> DataSet:
    """The data set ``value`` names (see the module docstring); SpecError when it cannot be read."""
    if isinstance(value, (str, os.PathLike)):
        source: Source = _path_source(Path(value), rootdir, model_name)
    elif indexable(value):
        source = Indexed(value, model_name)
    elif hasattr(value, "__iter__"):
        source = _spool(value, slots, model_name, workdir / f"data-{uuid.uuid4().hex[:12]}", limit)
    else:
        raise SpecError(f"data= must be a path or an iterable of samples, got {type(value).__name__}", model=model_name)
    if not len(source):
        raise SpecError(f"data= holds no samples ({source.description})", model=model_name, hint="give at least one sample, or leave data unset")
    return DataSet(source, slots, model_name, limit)


def _path_source(path: Path, rootdir: Path, model_name: str) -> Source:
    path = path if path.is_absolute() else rootdir / path
    if path.is_dir():
        return NpzDirectory(path, model_name)
    if path.is_file() and path.suffix == ".npz":
        return NpzStack(path, model_name)
    what = "is not a directory or an .npz file" if path.exists() else "does not exist"
    raise SpecError(f"data path {path} {what}", model=model_name,
                    hint="a directory of .npz files (one sample each) or one .npz with a leading sample axis; relative paths start at the rootdir")


def _spool(items: Any, slots: tuple[InputSlot, ...], model_name: str, directory: Path, limit: int | None) -> Source:
    """A one-pass iterable read once, each item checked and written to ``directory`` as one .npz."""
    directory.mkdir(parents=True, exist_ok=True)
    names = []
    for index, item in enumerate(items):
        if limit is not None and index >= limit:
            break
        sample = check_sample(item, index, f"item {index}", slots, model_name)
        labelled = {} if sample.label is None or LABEL in sample.feeds else {LABEL: sample.label}
        np.savez(directory / f"item-{index:09d}.npz", **sample.feeds, **labelled)
        names.append(f"item {index}")
    if not names:
        raise SpecError("data= holds no samples (an empty iterable)", model=model_name, hint="give at least one sample, or leave data unset")
    source = NpzDirectory(directory, model_name, names)
    source.description = f"{len(names)} items of a {type(items).__name__} (read once, spooled to disk)"
    return source
