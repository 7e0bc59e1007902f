"""Error metrics: small pure functions of a reference array and a candidate array (numpy only).

A metric returns a figure; a policy (elsewhere) decides pass or fail from figures, so reports can
show every figure even when only one decides. All arithmetic is in float64, slice by slice
(``slices.py``): a large output costs a few MiB of temporaries, not copies of itself.
"""

from __future__ import annotations

import math

import numpy as np

from .slices import float_slices, row_blocks


def rms(a: np.ndarray) -> float:
    """Root mean square of an array (its magnitude, what fp32 rounding scales with); 0.0 when empty."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-noise ratio in dB: 10·log10(Σref² / Σ(got-ref)²). +inf when identical, -inf when
    the reference is all zeros and the candidate is not, NaN when either holds NaN or Inf."""
    noise = signal = 0.0
    for r, g in float_slices(ref, got):
        if not (np.isfinite(r).all() and np.isfinite(g).all()):
            return math.nan
        noise += float(np.sum((g - r) ** 2))
        signal += float(np.sum(r**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def psnr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB: 10·log10(peak² / mean((got-ref)²)), the peak being the
    reference's range (max - min). +inf when identical, -inf when the reference is constant and
    the candidate differs, NaN when either holds NaN or Inf."""
    squared = 0.0
    count, low, high = 0, math.inf, -math.inf
    for r, g in float_slices(ref, got):
        if not (np.isfinite(r).all() and np.isfinite(g).all()):
            return math.nan
        squared += float(np.sum((g - r) ** 2))
        count += r.size
        if r.size:
            low, high = min(low, float(r.min())), max(high, float(r.max()))
    if count == 0 or squared == 0.0:
        return math.inf
    peak = high - low
    if peak == 0.0:
        return -math.inf
    return 10.0 * math.log10(peak * peak / (squared / count))


def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays: 1.0 when both are all zeros, 0.0 when only one
    is, NaN when either holds NaN or Inf."""
    dot = rr = gg = 0.0
    for r, g in float_slices(ref, got):
        if not (np.isfinite(r).all() and np.isfinite(g).all()):
            return math.nan
        dot, rr, gg = dot + float(np.dot(r, g)), rr + float(np.dot(r, r)), gg + float(np.dot(g, g))
    nr, ng = math.sqrt(rr), math.sqrt(gg)
    if nr == 0.0 or ng == 0.0:
        return 1.0 if nr == ng else 0.0
    return float(np.clip(dot / (nr * ng), -1.0, 1.0))


def mismatch_share(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, equal_nan: bool = False) -> float:
    """Share of elements outside ``|got - ref| <= atol + rtol·|ref|`` (0.0 for an empty array)."""
    outside = total = 0
    for r, g in float_slices(ref, got):
        outside += int(np.count_nonzero(~np.isclose(g, r, atol=atol, rtol=rtol, equal_nan=equal_nan)))
        total += r.size
    return outside / total if total else 0.0


def smallest_passing_atol(ref: np.ndarray, got: np.ndarray, rtol: float) -> float:
    """The smallest atol with which every element passes at ``rtol``: max(|got-ref| - rtol·|ref|, 0).
    +inf when NaN or Inf differ."""
    worst = 0.0
    for r, g in float_slices(ref, got):
        with np.errstate(invalid="ignore", over="ignore"):
            same = (r == g) | (np.isnan(r) & np.isnan(g))
            need = np.where(same, 0.0, np.abs(g - r) - rtol * np.abs(r))
        need = np.where(np.isnan(need), np.inf, need)
        worst = max(worst, float(np.max(need)))
    return worst


def topk_hits(ref: np.ndarray, got: np.ndarray, k: int) -> tuple[int, int]:
    """(rows whose top-``k`` index sets agree, rows) over the last axis; leading axes are rows.

    Callers aggregate over examples by adding the pairs, so the figure is agreement over every row
    of every example."""
    r, g = np.asarray(ref), np.asarray(got)
    if r.shape != g.shape:
        raise ValueError(f"shapes differ: reference {list(r.shape)}, candidate {list(g.shape)}")
    if r.ndim == 0 or r.shape[-1] == 0:
        return (0, 0)
    k = min(int(k), r.shape[-1])
    hits = rows = 0
    for r2, g2 in zip(row_blocks(r), row_blocks(g)):
        r2, g2 = r2.astype(np.float64), g2.astype(np.float64)
        top_r = np.sort(np.argsort(-r2, axis=-1, kind="stable")[:, :k], axis=-1)
        top_g = np.sort(np.argsort(-g2, axis=-1, kind="stable")[:, :k], axis=-1)
        hits += int(np.all(top_r == top_g, axis=-1).sum())
        rows += r2.shape[0]
    return hits, rows
