"""Failing cases are kept on disk under safe names."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_xframe.diagnose.artifacts import case_dir, safe_name


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
