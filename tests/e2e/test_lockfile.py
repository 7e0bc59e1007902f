"""``--xframe-lock`` in real sessions: what moved since the lock, in the header, a failing run's
summary and the JSON report; an unreadable lock is a usage error."""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest


def test_xframe_lock_names_what_moved_in_the_header_the_failing_summary_and_the_json(pytester: pytest.Pytester) -> None:
    pytester.makefile(".txt", lock=f"numpy=={metadata.version('numpy')}\npytest==0.0.1\n")
    pytester.makepyfile("def test_ok():\n    pass\n\ndef test_broken():\n    assert False\n")
    result = pytester.runpytest("--xframe-lock=lock.txt", "--xframe-report=report.json", "-p", "no:randomly")
    result.assert_outcomes(passed=1, failed=1)
    moved = f"xframe: 1 package(s) moved since {pytester.path / 'lock.txt'}: pytest 0.0.1 -> {pytest.__version__}"
    result.stdout.fnmatch_lines([moved, "*xframe stack*", "xframe: this run failed on a stack that is not the tested one: 1 package(s) moved*"])
    document = json.loads((pytester.path / "report.json").read_text())
    assert document["lock"]["moved"] == [{"name": "pytest", "locked": "0.0.1", "installed": pytest.__version__}]
    import jsonschema

    from pytest_xframe.report.json_report import REPORT_SCHEMA

    jsonschema.validate(document, REPORT_SCHEMA)

    # a passing run on a moved stack says so once, in the header; an unchanged stack says that
    pytester.makepyfile("def test_ok():\n    pass\n")
    quiet = pytester.runpytest("--xframe-lock=lock.txt", "-p", "no:randomly")
    assert "xframe stack" not in quiet.stdout.str()
    pytester.makefile(".txt", lock=f"numpy=={metadata.version('numpy')}\n")
    assert re.search(r"xframe: stack as locked in .*lock\.txt", pytester.runpytest("--xframe-lock=lock.txt").stdout.str())


def test_unreadable_lock_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nxframe_lock = locks/missing.txt\n")
    pytester.makepyfile("def test_ok():\n    pass\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: pytest-xframe: cannot read the lock */locks/missing.txt: No such file or directory"])
