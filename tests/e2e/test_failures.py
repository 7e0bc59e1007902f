"""diagnose/failures.py: a failure names the step that broke and the first divergent ONNX node (pytester, real frameworks)."""

from __future__ import annotations

import json

import pytest


def test_export_divergence_names_the_node_inside_the_frozen_module(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import Gated
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript", max_examples=60, seed=2)
        def test_gated(xframe):
            xframe.check(Gated().eval(), inputs=[TensorSpec((1, 4), low=-3, high=3)])
        """
    )
    result = xf_pytester.runpytest("--xframe-report=r.json")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*[[]onnxruntime[]] diagnosis: the export step introduced the error*", "*first divergence torch vs onnxruntime*", "* node '/gate/*"]
    )
    check = json.loads((xf_pytester.path / "r.json").read_text())["checks"][0]
    assert "export step" in check["diagnosis"] and "'/gate/" in check["diagnosis"]


def test_conversion_divergence_names_the_resize_node(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import Upsampler
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(backends=["tensorflow"], exporter="torchscript", opset=13, max_examples=5, seed=0)
        def test_upsampler(xframe):
            xframe.check(Upsampler().eval(), inputs=[TensorSpec((1, 2, 5, 5))])
        """
    )
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*[[]tensorflow[]] diagnosis: the conversion step introduced the error*",
            "*first divergence onnxruntime vs tensorflow*",
            "*Resize node '/Resize'*",
        ]
    )

