"""A failing case is kept on disk, and replay reproduces it in a clean process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_failure_is_kept_and_replayed_in_a_clean_process(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import Branchy
        from pytest_xframe import TensorSpec

        @pytest.mark.parametrize("case", ["a/b", "../up", "ünï[x]"])
        @pytest.mark.xframe_parity(exporter="torchscript", max_examples=40, seed=3)
        def test_branchy(xframe, case):
            xframe.check(Branchy().eval(), inputs=[TensorSpec((4,))])
        """
    )
    result = xf_pytester.runpytest("--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(failed=6)
    root = (xf_pytester.path / "kept").resolve()
    checks = json.loads((xf_pytester.path / "report.json").read_text())["checks"]
    assert len(checks) == 6
    for check in checks:
        directory = Path(check["artifacts"])
        assert root in directory.parents
        assert {"model.onnx", "inputs.npz", "reference.npz", "backend.npz", "case.json"} <= {p.name for p in directory.iterdir()}
        if check["backend"] == "tensorflow":
            assert (directory / "converted" / "saved_model.pb").is_file()
        if _has_matplotlib():
            plots = list(directory.glob("error-output-*.png"))
            assert len(plots) == 1 and plots[0].stat().st_size > 1000
            assert f"error plot of 'output': {plots[0].relative_to(xf_pytester.path)}" in result.stdout.str()
        assert f"replay: python -m pytest_xframe replay {directory.relative_to(xf_pytester.path)}" in result.stdout.str()
    for check in (checks[0], next(c for c in checks if c["backend"] == "tensorflow")):
        # the command exactly as printed, from where pytest ran, in a fresh process
        printed = str(Path(check["artifacts"]).relative_to(xf_pytester.path))
        replay = subprocess.run(
            [sys.executable, "-m", "pytest_xframe", "replay", printed], capture_output=True, text=True, timeout=300, cwd=xf_pytester.path
        )
        assert replay.returncode == 1, replay.stderr
        output = check["outputs"][0]
        assert f"max abs error {output['max_abs']:.6g}, max rel error {output['max_rel']:.6g}" in replay.stdout
        assert f"{output['mismatches']} / {output['total']} elements" in replay.stdout
        assert replay.stdout.rstrip().endswith("verdict: MISMATCH")


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None
