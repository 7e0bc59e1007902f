"""The comparison rule and its figures, on hand-made arrays (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_xframe.check.options import CheckOptions
from pytest_xframe.judge.compare import compare_all, compare_output, format_comparison


def test_within_tolerance_passes_and_reports_the_figures() -> None:
    ref = np.array([1.0, -2.0, 3.0, 0.0], dtype=np.float32)
    got = ref + np.array([1e-6, -2e-6, 0.0, 5e-6], dtype=np.float32)
    c = compare_output("y", ref, got, atol=1e-5, rtol=1e-4)
    assert c.ok and c.mismatches == 0 and c.total == 4
    assert c.max_abs == pytest.approx(5e-6, rel=1e-2)
    assert c.worst_index == (3,)
    assert c.cosine == pytest.approx(1.0)
    assert 0 < c.tolerance_ratio < 1


def test_rule_is_atol_plus_rtol_times_reference() -> None:
    ref = np.array([100.0, 1.0], dtype=np.float64)
    got = np.array([100.0 + 0.0105, 1.0 + 0.0105])  # allowed: 0.01 + 1e-4*|ref| -> 0.02 and 0.0101
    c = compare_output("y", ref, got, atol=0.01, rtol=1e-4)
    assert not c.ok and c.mismatches == 1 and c.worst_index == (1,)
    assert c.worst_ref == 1.0 and c.worst_got == pytest.approx(1.0105)
    assert c.tolerance_ratio == pytest.approx(0.0105 / 0.0101, rel=1e-6)
    text = format_comparison(c)
    assert "1 / 2 elements (50%) out of tolerance (atol=0.01, rtol=0.0001)" in text
    assert "worst at index [1]: reference 1.0, backend 1.0105" in text


def test_statistics() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=1000).astype(np.float32)
    err = np.abs(rng.normal(scale=1e-3, size=1000)).astype(np.float32)
    c = compare_output("y", ref, ref + err, atol=0, rtol=0)
    diff = np.abs((ref + err).astype(np.float64) - ref)
    assert c.mean_abs == pytest.approx(diff.mean())
    assert c.p99_abs == pytest.approx(np.percentile(diff, 99))
    assert c.max_rel == pytest.approx(np.max(diff / np.abs(ref)))
    assert c.mismatches == int((diff > 0).sum())


def test_shape_and_dtype_are_checked_first() -> None:
    c = compare_output("y", np.zeros((2, 3), np.float32), np.zeros((3, 2), np.float32), 1e-5, 1e-4)
    assert not c.ok and c.problem == "shape differs: reference [2, 3], backend [3, 2]"
    c = compare_output("y", np.zeros(3, np.int64), np.zeros(3, np.int32), 0, 0)
    assert not c.ok and c.problem == "dtype differs: reference int64, backend int32"
    assert "shape differs" in format_comparison(compare_output("y", np.zeros(1), np.zeros(2), 0, 0))


def test_integers_and_bools_compare_exactly() -> None:
    options = CheckOptions(atol=1.0, rtol=1.0)
    assert options.tolerance("int64") == (0.0, 0.0) and options.tolerance("bool") == (0.0, 0.0)
    assert options.tolerance("float32") == (1.0, 1.0)
    assert CheckOptions().tolerance("float16") == (1e-3, 1e-3)
    results = compare_all({"ids": np.array([1, 2, 3]), "flag": np.array([True, False])},
                          {"ids": np.array([1, 2, 4]), "flag": np.array([True, False])}, options.tolerance)
    assert [(r.name, r.ok, r.mismatches) for r in results] == [("ids", False, 1), ("flag", True, 0)]


def test_nan_and_inf() -> None:
    ref = np.array([np.nan, 1.0, np.inf, 2.0])
    same = np.array([np.nan, 1.0, np.inf, 2.0])
    assert not compare_output("y", ref, same, 1e-5, 1e-4).ok  # NaN never equals NaN by default
    c = compare_output("y", ref, same, 1e-5, 1e-4, equal_nan=True)
    assert c.ok and c.nan_ref == 1 and c.inf_ref == 1 and c.max_abs == 0
    one_sided = compare_output("y", np.array([1.0, 2.0]), np.array([np.nan, 2.0]), 1e-5, 1e-4, equal_nan=True)
    assert not one_sided.ok and one_sided.nan_got == 1 and one_sided.max_abs == np.inf
    text = format_comparison(compare_output("y", ref, np.array([0.0, 1.0, np.inf, 2.0]), 1e-5, 1e-4))
    assert "NaN: reference 1, backend 0; Inf: reference 1, backend 1" in text
    assert "torch itself produced NaN for this input" in text


def test_missing_output_is_a_mismatch() -> None:
    (c,) = compare_all({"logits": np.zeros(2, np.float32)}, {}, CheckOptions().tolerance)
    assert not c.ok and c.problem == "missing from the backend's outputs"
