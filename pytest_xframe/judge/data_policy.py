"""Thresholds over a data set: bounds on how a figure is distributed over the user's samples.

Written under the ``data`` key of a policy table, at any of its scopes (``policy.py``)::

    [tool.xframe.policy.backends."*int8*".data]
    snr_db = {p50 = 25, p95 = 12}     # half the samples reach 25 dB, 95% reach 12 dB
    cosine = {worst = 0.98}           # every sample reaches 0.98
    psnr_db = {mean = 30}
    top1_agreement = 0.98             # share of rows whose argmax agrees with torch's
    accuracy_drop = 0.01              # torch's accuracy minus the backend's, against the labels

A statistic is a lower bound on a per-sample figure: ``mean``, ``worst`` (the smallest) or
``pNN``, the level that NN% of the samples reach (the (100 - NN)th percentile, numpy's
``method="lower"``: always one sample's own figure). Each statistic resolves as a key of its own
(``data.snr_db.p50``), so layers and scopes combine per statistic as every other threshold does.

These thresholds judge the samples of ``data=`` only, once they have all run; without data they
are not judged. Pure Python: the project's table is read at pytest start-up.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError, did_you_mean

#: per-sample figures whose distribution a policy may bound (higher is better for each)
DISTRIBUTION_KEYS: dict[str, str] = {
    "snr_db": "signal-to-noise ratio, dB",
    "psnr_db": "peak signal-to-noise ratio, dB (peak: the reference output's max - min)",
    "cosine": "cosine similarity (-1..1)",
}
#: figures over the whole data set
RATE_KEYS: dict[str, str] = {
    "top1_agreement": "smallest share of rows whose argmax agrees with torch's (0..1)",
    "accuracy_drop": "largest drop of accuracy against the labels, torch's minus the backend's (0..1)",
}
STATISTICS = "mean, worst or pNN (NN in 1..99: the level NN% of the samples reach)"
_PERCENTILE = re.compile(r"p([1-9][0-9]?)")
PREFIX = "data."

#: the defaults of reduced-precision targets when data is given: they replace the per-example
#: cosine/SNR floors of ``policy.PRECISION_DEFAULTS`` (fp32 keeps its per-input worst case).
#: Measured on a trained 32-64-64-4 classifier over 200 samples (tests/test_data_checks.py):
#: int8 targets reach a median SNR of 41-49 dB, 95% of samples >= 30-39 dB, top-1 agreement
#: 99.5-100%, no accuracy drop; an outlier activation that int8 breaks gives a median of 0.05 dB,
#: 22-29% agreement and a drop of 58-68 points. Over 16 samples drawn from each coverage model's
#: spec, every converting target passes them but three (tests/test_coverage.py).
DATA_DEFAULTS: dict[str, dict[str, float]] = {
    "fp32": {},
    "fp16": {"data.snr_db.p50": 40.0, "data.snr_db.p95": 30.0, "data.top1_agreement": 0.99, "data.accuracy_drop": 0.01},
    "int8": {"data.snr_db.p50": 20.0, "data.snr_db.p95": 10.0, "data.top1_agreement": 0.95, "data.accuracy_drop": 0.02},
}


def parse_data_policy(table: Any, where: str) -> tuple[tuple[str, float], ...]:
    """A policy's ``data`` table as flat (``data.<figure>[.<statistic>]``, bound) pairs; SpecError
    for an unknown key or statistic or a value out of range."""
    where = f"{where} data"
    if not isinstance(table, Mapping) or not table:
        raise SpecError(f"policy {where} must be a non-empty table, got {table!r}", hint=_hint())
    unknown = sorted(set(table) - set(DISTRIBUTION_KEYS) - set(RATE_KEYS))
    if unknown:
        known = (*DISTRIBUTION_KEYS, *RATE_KEYS)
        raise SpecError(f"unknown policy key(s) {', '.join(map(repr, unknown))} in {where}" + did_you_mean(unknown[0], known), hint=_hint())
    out: list[tuple[str, float]] = []
    for key in DISTRIBUTION_KEYS:
        if key in table:
            out.extend(_statistics(key, table[key], where))
    for key in RATE_KEYS:
        if key in table:
            out.append((f"{PREFIX}{key}", _bounded(key, table[key], 0.0, 1.0, where)))
    return tuple(out)


def _statistics(key: str, stats: Any, where: str) -> list[tuple[str, float]]:
    if not isinstance(stats, Mapping) or not stats:
        raise SpecError(f"policy {where} {key} must be a table of statistic = bound, got {stats!r}",
                        hint=f"e.g. {key} = {{p50 = 25, worst = 10}}; statistics: {STATISTICS}")
    low, high = (-1.0, 1.0) if key == "cosine" else (-math.inf, math.inf)
    out = []
    for stat, bound in stats.items():
        if not isinstance(stat, str) or not (stat in ("mean", "worst") or _PERCENTILE.fullmatch(stat)):
            raise SpecError(f"unknown statistic {stat!r} of {key} in policy {where}", hint=f"statistics: {STATISTICS}")
        out.append((f"{PREFIX}{key}.{stat}", _bounded(f"{key}.{stat}", bound, low, high, where)))
    return out


def _bounded(key: str, value: Any, low: float, high: float, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not low <= value <= high:
        span = "a finite number" if math.isinf(low) else f"a number in {low:g}..{high:g}"
        raise SpecError(f"policy {key} in {where} must be {span}, got {value!r}", hint=_hint())
    return float(value)


def _hint() -> str:
    figures = ", ".join(f"{k} = {{statistic = bound}}" for k in DISTRIBUTION_KEYS)
    return f"data keys: {figures}, {', '.join(f'{k} = 0..1' for k in RATE_KEYS)}; statistics: {STATISTICS}"


@dataclass(frozen=True)
class DataThresholds:
    """The thresholds over a data set in force for one backend x output (empty: none judged)."""

    #: (figure, statistic, lower bound), e.g. ("snr_db", "p95", 10.0)
    levels: tuple[tuple[str, str, float], ...] = ()
    top1_agreement: float | None = None
    accuracy_drop: float | None = None

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> DataThresholds:
        """From resolved flat keys (``data.snr_db.p50`` ...); other keys are ignored."""
        levels = []
        for key, bound in values.items():
            parts = key.split(".")
            if parts[0] + "." == PREFIX and len(parts) == 3:
                levels.append((parts[1], parts[2], float(bound)))
        return cls(tuple(sorted(levels, key=_order)), values.get(f"{PREFIX}top1_agreement"), values.get(f"{PREFIX}accuracy_drop"))

    def __bool__(self) -> bool:
        return bool(self.levels) or self.top1_agreement is not None or self.accuracy_drop is not None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for figure, stat, bound in self.levels:
            out.setdefault(figure, {})[stat] = bound
        for key in RATE_KEYS:
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DataThresholds:
        """The inverse of ``to_dict`` (a kept case's policy)."""
        flat = {f"{PREFIX}{k}": v for k, v in data.items() if k in RATE_KEYS}
        flat.update({f"{PREFIX}{k}.{s}": b for k, stats in data.items() if k in DISTRIBUTION_KEYS for s, b in stats.items()})
        return cls.from_values(flat)


def _order(level: tuple[str, str, float]) -> tuple[int, int]:
    """Figures in their table order; statistics mean, p-levels from the median outward, worst."""
    figure, stat, _ = level
    rank = {"mean": 0, "worst": 200}.get(stat, int(stat[1:]) if stat.startswith("p") else 100)
    return (list(DISTRIBUTION_KEYS).index(figure), rank)


def percentile_of(stat: str) -> float | None:
    """The numpy percentile of a ``pNN`` statistic (the level NN% reach: 100 - NN); None otherwise."""
    found = _PERCENTILE.fullmatch(stat)
    return 100.0 - int(found.group(1)) if found else None
