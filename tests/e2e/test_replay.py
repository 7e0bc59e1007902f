"""diagnose/replay.py: a kept case replays in a fresh process, for every backend that can load one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["onnx2tf", "tflite"])
def test_converter_backends_replay_too(xf_pytester: pytest.Pytester, backend: str) -> None:
    from pytest_xframe import backends

    if backends.get(backend).missing():
        pytest.skip(backends.get(backend).missing())
    xf_pytester.makepyfile(
        f"""
        import pytest
        from conftest import Branchy
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(backends=["{backend}"], exporter="torchscript", max_examples=40, seed=3)
        def test_branchy(xframe):
            xframe.check(Branchy().eval(), inputs=[TensorSpec((4,))])
        """
    )
    result = xf_pytester.runpytest("--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(failed=1)
    check = json.loads((xf_pytester.path / "report.json").read_text())["checks"][0]
    printed = str(Path(check["artifacts"]).relative_to(xf_pytester.path))
    assert f"replay: python -m pytest_xframe replay {printed}" in result.stdout.str()
    replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", printed], capture_output=True, text=True, timeout=300, cwd=xf_pytester.path)
    assert replay.returncode == 1, replay.stderr
    output = check["outputs"][0]
    assert f"max abs error {output['max_abs']:.6g}, max rel error {output['max_rel']:.6g}" in replay.stdout
    assert replay.stdout.rstrip().endswith("verdict: MISMATCH")
