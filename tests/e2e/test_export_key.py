"""``--xframe-export-key`` on the command line, and ``export_key`` under pytest-xdist: runs compared
through the JSON report's ``export_cache_hit`` and export seconds, and the keyed cache's entries."""

from __future__ import annotations

import json

import pytest

from suite_helpers import WIDE, keyed_test, report_checks


def _entries(pytester: pytest.Pytester) -> int:
    return len(list((pytester.path / "cache").glob("onnx-export-keyed/*/*/manifest.json")))


def _run(pytester: pytest.Pytester, *args: str, cache: str = "--xframe-cache-dir=cache") -> dict:
    result = pytester.runpytest(cache, "--xframe-report=report.json", *args)
    result.assert_outcomes(passed=1)
    (check,) = report_checks(pytester)
    if check["export_cache_hit"]:  # the summary's export column says so too
        result.stdout.fnmatch_lines(["*test_keyed.py::test_wide*onnxruntime*passed*cached*"])
    return check


def test_version_on_the_command_line_reuses_the_export(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test(None))
    cold = _run(xf_pytester, "--xframe-export-key=wide-1.0")
    assert not cold["export_cache_hit"] and cold["seconds"]["export"] > 0
    warm = _run(xf_pytester, "--xframe-export-key=wide-1.0")
    assert warm["export_cache_hit"] and warm["seconds"]["export"] == 0.0
    bumped = _run(xf_pytester, "--xframe-export-key=wide-1.1")
    assert not bumped["export_cache_hit"] and bumped["seconds"]["export"] > 0
    assert _entries(xf_pytester) == 2


def test_files_on_the_command_line_are_hashed(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test(None))
    helper = xf_pytester.path / "helper.py"
    helper.write_text("SCALE = 1\n")
    assert not _run(xf_pytester, "--xframe-export-key=@wide.py,helper*.py")["export_cache_hit"]
    assert _run(xf_pytester, "--xframe-export-key=@wide.py,helper*.py")["export_cache_hit"]
    helper.write_text("SCALE = 2\n")  # a named file changed: a new key, a new export
    assert not _run(xf_pytester, "--xframe-export-key=@wide.py,helper*.py")["export_cache_hit"]
    assert _entries(xf_pytester) == 2


def test_command_line_key_overrides_check(xf_pytester: pytest.Pytester) -> None:
    """The command line outranks check()'s export_key, as every other option: a run without the
    flag keys the export by check()'s string, so it does not find the flag's entry."""
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test("'in-code'"))
    assert not _run(xf_pytester, "--xframe-export-key=from-cli")["export_cache_hit"]
    assert not _run(xf_pytester)["export_cache_hit"]
    assert _run(xf_pytester, "--xframe-export-key=from-cli")["export_cache_hit"]
    assert _entries(xf_pytester) == 2


def test_a_model_from_the_command_line_with_a_key(xf_pytester: pytest.Pytester) -> None:
    """Zero test code: --xframe-model with --xframe-export-key, run twice as CI would."""
    xf_pytester.makepyfile(wide=WIDE + "\n\ndef make():\n    return Wide().eval()\n")
    cli = ("--xframe-model", "wide:make", "--xframe-inputs", "x=float32[batch:1..3,32]", "--xframe-backends=onnxruntime",
           "--xframe-max-examples=3", "--xframe-model-option", "exporter=torchscript", "--xframe-export-key=@wide.py")
    for hit in (False, True):
        result = xf_pytester.runpytest("--xframe-cache-dir=cache", "--xframe-report=report.json", *cli)
        result.assert_outcomes(passed=1)
        (check,) = report_checks(xf_pytester)
        assert check["test"] == "xframe-model::make[onnxruntime]" and check["export_cache_hit"] is hit
    assert _entries(xf_pytester) == 1


def test_no_cache_and_cache_clear_drop_keyed_exports(xf_pytester: pytest.Pytester) -> None:
    """--xframe-no-cache reads and writes no keyed export; --cache-clear empties the default cache
    (.pytest_cache/d/xframe), keyed exports included, as it does conversions."""
    xf_pytester.makepyfile(wide=WIDE, test_keyed=keyed_test(None))
    for _ in range(2):
        assert not _run(xf_pytester, "--xframe-export-key=v1", cache="--xframe-no-cache")["export_cache_hit"]
    assert _entries(xf_pytester) == 0
    xf_pytester.makeini("[pytest]\naddopts = -p no:randomly\n")  # the default cache location
    default = "--xframe-export-key=v1"
    assert not _run(xf_pytester, default, cache="--xframe-threads=0")["export_cache_hit"]
    assert list((xf_pytester.path / ".pytest_cache" / "d" / "xframe").glob("onnx-export-keyed/*/*/manifest.json"))
    assert not _run(xf_pytester, default, cache="--cache-clear")["export_cache_hit"]
    assert _run(xf_pytester, default, cache="--xframe-threads=0")["export_cache_hit"]


@pytest.mark.parametrize(("value", "message"), [("@", "expected paths/globs after '@'*"), ("", "expected a version string*")])
def test_a_bad_command_line_key_is_a_usage_error(xf_pytester: pytest.Pytester, value: str, message: str) -> None:
    xf_pytester.makepyfile(test_nothing="def test_nothing():\n    pass\n")
    result = xf_pytester.runpytest(f"--xframe-export-key={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--xframe-export-key: {message}"])


#: two tests checking one model with one export_key, each writing down the xdist worker it ran on
TWO_WORKERS = """
import os
from pathlib import Path

import pytest
from wide import Wide, INPUTS


@pytest.mark.parametrize("which", ["a", "b"])
def test_same_model(xframe, which):
    Path(f"worker-{which}.txt").write_text(os.environ["PYTEST_XDIST_WORKER"])
    xframe.check(Wide().eval(), INPUTS, backends=["onnxruntime"], exporter="torchscript", max_examples=3, export_key="wide-1.0")
"""


def test_xdist_workers_build_one_keyed_export(xf_pytester: pytest.Pytester) -> None:
    """Two workers, one model, one export_key: one export is built into the cache (the other
    worker waits on its lock and reads it), and the next run reuses it on both."""
    pytest.importorskip("xdist")
    xf_pytester.makepyfile(wide=WIDE, test_two=TWO_WORKERS)

    def run() -> list[dict]:
        result = xf_pytester.runpytest("-n", "2", "--xframe-cache-dir=cache", "--xframe-report=report.json")
        result.assert_outcomes(passed=2)
        workers = {(xf_pytester.path / f"worker-{w}.txt").read_text() for w in "ab"}
        assert len(workers) == 2, workers  # the two tests really ran on two workers
        checks = report_checks(xf_pytester)
        assert [c["verdict"] for c in checks] == ["passed", "passed"]
        return checks

    cold = run()
    assert sorted(c["export_cache_hit"] for c in cold) == [False, True]
    assert sum(c["seconds"]["export"] > 0 for c in cold) == 1
    assert _entries(xf_pytester) == 1
    warm = run()
    assert all(c["export_cache_hit"] and c["seconds"]["export"] == 0.0 for c in warm), json.dumps(warm)
    assert _entries(xf_pytester) == 1
