"""The error metrics (pytest_xframe.judge.metrics) on arrays whose figures can be worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pytest_xframe.judge import metrics


def test_snr_db_is_signal_power_over_noise_power_in_decibels() -> None:
    ref = np.array([3.0, 4.0], dtype=np.float32)  # signal power 25
    got = ref + np.array([0.05, 0.0], dtype=np.float32)  # noise power 0.0025: ratio 1e4
    assert metrics.snr_db(ref, got) == pytest.approx(40.0, abs=1e-4)
    assert metrics.snr_db(ref, ref) == math.inf
    assert metrics.snr_db(np.zeros(3), np.array([0.0, 1.0, 0.0])) == -math.inf
    assert math.isnan(metrics.snr_db(np.array([1.0, np.nan]), np.array([1.0, np.nan])))


def test_cosine_of_the_flattened_arrays() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 0.0]])
    assert metrics.cosine(ref, np.array([[1.0, 1.0], [0.0, 0.0]])) == pytest.approx(1 / math.sqrt(2))
    assert metrics.cosine(ref, -ref) == -1.0
    assert metrics.cosine(np.zeros(4), np.zeros(4)) == 1.0
    assert metrics.cosine(np.zeros(4), np.ones(4)) == 0.0
    assert math.isnan(metrics.cosine(np.array([1.0, np.inf]), np.array([1.0, 2.0])))


def test_mismatch_share_counts_elements_outside_atol_plus_rtol_times_reference() -> None:
    ref = np.array([1.0, 10.0, 100.0, 0.0])
    got = ref + np.array([0.15, 0.15, 0.15, 0.15])
    # allowed: 0.1 + 0.01 * |ref| = 0.11, 0.2, 1.1, 0.1 -> elements 0 and 3 are out
    assert metrics.mismatch_share(ref, got, atol=0.1, rtol=0.01) == 0.5
    assert metrics.mismatch_share(np.array([np.nan]), np.array([np.nan]), 0.0, 0.0) == 1.0
    assert metrics.mismatch_share(np.array([np.nan]), np.array([np.nan]), 0.0, 0.0, equal_nan=True) == 0.0
    assert metrics.mismatch_share(np.zeros((0, 3)), np.zeros((0, 3)), 0.0, 0.0) == 0.0


def test_smallest_passing_atol_is_the_atol_at_which_mismatch_share_drops_to_zero() -> None:
    ref = np.array([1.0, 10.0, -100.0])
    got = np.array([1.3, 10.5, -100.2])
    need = metrics.smallest_passing_atol(ref, got, rtol=0.01)  # max(0.3 - 0.01, 0.5 - 0.1, 0.2 - 1.0, 0) = 0.4
    assert need == pytest.approx(0.4)
    assert metrics.mismatch_share(ref, got, need * (1 + 1e-12), 0.01) == 0.0
    assert metrics.mismatch_share(ref, got, need * 0.99, 0.01) > 0.0
    assert metrics.smallest_passing_atol(ref, ref, rtol=0.0) == 0.0
    assert metrics.smallest_passing_atol(np.array([1.0]), np.array([np.nan]), rtol=0.1) == math.inf


def test_topk_hits_compares_index_sets_per_row() -> None:
    ref = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3], [0.3, 0.3, 0.4]])
    got = np.array([[0.2, 0.8, 0.0], [0.2, 0.5, 0.3], [0.4, 0.3, 0.3]])
    assert metrics.topk_hits(ref, got, 1) == (1, 3)  # only the first row keeps its argmax
    # top-2 as sets (ties keep the lower index): {0, 1} = {0, 1}; {0, 2} != {1, 2}; {0, 2} != {0, 1}
    assert metrics.topk_hits(ref, got, 2) == (1, 3)
    assert metrics.topk_hits(ref, got, 3) == (3, 3)  # every index: always the same set
    assert metrics.topk_hits(ref.reshape(1, 3, 3), got.reshape(1, 3, 3), 1) == (1, 3)  # leading axes are rows
    assert metrics.topk_hits(np.float32(1.0), np.float32(1.0), 1) == (0, 0)
