"""pytest-html shows each parity check's figures and the failing case's error plots."""

from __future__ import annotations

import base64
import html
import importlib.util
import re
import textwrap

import pytest

pytest.importorskip("pytest_html", reason="pytest-html is not installed: pip install pytest-html")

TESTS = textwrap.dedent(
    """
    import pytest
    from conftest import Branchy, MLP
    from pytest_xframe import Dim, TensorSpec

    @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=3)
    def test_mlp(xframe):
        xframe.check(MLP().eval(), [TensorSpec((Dim("batch", 1, 4), 6))])

    @pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript", max_examples=40, seed=3)
    def test_branchy(xframe):
        xframe.check(Branchy().eval(), [TensorSpec((4,))])
    """
)


def test_html_report_has_figures_and_error_plots(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(test_models=TESTS)
    result = xf_pytester.runpytest("--html=report.html", "--self-contained-html", "--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(passed=1, failed=1)
    # pytest-html keeps the rows as JSON in an attribute: unescape it to read the cells
    page = html.unescape((xf_pytester.path / "report.html").read_text()).replace('\\"', '"')
    assert '<th class="col-xframe">xframe</th>' in page
    assert re.search(r'<td class="col-xframe">onnxruntime: passed, max abs [0-9.e-]+ \([0-9.e-]+x tol\)</td>', page)
    assert re.search(r'<td class="col-xframe">onnxruntime: failed, max abs [0-9.e+-]+ \([0-9.e+-]+x tol\)</td>', page)
    import json

    checks = {c["test"]: c for c in json.loads((xf_pytester.path / "report.json").read_text())["checks"]}
    failed = checks["test_models.py::test_branchy[onnxruntime]"]["outputs"][0]
    # the figures table: one row per backend x output, the same figures as the JSON report
    header = "<tr><th>backend</th><th>output</th><th>shape</th><th>verdict</th><th>max_abs</th><th>max_rel</th><th>atol</th><th>rtol</th>"
    assert page.count(header) == 2
    row = f"<tr><td>onnxruntime</td><td>output</td><td>float32{failed['shape']}</td><td>MISMATCH</td><td>{failed['max_abs']:.3g}</td>"
    assert row in page
    if importlib.util.find_spec("matplotlib") is not None:
        plot = next((xf_pytester.path / "kept").rglob("error-output-*.png"))
        assert f"data:image/png;base64,{base64.b64encode(plot.read_bytes()).decode()}" in page


def test_runs_without_pytest_html(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(test_models=TESTS)
    result = xf_pytester.runpytest("-p", "no:html", "-k", "mlp")
    result.assert_outcomes(passed=1)


