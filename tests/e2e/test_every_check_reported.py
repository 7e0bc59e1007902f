"""Every test pytest counts as an xframe check (one that uses the ``xframe`` fixture, or a declared
model) is in the JSON report and the xframe summary with its outcome, whatever stopped it: an
error at setup, a model factory that raises, a declaration that fails to collect, a skip, a
pytest-xdist worker that crashed in ``forward``. Real pytest sessions, serial and under xdist."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from suite_helpers import report_checks

MODELS = textwrap.dedent(
    """
    import os
    from conftest import MLP
    from torch import nn

    def make_mlp():
        return MLP().eval()

    def make_failing():
        raise RuntimeError("weights file missing")

    def make_exiting():
        raise SystemExit("the factory called sys.exit")

    class Crash(nn.Module):
        def forward(self, x):
            os._exit(3)  # the worker dies: no report, no teardown
    """
)

DECLARED = """
[[tool.xframe.models]]
id = "good"
factory = "models:make_mlp"
inputs = "x=float32[2,6]"
backends = ["onnxruntime"]
max_examples = 2

[[tool.xframe.models]]
id = "raises"
factory = "models:make_failing"
inputs = "x=float32[2,6]"
backends = ["onnxruntime"]

[[tool.xframe.models]]
id = "exits"
factory = "models:make_exiting"
inputs = "x=float32[2,6]"
backends = ["onnxruntime"]
"""

TESTS = textwrap.dedent(
    """
    import pytest
    from models import Crash, make_mlp
    from pytest_xframe import TensorSpec

    ORT = dict(backends=["onnxruntime"], max_examples=2)

    def test_ok(xframe):
        xframe.check(make_mlp(), [TensorSpec((2, 6))], **ORT)

    @pytest.fixture
    def dataset():
        raise FileNotFoundError("data/calibration.npz")

    def test_setup_error(xframe, dataset):
        xframe.check(make_mlp(), [TensorSpec((2, 6))], **ORT)

    def test_fails_before_checking(xframe):
        raise ValueError("could not build the inputs")

    @pytest.mark.skip(reason="not on this machine")
    def test_skipped(xframe):
        xframe.check(make_mlp(), [TensorSpec((2, 6))], **ORT)

    @pytest.mark.xframe_parity(backends=["onnxruntime"], atoll=1e-3)
    def test_bad_marker(xframe):
        xframe.check(make_mlp(), [TensorSpec((2, 6))])

    def test_plain():
        pass  # not an xframe check: never in the report
    """
)

CRASH = textwrap.dedent(
    """
    from models import Crash, make_mlp
    from pytest_xframe import TensorSpec

    def test_crash(xframe):
        xframe.check(make_mlp(), [TensorSpec((2, 6))], backends=["onnxruntime"], max_examples=2)
        xframe.check(Crash().eval(), [TensorSpec((2, 6))], backends=["onnxruntime", "tensorflow"], max_examples=2)

    def test_after(xframe):
        xframe.check(make_mlp(), [TensorSpec((2, 6))], backends=["onnxruntime"], max_examples=2)
    """
)

#: (test id, backend) -> (verdict, text its message holds), for DECLARED + TESTS
EXPECTED = {
    ("pyproject.toml::good[onnxruntime]", "onnxruntime"): ("passed", ""),
    ("pyproject.toml::raises[onnxruntime]", "onnxruntime"): ("error", "model factory models:make_failing raised RuntimeError: weights file missing"),
    ("pyproject.toml::exits[onnxruntime]", "onnxruntime"): ("error", "model factory models:make_exiting raised SystemExit: the factory called sys.exit"),
    ("test_checks.py::test_ok", "onnxruntime"): ("passed", ""),
    ("test_checks.py::test_setup_error", "onnxruntime"): ("error", "at setup: FileNotFoundError: data/calibration.npz"),
    ("test_checks.py::test_fails_before_checking", "onnxruntime"): ("error", "ValueError: could not build the inputs"),
    ("test_checks.py::test_skipped", "onnxruntime"): ("skipped", "not on this machine"),
    ("test_checks.py::test_bad_marker[invalid-marker]", "onnxruntime"): ("error", "at setup: unknown xframe option(s) 'atoll'"),
}


@pytest.fixture
def project(xf_pytester: pytest.Pytester, shared_cache: Path) -> pytest.Pytester:
    """Checks whose backends default to ONNX Runtime alone (``xframe_backends``), so a check that
    never ran records one line per test."""
    xf_pytester.makeini(f"[pytest]\naddopts = --xframe-cache-dir={shared_cache} -p no:randomly\npythonpath = .\nxframe_backends = onnxruntime\n")
    xf_pytester.makepyfile(models=MODELS, test_checks=TESTS)
    xf_pytester.makefile(".toml", pyproject=DECLARED)
    return xf_pytester


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_checks_stopped_before_recording_are_in_the_report_and_the_summary(project: pytest.Pytester, workers: list[str]) -> None:
    result = project.runpytest_subprocess("--xframe-report=report.json", "-q", *workers)
    result.assert_outcomes(passed=3, failed=3, errors=2, skipped=1)
    got = {(c["test"], c["backend"]): c for c in report_checks(project)}
    assert set(got) == set(EXPECTED), sorted(got)
    for key, (verdict, says) in EXPECTED.items():
        assert got[key]["verdict"] == verdict, (key, got[key])
        assert says in got[key]["message"], (key, got[key]["message"])
    result.stdout.fnmatch_lines(["xframe: 8 checks: 2 passed, 5 error, 1 skipped*"])
    assert "  ERROR pyproject.toml::raises[onnxruntime] [onnxruntime]: model factory models:make_failing raised RuntimeError" in result.stdout.str()


def test_a_crashed_xdist_worker_leaves_its_check_in_the_report(project: pytest.Pytester) -> None:
    """The worker dies inside ``forward``: the controller records the check that was running with the
    backends that check asked for, next to the checks that finished."""
    (project.path / "pyproject.toml").unlink()
    (project.path / "test_checks.py").unlink()
    project.makepyfile(test_crash=CRASH)
    result = project.runpytest_subprocess("--xframe-report=report.json", "-n", "2", "-q")
    result.assert_outcomes(passed=1, failed=1)
    got = {(c["test"], c["backend"]): c for c in report_checks(project)}
    assert sorted(got) == [
        ("test_crash.py::test_after", "onnxruntime"), ("test_crash.py::test_crash", "onnxruntime"), ("test_crash.py::test_crash", "tensorflow"),
    ]
    for backend in ("onnxruntime", "tensorflow"):
        crashed = got[("test_crash.py::test_crash", backend)]
        assert crashed["verdict"] == "error" and "crashed while running 'test_crash.py::test_crash'" in crashed["message"], crashed
        assert crashed["model"] == "Crash"
    result.stdout.fnmatch_lines(["xframe: 3 checks: 1 passed, 2 error*"])
    assert "  ERROR test_crash.py::test_crash [onnxruntime]: worker 'gw" in result.stdout.str()


BROKEN = """
[[tool.xframe.models]]
id = "missing"
factory = "models:make_nothing"
inputs = "x=float32[2,6]"
backends = ["onnxruntime"]

[[tool.xframe.models]]
id = "typo"
factory = "models:make_mlp"
inputs = "x=float32[2,6"
"""


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["serial", "xdist"])
def test_a_declared_model_that_fails_to_collect_is_an_error_in_the_report(project: pytest.Pytester, workers: list[str]) -> None:
    (project.path / "test_checks.py").unlink()
    project.makefile(".toml", pyproject=BROKEN)
    result = project.runpytest_subprocess("--xframe-report=report.json", "-q", "--continue-on-collection-errors", *workers)
    result.assert_outcomes(errors=2)
    got = {(c["test"], c["backend"]): c for c in report_checks(project)}
    assert sorted(got) == [("pyproject.toml::missing", "onnxruntime"), ("pyproject.toml::typo", "onnxruntime")]
    assert all(c["verdict"] == "error" for c in got.values())
    assert "module models has no attribute 'make_nothing'" in got[("pyproject.toml::missing", "onnxruntime")]["message"]
    result.stdout.fnmatch_lines(["xframe: 2 checks: 2 error"])
