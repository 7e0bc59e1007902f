"""Figures over a data set, per backend x output: each sample's figures, their distribution, and
the verdict of the policy's thresholds over the data (``data_policy.DataThresholds``).

A float output gets SNR, PSNR and cosine per sample (``metrics``); a classifier-like output
(float, batch x classes, more than one class) the top-1 agreement of its rows and, where the
samples carry labels that fit its rows, torch's and the backend's accuracy; every output the
share of rows (all axes but the last) exactly equal, which is the exact-match rate of a sequence
output. NaN figures (NaN or Inf in an output) count as -inf: the worst. numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import metrics
from .data_policy import DISTRIBUTION_KEYS, DataThresholds, percentile_of

#: the distribution of a figure as reports show it: the level half and 95% of the samples reach
REPORTED = ("mean", "p50", "p95", "worst")
_UNITS = {"snr_db": " dB", "psnr_db": " dB", "cosine": ""}


def statistic(values: np.ndarray, stat: str) -> float:
    """``mean``, ``worst`` (smallest) or ``pNN`` (the level NN% of the values reach) of a figure."""
    if stat == "mean":
        return float(np.mean(values))
    if stat == "worst":
        return float(np.min(values))
    q = percentile_of(stat)
    if q is None:
        raise ValueError(f"unknown statistic {stat!r}")
    return float(np.percentile(values, q, method="lower"))


def classifier_rows(ref: np.ndarray) -> bool:
    """An output that looks like classifier logits, as ``verdict.wants_topk`` sees it: float,
    (batch, classes), more than one class. Hidden states [batch, seq, features] are not."""
    return ref.dtype.kind == "f" and ref.ndim == 2 and ref.shape[-1] > 1


def label_fits(ref: np.ndarray, label: np.ndarray | None) -> bool:
    """Labels judge an output's argmax when there is one label per row of class scores."""
    return label is not None and classifier_rows(ref) and label.dtype.kind in "iub" and int(np.prod(ref.shape[:-1])) == label.size


@dataclass
class OverData:
    """One output's figures over the samples of ``data=`` run so far."""

    thresholds: DataThresholds
    #: the data index each row of figures belongs to
    samples: list[int] = field(default_factory=list)
    figures: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in DISTRIBUTION_KEYS})
    top1_hits: int = 0
    top1_rows: int = 0
    rows_equal: int = 0
    rows: int = 0
    #: rows with a label, and those torch's and the backend's argmax get right
    labelled: int = 0
    torch_correct: int = 0
    backend_correct: int = 0
    #: a detection head (``structured``): matched pairs, the lowest IoU per sample, what was left over
    pairs: int = 0
    min_ious: list[float] = field(default_factory=list)
    max_score_delta: float = 0.0
    unmatched: int = 0
    label_mismatches: int = 0

    def add(self, index: int, ref: np.ndarray, got: np.ndarray, label: np.ndarray | None = None) -> None:
        """One sample's outputs (same shape: the per-example comparison checked that)."""
        ref, got = np.asarray(ref), np.asarray(got)
        if ref.ndim:
            equal = np.all(ref.reshape(-1, ref.shape[-1]) == got.reshape(-1, got.shape[-1]), axis=-1) if ref.shape[-1] else np.ones(0, bool)
            self.rows_equal += int(equal.sum())
            self.rows += int(equal.size)
        if ref.dtype.kind != "f":
            return
        self.samples.append(index)
        for key, value in (("snr_db", metrics.snr_db(ref, got)), ("psnr_db", metrics.psnr_db(ref, got)), ("cosine", metrics.cosine(ref, got))):
            self.figures[key].append(-math.inf if math.isnan(value) else value)
        if classifier_rows(ref):
            hits, rows = metrics.topk_hits(ref, got, 1)
            self.top1_hits += hits
            self.top1_rows += rows
        if label is not None and label_fits(ref, label):
            truth = label.reshape(-1)
            self.labelled += truth.size
            self.torch_correct += int(np.sum(ref.reshape(-1, ref.shape[-1]).argmax(-1) == truth))
            self.backend_correct += int(np.sum(got.reshape(-1, got.shape[-1]).argmax(-1) == truth))

    def add_detections(self, index: int, found: Any) -> None:
        """One sample's matched detections (``detections.DetectionMatch``)."""
        self.pairs += found.pairs
        self.unmatched += found.unmatched
        self.label_mismatches += found.label_mismatches
        self.max_score_delta = max(self.max_score_delta, found.max_score_delta)
        if found.ious:
            self.samples.append(index)
            self.min_ious.append(found.min_iou)

    # -- figures -------------------------------------------------------------------------------
    def distribution(self, figure: str) -> dict[str, float] | None:
        """mean, p50, p95 and worst of a per-sample figure; None when no sample had one."""
        values = np.asarray(self.figures[figure], dtype=np.float64)
        if not values.size:
            return None
        with np.errstate(invalid="ignore"):
            return {stat: statistic(values, stat) for stat in REPORTED}

    def worst_sample(self, figure: str = "snr_db") -> int | None:
        """The data index of the sample with the lowest figure (the first of equals)."""
        values = self.figures[figure]
        return self.samples[int(np.argmin(values))] if values else None

    @property
    def top1(self) -> float | None:
        return self.top1_hits / self.top1_rows if self.top1_rows else None

    @property
    def accuracy(self) -> tuple[float, float] | None:
        """(torch's, the backend's) accuracy against the labels; None without labels that fit."""
        return (self.torch_correct / self.labelled, self.backend_correct / self.labelled) if self.labelled else None

    # -- verdict -------------------------------------------------------------------------------
    def failures(self) -> list[str]:
        """Each threshold over the data that fails, as a phrase with figure and bound."""
        out = []
        th = self.thresholds
        for figure, stat, bound in th.levels:
            values = np.asarray(self.figures[figure], dtype=np.float64)
            if not values.size:
                continue
            with np.errstate(invalid="ignore"):
                value = statistic(values, stat)
            if not value >= bound:
                unit = _UNITS[figure]
                out.append(f"{figure} {_stat_name(stat)} {_num(value)}{unit} < {_num(bound)}{unit}")
        if th.top1_agreement is not None and self.top1 is not None and self.top1 < th.top1_agreement:
            out.append(f"top-1 agreement {_pct(self.top1)} ({self.top1_hits}/{self.top1_rows} rows) < {_pct(th.top1_agreement)}")
        accuracy = self.accuracy
        if th.accuracy_drop is not None and accuracy is not None and accuracy[0] - accuracy[1] > th.accuracy_drop + 1e-12:
            out.append(
                f"accuracy against the labels: torch {_pct(accuracy[0])}, backend {_pct(accuracy[1])} "
                f"(a drop of {100 * (accuracy[0] - accuracy[1]):.3g} points > {100 * th.accuracy_drop:.3g})"
            )
        return out

    # -- reporting -----------------------------------------------------------------------------
    def describe(self, where: Callable[[int], str]) -> str:
        """The figures over the data in one line: each distribution, rates and accuracy."""
        parts = []
        for figure in DISTRIBUTION_KEYS:
            d = self.distribution(figure)
            if d is None:
                continue
            unit = _UNITS[figure]
            text = f"{figure} median {_num(d['p50'])}{unit}, 95% >= {_num(d['p95'])}{unit}, worst {_num(d['worst'])}{unit}"
            if figure == "snr_db":
                text += f" ({where(self.worst_sample(figure))})"
            parts.append(text)
        if self.top1 is not None:
            parts.append(f"top-1 agreement {_pct(self.top1)} ({self.top1_hits}/{self.top1_rows})")
        if self.accuracy is not None:
            parts.append(f"accuracy torch {_pct(self.accuracy[0])}, backend {_pct(self.accuracy[1])} ({self.labelled} labels)")
        if self.min_ious or self.unmatched:
            iou = np.asarray(self.min_ious)
            shown = f", IoU median {_num(statistic(iou, 'p50'))}, worst {_num(float(iou.min()))} ({where(self.samples[int(iou.argmin())])})" if iou.size else ""
            parts.append(f"{self.pairs} matched detection pair(s){shown}, score delta <= {self.max_score_delta:.3g}, "
                         f"{self.unmatched} unmatched, {self.label_mismatches} label mismatch(es)")
        if not parts and self.rows:
            parts.append(f"exact-match rate {_pct(self.rows_equal / self.rows)} ({self.rows_equal}/{self.rows} rows)")
        return "; ".join(parts) or "no figure"

    def to_dict(self, where: Callable[[int], str]) -> dict[str, Any]:
        """The report's ``data`` figures of one output (JSON: inf and NaN as null)."""
        out: dict[str, Any] = {"samples": len(self.samples) or None}
        for figure in DISTRIBUTION_KEYS:
            d = self.distribution(figure)
            out[figure] = None if d is None else {k: _finite(v) for k, v in d.items()}
        worst = self.worst_sample()
        out["worst_sample"] = None if worst is None else where(worst)
        out["top1_agreement"] = self.top1
        out["exact_match"] = self.rows_equal / self.rows if self.rows else None
        accuracy = self.accuracy
        out["accuracy"] = None if accuracy is None else {"torch": accuracy[0], "backend": accuracy[1], "labels": self.labelled}
        out["detections"] = None if not (self.min_ious or self.unmatched) else {
            "pairs": self.pairs, "min_iou": min(self.min_ious, default=None), "max_score_delta": self.max_score_delta,
            "unmatched": self.unmatched, "label_mismatches": self.label_mismatches,
        }
        out["failed"] = self.failures()
        return out


def _stat_name(stat: str) -> str:
    if stat == "mean":
        return "mean"
    if stat == "worst":
        return "worst"
    return "median" if stat == "p50" else f"level {stat[1:]}% of samples reach"


def _num(value: float) -> str:
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _pct(share: float) -> str:
    return f"{100.0 * share:.3g}%"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None
