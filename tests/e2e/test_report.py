"""report/: the JSON report (against its schema) and the JUnit properties of each check."""

from __future__ import annotations

import json

import pytest


def test_json_report_validates_against_its_schema(xf_pytester: pytest.Pytester) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_xframe.report.json_report import REPORT_SCHEMA

    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP, Branchy
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=3, exporter="torchscript")
        def test_ok(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=30, exporter="torchscript", seed=0)
        def test_bad(xframe):
            xframe.check(Branchy().eval(), inputs=[TensorSpec((3,))])
        """
    )
    result = xf_pytester.runpytest("--xframe-report=out/report.json", "--junitxml=junit.xml")
    result.assert_outcomes(passed=1, failed=1)
    document = json.loads((xf_pytester.path / "out" / "report.json").read_text())
    jsonschema.validate(document, REPORT_SCHEMA)
    assert document["exit_status"] == 1
    verdicts = {c["test"]: c["verdict"] for c in document["checks"]}
    assert verdicts == {"test_json_report_validates_against_its_schema.py::test_ok[onnxruntime]": "passed",
                        "test_json_report_validates_against_its_schema.py::test_bad[onnxruntime]": "failed"}
    bad = next(c for c in document["checks"] if c["verdict"] == "failed")
    assert bad["max_abs"] > 0 and bad["outputs"][0]["mismatches"] >= 1 and bad["artifacts"]
    junit = (xf_pytester.path / "junit.xml").read_text()
    assert 'name="xframe.onnxruntime.verdict" value="failed"' in junit
    assert 'name="xframe.onnxruntime.max_abs"' in junit
