"""The baseline's judgement, pure: each figure judged in its own direction, floors, rounding, stale entries."""

from __future__ import annotations

import math

import pytest

from pytest_xframe.judge.baseline import FIGURES, Baseline, examine, figures_of, judge, stale


def test_stale_entries_are_judged_only_on_tests_this_run_collected() -> None:
    baseline = Baseline(entries={(t, c, "onnxruntime", o): {} for t, c, o in [
        ("a.py::test_ran", "M", "out"), ("a.py::test_ran", "M", "gone"), ("a.py::test_ran", "Old", "out"),
        ("a.py::test_deselected", "M", "out"), ("a.py::test_deleted", "M", "out"), ("b.py::test_other_module", "M", "out"),
    ]})
    ran = {"test": "a.py::test_ran", "backend": "onnxruntime", "outputs": [{"name": "out"}], "baseline": {"check": "M"}}
    found = dict(stale(baseline, [ran], {"a.py::test_ran", "a.py::test_deselected"}))
    assert found == {
        ("a.py::test_ran", "M", "onnxruntime", "gone"): "the model no longer has this output",
        ("a.py::test_ran", "Old", "onnxruntime", "out"): "the test no longer checks Old",
        ("a.py::test_deleted", "M", "onnxruntime", "out"): "test no longer exists",
    }


@pytest.mark.parametrize(
    ("figure", "baseline", "new", "worse"),
    [
        ("max_abs", 1e-4, 3e-4, True),  # errors: larger is worse
        ("max_abs", 3e-4, 1e-4, False),
        ("smallest_atol", 1e-3, 2.5e-3, True),
        ("max_mismatch", 0.0, 0.01, True),  # from the floor (0.1% of the elements) to 1%
        ("cosine", 0.99999, 0.9999, True),  # 1-cosine 1e-5 -> 1e-4: more than 2 squared
        ("cosine", 0.9999, 0.99999, False),
        ("snr_db", 60.0, 50.0, True),  # 10 dB down: more than 20*log10(2)
        ("snr_db", 50.0, 60.0, False),
        ("topk", 1.0, 0.9, True),  # one row in ten disagrees, from the 1% floor
    ],
)
def test_each_figure_is_judged_in_its_own_direction(figure: str, baseline: float, new: float, worse: bool) -> None:
    change = judge(_figure(figure), ("t", "c", "b", "o"), baseline, new, 2.0)
    assert change is not None and change.worse is worse


@pytest.mark.parametrize(
    ("figure", "baseline", "new"),
    [
        ("max_abs", 1e-9, 5e-9),  # both below the floor: float32 rounding, not drift
        ("max_abs", 1e-4, 1.9e-4),  # within the factor
        ("cosine", 0.99999, 0.99997),  # 1-cosine 3x: the error's amplitude grew less than 2x
        ("snr_db", 130.0, 105.0),  # above the 100 dB ceiling both: rounding
        ("snr_db", 60.0, 54.5),  # 5.5 dB: less than 6.02
        ("topk", 1.0, 0.995),
    ],
)
def test_changes_within_the_factor_or_below_the_floor_are_not_drift(figure: str, baseline: float, new: float) -> None:
    assert judge(_figure(figure), ("t", "c", "b", "o"), baseline, new, 2.0) is None


def test_figures_are_rounded_to_what_is_meaningful() -> None:
    assert _figure("max_abs").rounded(1.23456e-5) == 1.23e-5
    assert _figure("cosine").rounded(0.99998734567) == 0.9999873  # three digits of 1-cosine
    assert _figure("snr_db").rounded(66.3333) == 66.3
    assert _figure("snr_db").rounded(math.inf) == 100.0  # identical outputs: above the ceiling


def test_the_metrics_of_a_record_are_read_generically_and_judged() -> None:
    """Records carry a per-output ``metrics`` dict (the metrics engineer's contract): absent or null
    figures are not measured, identical outputs (infinite SNR) count as the 100 dB ceiling."""
    output = {"name": "logits", "max_abs": 1.23456e-4, "max_rel": None, "metrics": {"cosine": 0.9999912345, "snr_db": math.inf, "topk": None}}
    assert figures_of(output) == {"max_abs": 1.23e-4, "cosine": 0.99999123, "snr_db": 100.0}
    assert figures_of({"name": "o", "max_abs": math.nan, "metrics": {"snr_db": -math.inf}}) == {}  # JSON has neither
    key = ("t.py::test", "M", "tflite", "logits")
    baseline = Baseline(entries={key: {"seed": 1, "examples": 5, **figures_of(output)}})
    worse = {"name": "logits", "max_abs": 1.5e-4, "metrics": {"cosine": 0.99990, "snr_db": 41.0, "smallest_atol": 1e-3}}
    record = {"test": key[0], "backend": "tflite", "seed": 1, "examples": 5, "outputs": [worse]}
    info = examine(baseline, record, "M", 2.0)
    assert info["status"] == "drifted"
    assert {d["figure"]: d["by"] for d in info["drift"]} == {"cosine": "1-cosine 11.4x", "snr_db": "59.0 dB"}
    assert examine(baseline, {**record, "outputs": [worse]}, "Other", 2.0) == {"check": "Other", "status": "missing"}


def _figure(name: str):
    return next(f for f in FIGURES if f.name == name)
