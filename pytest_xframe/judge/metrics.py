"""Error metrics: small pure functions of a reference array and a candidate array (numpy only).

A metric returns a figure; a policy (elsewhere) decides pass or fail from figures, so reports can
show every figure even when only one decides. All arithmetic is in float64.
"""

from __future__ import annotations

import math

import numpy as np


def _pair(ref: np.ndarray, got: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r, g = np.asarray(ref, dtype=np.float64), np.asarray(got, dtype=np.float64)
    if r.shape != g.shape:
        raise ValueError(f"shapes differ: reference {list(r.shape)}, candidate {list(g.shape)}")
    return r, g


def rms(a: np.ndarray) -> float:
    """Root mean square of an array (its magnitude, what fp32 rounding scales with); 0.0 when empty."""
    a = np.asarray(a, dtype=np.float64)
    return float(np.sqrt(np.mean(a * a))) if a.size else 0.0


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    """Signal-to-noise ratio in dB: 10·log10(Σref² / Σ(got-ref)²). +inf when identical, -inf when
    the reference is all zeros and the candidate is not, NaN when either holds NaN or Inf."""
    r, g = _pair(ref, got)
    if not (np.isfinite(r).all() and np.isfinite(g).all()):
        return math.nan
    noise = float(np.sum((g - r) ** 2))
    signal = float(np.sum(r**2))
    if noise == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def cosine(ref: np.ndarray, got: np.ndarray) -> float:
    """Cosine similarity of the flattened arrays: 1.0 when both are all zeros, 0.0 when only one
    is, NaN when either holds NaN or Inf."""
    r, g = _pair(ref, got)
    r, g = r.ravel(), g.ravel()
    if not (np.isfinite(r).all() and np.isfinite(g).all()):
        return math.nan
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if nr == 0.0 or ng == 0.0:
        return 1.0 if nr == ng else 0.0
    return float(np.clip(np.dot(r, g) / (nr * ng), -1.0, 1.0))


def mismatch_share(ref: np.ndarray, got: np.ndarray, atol: float, rtol: float, equal_nan: bool = False) -> float:
    """Share of elements outside ``|got - ref| <= atol + rtol·|ref|`` (0.0 for an empty array)."""
    r, g = _pair(ref, got)
    if r.size == 0:
        return 0.0
    close = np.isclose(g, r, atol=atol, rtol=rtol, equal_nan=equal_nan)
    return float(np.count_nonzero(~close)) / r.size


def smallest_passing_atol(ref: np.ndarray, got: np.ndarray, rtol: float) -> float:
    """The smallest atol with which every element passes at ``rtol``: max(|got-ref| - rtol·|ref|, 0).
    +inf when NaN or Inf differ."""
    r, g = _pair(ref, got)
    if r.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        same = (r == g) | (np.isnan(r) & np.isnan(g))
        need = np.where(same, 0.0, np.abs(g - r) - rtol * np.abs(r))
    need = np.where(np.isnan(need), np.inf, need)
    return float(max(np.max(need), 0.0))


def topk_hits(ref: np.ndarray, got: np.ndarray, k: int) -> tuple[int, int]:
    """(rows whose top-``k`` index sets agree, rows) over the last axis; leading axes are rows.

    Callers aggregate over examples by adding the pairs, so the figure is agreement over every row
    of every example."""
    r, g = _pair(ref, got)
    if r.ndim == 0 or r.shape[-1] == 0:
        return (0, 0)
    k = min(int(k), r.shape[-1])
    r2, g2 = r.reshape(-1, r.shape[-1]), g.reshape(-1, g.shape[-1])
    top_r = np.sort(np.argsort(-r2, axis=-1, kind="stable")[:, :k], axis=-1)
    top_g = np.sort(np.argsort(-g2, axis=-1, kind="stable")[:, :k], axis=-1)
    return int(np.all(top_r == top_g, axis=-1).sum()), int(r2.shape[0])
