"""Helpers the suite's tests share; the test models live in ``torch_models.py`` and ``onnx_models.py``."""

from __future__ import annotations

import json
from typing import Any

import pytest


def report_checks(pytester: pytest.Pytester, name: str = "report.json") -> list[dict[str, Any]]:
    """The ``checks`` of the JSON report an inner session wrote (``--xframe-report=NAME``)."""
    return json.loads((pytester.path / name).read_text())["checks"]


def failure_sections(result: pytest.RunResult) -> str:
    """The inner session's FAILURES sections alone: on a CI machine (``CI`` set) pytest's short
    summary repeats each failure's whole message, so counting in all of stdout counts twice."""
    text = result.stdout.str()
    start = text.find("= FAILURES =")
    end = text.find("short test summary info", start)
    return text[start : end if end != -1 else len(text)] if start != -1 else ""


def checks_by(pytester: pytest.Pytester, *keys: str, name: str = "report.json") -> dict[Any, dict[str, Any]]:
    """The same checks keyed by one field (``"backend"``) or a tuple of fields (``"test", "backend"``)."""
    return {(c[keys[0]] if len(keys) == 1 else tuple(c[k] for k in keys)): c for c in report_checks(pytester, name)}


#: modules a backend needs beyond its packages being installed, which an older stack has but cannot
#: import (onnxruntime.quantization beside onnx 1.15: the backend then fails with a ConversionError)
IMPORTED_BY = {"onnxruntime-int8": "onnxruntime.quantization"}


def skip_unless_backends(*names: str) -> None:
    """Skip the test unless every named backend's packages are installed (naming the extra) and
    import on this stack."""
    from pytest_xframe import backends

    for name in names:
        reason = backends.get(name).missing()
        if reason:
            pytest.skip(reason)
        if name in IMPORTED_BY:
            skip_unless_imports(IMPORTED_BY[name], f"backend {name}")


def skip_unless_opset(opset: int) -> None:
    """Skip the test where the installed onnx does not know ``opset`` (the older stack, tox's
    py311-tf215, has onnx 1.15: opset 20)."""
    import onnx

    if onnx.defs.onnx_opset_version() < opset:
        pytest.skip(f"onnx {onnx.__version__} knows opsets up to {onnx.defs.onnx_opset_version()}, not {opset}")


def skip_unless_imports(module: str, why: str) -> None:
    """Skip the test where ``module`` is missing or does not import on this stack (the older one's
    onnxruntime.quantization needs a newer onnx than it has); ``why``: what the test needs it for."""
    import importlib

    try:
        importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure to import means the same here
        pytest.skip(f"{module} does not import here ({type(exc).__name__}: {exc}): {why}")


#: a model with one weight big enough (4 KiB) for every exporter to move it to external data
WIDE = """
import torch
from torch import nn
from pytest_xframe import TensorSpec, Dim

class Wide(nn.Module):
    def __init__(self, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.fc = nn.Linear(32, 32)

    def forward(self, x):
        return self.fc(x).tanh()

INPUTS = [TensorSpec((Dim("batch", 1, 3), 32))]
"""



def keyed_test(key: str | None, seed: int = 0) -> str:
    """A test module checking ``Wide`` (from ``WIDE`` written as wide.py) with ``export_key=key``."""
    option = "" if key is None else f", export_key={key}"
    return f"""
from wide import Wide, INPUTS

def test_wide(xframe):
    xframe.check(Wide(seed={seed}).eval(), INPUTS, backends=["onnxruntime"], exporter="torchscript", max_examples=3{option})
"""


def transpiled(marker: str) -> int:
    """How many sources AutoGraph generated in this process contain ``marker``."""
    import sys
    from pathlib import Path

    count = 0
    for name, module in list(sys.modules.items()):
        if name.startswith("__autograph_generated_file") and getattr(module, "__file__", None):
            try:
                count += marker in Path(module.__file__).read_text()
            except OSError:
                continue
    return count
