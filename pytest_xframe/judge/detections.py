"""Detections compared as sets: boxes matched by IoU with scipy's assignment solver, then labels,
IoU and score compared per matched pair, and unmatched detections above a score threshold counted.

A backend may return the same detections in another order (a sort of near-equal scores, another
NMS implementation); elementwise comparison would call that a mismatch, a set comparison does not.
Per image (the leading axes of ``scores``):

1. candidates: detections scoring at least ``score_threshold - max_score_delta`` on either side,
   so one that scores just under the threshold on one side still finds its partner;
2. boxes (``xyxy``, ``xywh`` or ``cxcywh``) matched one to one by the assignment that maximises
   the summed IoU (``scipy.optimize.linear_sum_assignment``); a pair under ``iou_match`` is no match;
3. a pair where either score reaches ``score_threshold`` is judged: IoU >= ``min_iou``,
   |score delta| <= ``max_score_delta``, labels equal;
4. a detection scoring at least ``score_threshold`` with no partner is unmatched; at most
   ``max_unmatched`` are allowed per example.

numpy, and scipy for the assignment (imported when detections are compared).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import XframeError
from .structured import BOX_FORMATS, DetectionRule


@dataclass
class DetectionMatch:
    """The figures of one example: matched pairs and what was left over."""

    pairs: int = 0
    ious: list[float] = field(default_factory=list)
    score_deltas: list[float] = field(default_factory=list)
    label_mismatches: int = 0
    unmatched_reference: int = 0
    unmatched_backend: int = 0
    #: detections at or above the score threshold, on the reference side
    detections: int = 0

    @property
    def min_iou(self) -> float:
        return min(self.ious, default=math.inf)

    @property
    def max_score_delta(self) -> float:
        return max(self.score_deltas, default=0.0)

    @property
    def unmatched(self) -> int:
        return self.unmatched_reference + self.unmatched_backend

    def failures(self, rule: DetectionRule) -> list[str]:
        out = []
        if self.unmatched > rule.max_unmatched:
            out.append(
                f"{self.unmatched} unmatched detection(s) scoring >= {rule.score_threshold:g} (torch {self.unmatched_reference}, "
                f"backend {self.unmatched_backend}; allowed {rule.max_unmatched})"
            )
        if self.ious and rule.min_iou is not None and self.min_iou < rule.min_iou:
            out.append(f"matched boxes' IoU down to {self.min_iou:.4g} < {rule.min_iou:g}")
        if rule.max_score_delta is not None and self.max_score_delta > rule.max_score_delta:
            out.append(f"matched scores differ by up to {self.max_score_delta:.3g} > {rule.max_score_delta:g}")
        if self.label_mismatches:
            out.append(f"{self.label_mismatches} matched pair(s) with different labels")
        return out

    def describe(self) -> str:
        iou = f", IoU >= {self.min_iou:.4g}" if self.ious else ""
        return (f"{self.pairs} pair(s) of {self.detections} detection(s){iou}, score delta <= {self.max_score_delta:.3g}, "
                f"{self.label_mismatches} label mismatch(es), unmatched: torch {self.unmatched_reference}, backend {self.unmatched_backend}")


def to_xyxy(boxes: np.ndarray, fmt: str) -> np.ndarray:
    """Boxes [..., 4] in ``fmt`` as corners (x1, y1, x2, y2), float64."""
    b = np.asarray(boxes, dtype=np.float64)
    if fmt == "xyxy":
        return b
    if fmt == "xywh":
        return np.concatenate([b[..., :2], b[..., :2] + b[..., 2:]], axis=-1)
    if fmt == "cxcywh":
        half = b[..., 2:] / 2.0
        return np.concatenate([b[..., :2] - half, b[..., :2] + half], axis=-1)
    raise ValueError(f"unknown box format {fmt!r}; one of {', '.join(BOX_FORMATS)}")


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [n, 4] with every box of ``b`` [m, 4], corners; 0 for empty boxes."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0.0, None), axis=-1)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0.0, None), axis=-1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0.0, None), axis=-1)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _assignment() -> object:
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError as exc:
        raise XframeError(
            "comparing detections needs scipy", cause=str(exc),
            hint="pip install 'pytest-xframe[detections]' (scipy: its linear_sum_assignment matches the boxes)",
        ) from None
    return linear_sum_assignment


def match_image(ref: tuple[np.ndarray, np.ndarray, np.ndarray | None], got: tuple[np.ndarray, np.ndarray, np.ndarray | None],
                rule: DetectionRule, into: DetectionMatch) -> None:
    """Match one image's detections (boxes [n, 4] corners, scores [n], labels [n] or None) into ``into``."""
    floor = rule.score_threshold - (rule.max_score_delta or 0.0)
    r_idx = np.flatnonzero(ref[1] >= floor)
    g_idx = np.flatnonzero(got[1] >= floor)
    into.detections += int(np.sum(ref[1] >= rule.score_threshold))
    matched_r: set[int] = set()
    matched_g: set[int] = set()
    if r_idx.size and g_idx.size:
        iou = iou_matrix(ref[0][r_idx], got[0][g_idx])
        rows, cols = _assignment()(iou, maximize=True)  # type: ignore[operator]
        for i, j in zip(rows, cols):
            if iou[i, j] < rule.iou_match:
                continue
            ri, gj = int(r_idx[i]), int(g_idx[j])
            matched_r.add(ri)
            matched_g.add(gj)
            if max(ref[1][ri], got[1][gj]) < rule.score_threshold:
                continue  # a pair below the threshold on both sides is not judged
            into.pairs += 1
            into.ious.append(float(iou[i, j]))
            into.score_deltas.append(float(abs(float(ref[1][ri]) - float(got[1][gj]))))
            if ref[2] is not None and got[2] is not None and ref[2][ri] != got[2][gj]:
                into.label_mismatches += 1
    into.unmatched_reference += sum(1 for i in np.flatnonzero(ref[1] >= rule.score_threshold) if int(i) not in matched_r)
    into.unmatched_backend += sum(1 for j in np.flatnonzero(got[1] >= rule.score_threshold) if int(j) not in matched_g)


def match(reference: dict[str, np.ndarray], got: dict[str, np.ndarray], rule: DetectionRule) -> DetectionMatch:
    """Match every image's detections; ValueError when the outputs do not pair up."""
    out = DetectionMatch()
    sides = []
    for outputs in (reference, got):
        boxes = np.asarray(outputs[rule.boxes])
        scores = np.asarray(outputs[rule.scores], dtype=np.float64)
        labels = None if rule.labels is None else np.asarray(outputs[rule.labels])
        if boxes.shape[-1:] != (4,) or boxes.shape[:-1] != scores.shape or (labels is not None and labels.shape != scores.shape):
            shapes = f"boxes {list(boxes.shape)}, scores {list(scores.shape)}" + ("" if labels is None else f", labels {list(labels.shape)}")
            raise ValueError(f"the outputs do not pair up as detections ({shapes}): boxes [..., n, 4], scores and labels [..., n]")
        n = scores.shape[-1] if scores.ndim else 0
        sides.append((to_xyxy(boxes, rule.format).reshape(-1, n, 4), scores.reshape(-1, n), None if labels is None else labels.reshape(-1, n)))
    (rb, rs, rl), (gb, gs, gl) = sides
    if rb.shape[0] != gb.shape[0]:
        raise ValueError(f"torch gave detections for {rb.shape[0]} image(s), the backend for {gb.shape[0]}")
    for k in range(rb.shape[0]):
        match_image((rb[k], rs[k], None if rl is None else rl[k]), (gb[k], gs[k], None if gl is None else gl[k]), rule, out)
    return out
