"""Failures name the step that broke and the first divergent ONNX node (pytester, real frameworks)."""

from __future__ import annotations

import json

import pytest

MODELS = """
import pytest, torch
from torch import nn
from pytest_xframe import TensorSpec


class Gate(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, h):
        if h.sum() > 0:          # frozen by the torchscript exporter
            return torch.relu(self.lin(h))
        return h * 2 - 1


class Gated(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.inp = nn.Linear(4, 4)
        self.gate = Gate()
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.gate(self.inp(x)))


class Upsampler(nn.Module):
    '''Bilinear resize by a non-integer factor: onnx-tf maps coordinates differently from ONNX Runtime.'''

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = nn.functional.interpolate(y, scale_factor=1.7, mode="bilinear", align_corners=False)
        return self.head(torch.tanh(y))
"""


def test_export_divergence_names_the_node_inside_the_frozen_module(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(models=MODELS)
    xf_pytester.makepyfile(
        """
        import pytest
        from models import Gated
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
    xf_pytester.makepyfile(models=MODELS)
    xf_pytester.makepyfile(
        """
        import pytest
        from models import Upsampler
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
