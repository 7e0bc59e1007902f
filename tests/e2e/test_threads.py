"""Thread pools per framework in real sessions; the xdist case (two real workers) is in e2e/test_plugin.py's xdist test."""

from __future__ import annotations

import pytest


def test_bad_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--xframe-threads=many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--xframe-threads: expected 'auto', 0 or a thread count, got 'many'*"])


def test_bad_ini_value_names_the_option(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nxframe_threads = lots\n")
    result = pytester.runpytest()
    assert result.ret != 0
    assert "xframe_threads must be 'auto', 0 or a thread count, got 'lots'" in result.stdout.str() + result.stderr.str()


def test_serial_run_keeps_torch_threads_and_a_count_sets_them(xf_pytester: pytest.Pytester) -> None:
    torch = pytest.importorskip("torch")
    xf_pytester.makepyfile(
        """
        import sys, torch
        from conftest import MLP
        from pytest_xframe import TensorSpec

        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))], backends=["onnxruntime"], exporter="torchscript", max_examples=2)
            print("torch threads", torch.get_num_threads())
        """
    )
    before = torch.get_num_threads()
    try:
        result = xf_pytester.runpytest("-s")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["xframe: *; threads: framework defaults", f"*torch threads {before}"])
        result = xf_pytester.runpytest("-s", "--xframe-threads=1")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["xframe: *; threads: 1 per framework", "*torch threads 1"])
    finally:
        torch.set_num_threads(before)  # the inner run shares this process


def test_xdist_workers_set_the_openmp_policy_before_conftests_import(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenMP reads the policy when torch loads it, which a conftest may do at import."""
    pytest.importorskip("xdist")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    pytester.makeconftest("import os\nSEEN = os.environ.get('OMP_WAIT_POLICY')\n")
    pytester.makepyfile(
        """
        import os, sys

        def test_policy():
            assert sys.modules["conftest"].SEEN == os.environ["EXPECTED"]
        """
    )
    monkeypatch.setenv("EXPECTED", "PASSIVE")
    pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly").assert_outcomes(passed=1)
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("EXPECTED", "ACTIVE")
    pytester.runpytest_subprocess("-n", "2", "-p", "no:randomly").assert_outcomes(passed=1)
