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


def test_hypothesis_is_imported_past_assertion_rewriting(pytester: pytest.Pytester) -> None:
    """hypothesis's own plugin imports hypothesis at the end of every session (an xdist controller's
    too); under pytest's rewriting, without written bytecode, that import costs 0.5 s instead of 0.07."""
    pytester.makeconftest(
        """
        import sys


        def pytest_unconfigure(config):
            module = sys.modules.get("hypothesis")
            with open("loader.txt", "w") as f:
                f.write(type(module.__loader__).__name__ if module else "absent")
        """
    )
    pytester.makepyfile("def test_plain():\n    assert 1 + 1 == 2\n")
    result = pytester.runpytest_subprocess()
    assert result.ret == 0
    assert (pytester.path / "loader.txt").read_text() == "SourceFileLoader"


def test_a_check_keeps_the_frameworks_out_of_later_collections(xf_pytester: pytest.Pytester) -> None:
    """After a check, torch's and ONNX Runtime's objects are frozen out of the collector (pytest's
    collections at the end and the interpreter's at exit skip them); what tests create is still
    collected."""
    xf_pytester.makepyfile(
        """
        import gc, weakref
        from conftest import MLP
        from pytest_xframe import TensorSpec

        def test_a_check(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))], backends=["onnxruntime"], exporter="torchscript", max_examples=2)

        def test_frameworks_frozen_and_garbage_still_collected():
            import onnxruntime, torch
            walked = {id(o) for o in gc.get_objects()}
            assert id(torch.__dict__) not in walked and id(onnxruntime.__dict__) not in walked
            assert gc.isenabled()

            class Node:
                pass

            a, b = Node(), Node()
            a.peer, b.peer = b, a
            gone = weakref.ref(a)
            del a, b
            gc.collect()
            assert gone() is None
        """
    )
    result = xf_pytester.runpytest_subprocess()
    result.assert_outcomes(passed=2)
