"""Export and conversion happen once per session, and conversions are cached across runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from suite_helpers import report_checks

THREE_TESTS = """
import pytest
from conftest import MLP
from pytest_xframe import TensorSpec, Dim

pytestmark = pytest.mark.xframe_parity(max_examples=3, exporter="torchscript", opset=13)

def test_a(xframe):
    xframe.check(MLP().eval(), inputs=[TensorSpec((Dim("batch", 1, 3), 6))])

def test_b(xframe):
    xframe.check(MLP().eval(), inputs=[TensorSpec((Dim("batch", 1, 3), 6))])

def test_c(xframe):
    xframe.check(MLP().eval(), inputs=[TensorSpec((Dim("batch", 1, 3), 6))])
"""



def _entries(cache: Path) -> list[Path]:
    return sorted(p.parent for p in cache.glob("onnx-tf/*/*/manifest.json"))


def test_one_export_and_one_conversion_per_session(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(THREE_TESTS)
    result = xf_pytester.runpytest("--xframe-cache-dir=fresh", "--xframe-report=report.json")
    result.assert_outcomes(passed=6)
    checks = report_checks(xf_pytester)
    exported = [c for c in checks if c["seconds"]["export"] > 0]
    converted = [c for c in checks if c["backend"] == "tensorflow" and not c["cache_hit"]]
    assert len(exported) == 1, "both backends share one torchscript/opset-13 export"
    assert len(converted) == 1 and converted[0]["seconds"]["convert"] > 0
    assert all(c["cache_hit"] for c in checks if c["backend"] == "tensorflow" and c is not converted[0])
    assert len(_entries(xf_pytester.path / "fresh")) == 1


def test_conversion_cache_across_runs_detects_corruption(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(THREE_TESTS)
    args = ("--xframe-cache-dir=c", "--xframe-backends=tensorflow", "--xframe-report=report.json")
    xf_pytester.runpytest(*args).assert_outcomes(passed=3)
    assert not report_checks(xf_pytester)[0]["cache_hit"]
    xf_pytester.runpytest(*args).assert_outcomes(passed=3)
    warm = report_checks(xf_pytester)
    assert all(c["cache_hit"] for c in warm)
    (entry,) = _entries(xf_pytester.path / "c")
    saved_model = next(entry.rglob("saved_model.pb"))
    saved_model.write_bytes(saved_model.read_bytes()[:100])  # truncated by hand
    result = xf_pytester.runpytest(*args)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*CacheCorruptWarning*"])
    assert not report_checks(xf_pytester)[0]["cache_hit"]
    assert _entries(xf_pytester.path / "c") == [entry] and saved_model.stat().st_size > 100


def test_no_cache_and_cache_clear(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makeini("[pytest]\naddopts = -p no:randomly\n")  # the default cache location
    xf_pytester.makepyfile(THREE_TESTS)
    default = xf_pytester.path / ".pytest_cache" / "d" / "xframe"
    xf_pytester.runpytest("--xframe-backends=tensorflow", "--xframe-no-cache").assert_outcomes(passed=3)
    assert _entries(default) == []
    xf_pytester.runpytest("--xframe-backends=tensorflow").assert_outcomes(passed=3)
    assert len(_entries(default)) == 1
    xf_pytester.runpytest("--xframe-backends=tensorflow", "--cache-clear", "--xframe-report=report.json").assert_outcomes(passed=3)
    assert not report_checks(xf_pytester)[0]["cache_hit"]


@pytest.mark.slow
def test_xdist_workers_on_a_cold_cache_build_one_entry(xf_pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    xf_pytester.makepyfile(THREE_TESTS)
    result = xf_pytester.runpytest_subprocess("-n", "2", "--xframe-cache-dir=cold", "--xframe-backends=tensorflow", "--xframe-report=report.json")
    result.assert_outcomes(passed=3)
    assert len(_entries(xf_pytester.path / "cold")) == 1
    assert sum(not c["cache_hit"] for c in report_checks(xf_pytester)) == 1  # the other worker waited on the lock, then read it


@pytest.mark.slow
def test_xdist_workers_of_one_run_export_a_model_once(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The export is shared through a directory the controller makes for the run and removes
    after it; the worker that did not export copies the ONNX file and still passes."""
    pytest.importorskip("xdist")
    tmp = xf_pytester.mkdir("tmp")
    monkeypatch.setenv("TMPDIR", str(tmp))
    xf_pytester.makepyfile(
        test_three=THREE_TESTS,
        test_zz_seen="""
import glob, os

def test_run_dir_exists_during_the_run():
    found = glob.glob(os.path.join(os.environ["TMPDIR"], "pytest-xframe-run-*", "onnx-export"))
    open(os.path.join(os.environ["TMPDIR"], "seen.txt"), "a").write("".join(f + "\\n" for f in found))
""",
    )
    # 4 tests on 2 workers: fewer than 2 per worker, so xdist deals them out one at a time
    result = xf_pytester.runpytest_subprocess("-n", "2", "--xframe-backends=onnxruntime", "--xframe-report=report.json")
    result.assert_outcomes(passed=4)
    checks = report_checks(xf_pytester)
    assert len(checks) == 3 and all(c["verdict"] == "passed" for c in checks)
    assert sum(c["seconds"]["export"] > 0 for c in checks) == 1, "one export for the whole run, not one per worker"
    assert (tmp / "seen.txt").read_text().strip(), "the workers shared a run directory"
    assert not list(tmp.glob("pytest-xframe-run-*")), "removed with the run"
