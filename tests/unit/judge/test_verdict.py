"""judge.decide: the one place a verdict is decided, from a backend's findings, else from
how the check ended; and a mismatch as a typed value."""

from __future__ import annotations

import numpy as np
import pytest

from pytest_xframe import BackendUnavailable, ConversionError, ParityError
from pytest_xframe.check.options import CheckOptions
from pytest_xframe.judge.compare import compare_output
from pytest_xframe.judge.decide import decide, expected_failure
from pytest_xframe.judge.mismatch import Mismatch
from pytest_xframe.judge.policy import Thresholds
from pytest_xframe.judge.results import BackendResult, ParityReport
from pytest_xframe.judge.verdict import judge_example


def _report(*backends: str, ended: BaseException | None = None) -> ParityReport:
    report = ParityReport("t.py::test", CheckOptions(backends=backends), model="Net", ended_by=ended)
    report.backends.update({b: BackendResult(b) for b in backends})
    return report


def _mismatch(backend: str) -> Mismatch:
    ref, got = {"y": np.array([1.0, 2.0], np.float32)}, {"y": np.array([1.0, 2.5], np.float32)}
    judged = judge_example(ref, got, lambda name, dtype: Thresholds(atol=1e-5, rtol=1e-4), equal_nan=False)
    return Mismatch(backend, {"x": np.zeros(2, np.float32)}, ref, got, tuple(judged))


def test_a_check_that_ran_through_passes_and_keeps_its_note() -> None:
    report = _report("onnxruntime", "tensorflow")
    report.backends["tensorflow"].message = "fell back to torchscript, opset 17 after: ..."
    decide(report)
    assert [(r.verdict, r.message) for r in report.backends.values()] == [("passed", ""), ("passed", "fell back to torchscript, opset 17 after: ...")]


def test_a_mismatch_fails_its_backend_and_the_error_that_stopped_the_check_marks_the_others() -> None:
    mismatch = _mismatch("onnxruntime")
    error = ParityError("Net: outputs differ from torch on onnxruntime\n...", model="Net", backend="onnxruntime", mismatches=[mismatch])
    report = _report("onnxruntime", "tensorflow", ended=error)
    report.backends["onnxruntime"].mismatch = mismatch
    decide(report)
    assert (report["onnxruntime"].verdict, report["onnxruntime"].message) == ("failed", "y: 50% of elements outside atol=1e-05, rtol=0.0001 (allowed: 0%)")
    assert (report["tensorflow"].verdict, report["tensorflow"].message) == ("error", "Net: outputs differ from torch on onnxruntime")
    assert error.mismatches == (mismatch,) and [j.comparison.name for j in mismatch.failing] == ["y"]


@pytest.mark.parametrize(
    ("ended", "verdict"),
    [(BackendUnavailable("tensorflow not installed"), "skipped"), (ConversionError("onnx-tf failed", backend="tensorflow"), "error"),
     (MemoryError(), "error")],
)
def test_how_the_check_ended_decides_a_backend_without_findings(ended: BaseException, verdict: str) -> None:
    report = _report("tensorflow", ended=ended)
    decide(report)
    assert report["tensorflow"].verdict == verdict and report["tensorflow"].message


def test_findings_outrank_how_the_check_ended_and_deciding_again_is_the_same() -> None:
    report = _report("a", "b", "c", "d")
    report.backends["a"].failed_over_examples = {"logits": "top-1 agreement 3/4 (75%) < 99%"}
    report.backends["b"].vacuous = "the parity check of Net cannot fail"
    report.backends["c"].baseline = {"check": "Net", "status": "drifted",
                                     "drift": [{"output": "y", "figure": "max_abs", "baseline": 1e-7, "new": 1e-4, "by": "1e+03x", "limit": "drift factor 2"}]}
    report.unavailable["e"] = BackendResult("e", unavailable="e backend needs nothing: pip install e")
    decide(report)
    first = [(r.verdict, r.message) for r in (*report.backends.values(), *report.unavailable.values())]
    decide(report)
    assert [(r.verdict, r.message) for r in (*report.backends.values(), *report.unavailable.values())] == first
    assert [v for v, _ in first] == ["failed", "failed", "failed", "passed", "skipped"]
    assert first[0][1] == "logits: top-1 agreement 3/4 (75%) < 99%" and first[2][1].startswith("drift: output 'y' max_abs")


def test_an_expected_failure_is_xfailed() -> None:
    assert [expected_failure(v) for v in ("passed", "failed", "error", "skipped")] == ["passed", "xfailed", "xfailed", "skipped"]


def test_the_mismatch_message_names_the_failing_output() -> None:
    m = _mismatch("onnxruntime")
    assert m.message() == "y: 50% of elements outside atol=1e-05, rtol=0.0001 (allowed: 0%)"
    assert [c.mismatches for c in m.comparisons] == [compare_output("y", m.reference["y"], m.outputs["y"], 1e-5, 1e-4).mismatches] == [1]
