"""Installing the plugin costs nothing in runs that use no parity test."""

from __future__ import annotations

import pytest

HEAVY = ("torch", "tensorflow", "onnx", "onnxruntime", "onnx_tf", "keras")

CONFTEST = f"""
import sys

HEAVY = {HEAVY!r}


def pytest_unconfigure(config):
    loaded = sorted(m for m in HEAVY if m in sys.modules)
    with open("loaded.txt", "w") as f:
        f.write(",".join(loaded) or "none")
"""


@pytest.mark.parametrize("args", [(), ("--co",), ("--xframe-backends=onnxruntime", "--xframe-max-examples=3")], ids=["run", "collect", "options"])
def test_no_framework_is_imported_without_a_parity_test(pytester: pytest.Pytester, args: tuple[str, ...]) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*plugins:*xframe*"])
    assert (pytester.path / "loaded.txt").read_text() == "none"


def test_importing_the_package_imports_no_framework(pytester: pytest.Pytester) -> None:
    code = (
        "import sys, pytest_xframe, pytest_xframe.plugin; "
        f"print(sorted(m for m in {HEAVY!r} + ('numpy', 'hypothesis') if m in sys.modules))"
    )
    result = pytester.run(__import__("sys").executable, "-c", code)
    assert result.ret == 0
    assert result.stdout.lines[-1] == "[]"
