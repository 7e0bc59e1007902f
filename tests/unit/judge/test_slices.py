"""Comparisons and metrics walk outputs slice by slice (``judge/slices.py``) so a large output costs
no copies of itself: the figures must be those of the whole array, whatever the slice size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_xframe.judge import compare, metrics, slices
from pytest_xframe.judge.vacuity import VacuityTracker


def _pairs() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    ref = rng.standard_normal((37, 29)).astype(np.float32)
    noisy = (ref + rng.standard_normal(ref.shape).astype(np.float32) * 1e-3).astype(np.float32)
    special_ref, special_got = ref.copy(), noisy.copy()
    special_ref.flat[[3, 500]] = np.nan
    special_got.flat[[3, 7]] = [np.nan, np.inf]
    special_ref.flat[900] = special_got.flat[900] = -np.inf
    ints = (ref * 100).astype(np.int32)
    off = ints.copy()
    off.flat[[0, 1000]] += 1
    return [(ref, noisy), (special_ref, special_got), (ints, off), (ref > 0, noisy > 0.01)]


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    return a == b


@pytest.mark.parametrize("case", range(4))
@pytest.mark.parametrize("equal_nan", [False, True])
def test_a_comparison_over_slices_gives_the_whole_arrays_figures(monkeypatch: pytest.MonkeyPatch, case: int, equal_nan: bool) -> None:
    ref, got = _pairs()[case]
    whole = compare.compare_output("y", ref, got, 1e-4, 1e-3, equal_nan).to_dict()
    monkeypatch.setattr(slices, "SLICE", 100)  # 1073 elements: 11 slices, the p99 from the largest values kept
    sliced = compare.compare_output("y", ref, got, 1e-4, 1e-3, equal_nan).to_dict()
    assert whole["mismatches"] > 0
    assert {k: v for k, v in whole.items() if not _same(v, sliced[k])} == {}


@pytest.mark.parametrize("case", range(4))
def test_metrics_over_slices_give_the_whole_arrays_figures(monkeypatch: pytest.MonkeyPatch, case: int) -> None:
    ref, got = _pairs()[case]

    def figures() -> list[object]:
        return [
            metrics.snr_db(ref, got), metrics.cosine(ref, got), metrics.mismatch_share(ref, got, 1e-4, 1e-3),
            metrics.smallest_passing_atol(ref, got, 1e-3), metrics.topk_hits(ref, got, 3),
        ]

    whole = figures()
    monkeypatch.setattr(slices, "SLICE", 100)
    assert all(_same(a, b) for a, b in zip(whole, figures())), (whole, figures())


def test_the_p99_of_the_largest_values_kept_is_numpys_percentile() -> None:
    values = np.random.default_rng(3).exponential(size=10_001)
    top = slices.Top(values.size, 99)
    for start in range(0, values.size, 97):
        top.add(values[start : start + 97])
    assert top.values.size < values.size / 50  # about 1% of them kept, not all
    assert top.percentile() == pytest.approx(float(np.percentile(values, 99)), rel=1e-12)


def test_the_vacuity_check_keeps_a_digest_not_a_copy() -> None:
    tracker = VacuityTracker()
    big = np.zeros((1000, 1000), np.float32)
    tracker.see(b"a", {"y": big})
    tracker.see(b"b", {"y": big.copy()})
    assert isinstance(tracker.first["y"], bytes)
    assert tracker.reasons() == {"y": ("zeros", "is all zeros over the 2 inputs drawn")}
    other = VacuityTracker()
    other.see(b"a", {"y": np.ones(3)})
    other.see(b"b", {"y": np.ones(3)})
    assert other.reasons() == {"y": ("constant", "is the same for all 2 different inputs drawn")}
