"""Module paths from before the package layout still import, with a DeprecationWarning naming the new one."""

from __future__ import annotations

import importlib
import sys

import pytest

from pytest_xframe._moved import MOVED, new_name


@pytest.mark.parametrize(
    ("old", "attribute"),
    [
        ("pytest_xframe.spec_text", "parse_inputs"),
        ("pytest_xframe.backends.onnxruntime_runner", "make_session"),
        ("pytest_xframe.convert.onnx_tf_compat", "install"),
        ("pytest_xframe.convert.onnx_tf_compat.handlers", "handler_table"),
        ("pytest_xframe.metrics", "snr_db"),
    ],
)
def test_an_old_path_warns_and_reads_the_new_module(old: str, attribute: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in sys.modules if n == old or n.startswith(old + ".")]:
        monkeypatch.delitem(sys.modules, name)
    with pytest.warns(DeprecationWarning, match=rf"{old} moved to {new_name(old)}; import it from there"):
        module = importlib.import_module(old)
    new = importlib.import_module(new_name(old))
    assert getattr(module, attribute) is getattr(new, attribute)


def test_every_new_module_exists() -> None:
    for new in MOVED.values():
        assert importlib.util.find_spec(new) is not None, new


def test_a_name_that_never_existed_is_not_answered() -> None:
    assert new_name("pytest_xframe.engine") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pytest_xframe.no_such_module")
