"""Failing cases are kept on disk under safe names, and replay reproduces them in a clean process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_xframe.artifacts import case_dir, safe_name


@pytest.mark.parametrize(
    "test_id",
    ["t.py::test[../../etc/passwd]", "t.py::test[a/b\\c]", "t.py::test[ünïcødé-名前]", "..", "/", "", "x" * 500, "t.py::test[\x00nul]"],
)
def test_safe_names_stay_inside_the_root(tmp_path: Path, test_id: str) -> None:
    name = safe_name(test_id)
    assert name and "/" not in name and "\\" not in name and name not in (".", "..") and name.isascii()
    assert len(name) <= 100
    path = case_dir(tmp_path, test_id, "tensorflow")
    assert tmp_path.resolve() in path.parents


def test_distinct_ids_get_distinct_names() -> None:
    assert safe_name("t.py::test[a/b]") != safe_name("t.py::test[a_b]")
    assert safe_name("t.py::test[ü]") != safe_name("t.py::test[u]")


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
