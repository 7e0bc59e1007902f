"""Baselines that catch drift: real pytest sessions (pytester) on ONNX Runtime, real exports.

The converter regression is simulated the way one happens: the exported graph carries its weights
at fp16 precision (a branch only ``torch.onnx.export`` takes, switched by XF_DEGRADE), while torch,
the reference, keeps fp32. The error grows about a thousandfold and stays within the tolerance.
"""

from __future__ import annotations

import json
import re
from importlib import metadata

import pytest

MODULE = '''
import os

import pytest
import torch
from torch import nn

from conftest import TwoIn
from pytest_xframe import TensorSpec

DEGRADE = os.environ.get("XF_DEGRADE") == "1"


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        weight = self.fc.weight
        if DEGRADE and torch.onnx.is_in_onnx_export():
            weight = weight.half().float()  # the exported weights lose precision, torch's do not
        return nn.functional.linear(x, weight, self.fc.bias)


ATOL = float(os.environ.get("XF_ATOL", "1e-2"))
pytestmark = pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=4, exporter="torchscript", atol=ATOL, rtol=1e-2)


def test_net(xframe):
    xframe.check(Net().eval(), inputs=[TensorSpec((2, 6))])


def test_two(xframe):
    xframe.check(TwoIn().eval(), inputs=[TensorSpec((2, 4)), TensorSpec((2, 3))])
'''

NET = "test_models.py::test_net[onnxruntime]"
TWO = "test_models.py::test_two[onnxruntime]"


def _glob(text: str) -> str:
    """``text`` as an fnmatch pattern: node ids hold brackets."""
    return re.sub(r"([\[\]])", r"[\1]", text)


def _entries(pytester: pytest.Pytester, name: str = "xframe-baseline.json") -> dict[tuple, dict]:
    doc = json.loads((pytester.path / name).read_text())
    return {(e["test"], e["check"], e["backend"], e["output"]): e for e in doc["entries"]}


def test_update_writes_one_sorted_line_per_entry_and_a_rerun_passes(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(test_models=MODULE)
    result = xf_pytester.runpytest("--xframe-baseline-update")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*= xframe baseline =*", "xframe-baseline.json updated: 4 entries written, 0 stale removed"])
    path = xf_pytester.path / "xframe-baseline.json"
    text = path.read_text()
    doc = json.loads(text)
    assert (doc["schema"], doc["version"]) == ("pytest-xframe/baseline", 1)
    assert doc["environment"]["torch"] == metadata.version("torch")
    assert doc["environment"]["onnxruntime"] == metadata.version("onnxruntime")
    entry_lines = [line.strip().rstrip(",") for line in text.splitlines() if line.strip().startswith('{"test"')]
    assert [json.loads(line) for line in entry_lines] == doc["entries"]  # one line per entry
    keys = [(e["test"], e["check"], e["backend"], e["output"]) for e in doc["entries"]]
    assert keys == sorted(keys) and len(keys) == 4
    assert [k[:3] for k in keys] == [(NET, "Net", "onnxruntime")] + [(TWO, "TwoIn", "onnxruntime")] * 3
    for e in doc["entries"]:
        assert list(e)[:6] == ["test", "check", "backend", "output", "seed", "examples"]
        assert e["examples"] == 4 and isinstance(e["seed"], int)
        for figure in ("max_abs", "max_rel"):
            assert float(f"{e[figure]:.3g}") == e[figure]  # three significant digits
    assert len({e["seed"] for e in doc["entries"] if e["test"] == TWO}) == 1

    rerun = xf_pytester.runpytest()
    rerun.assert_outcomes(passed=2)
    rerun.stdout.fnmatch_lines(["xframe-baseline.json: 2 checks compared, 0 figures drifted, 0 improved, 0 without an entry, 0 stale entries"])
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=2)
    assert path.read_text() == text  # the recorded seed draws the same inputs: an update changes nothing


def test_a_less_accurate_export_fails_on_drift_while_within_tolerance(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_xframe.report.json_report import REPORT_SCHEMA

    xf_pytester.makepyfile(test_models=MODULE)
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=2)
    base = _entries(xf_pytester)[(NET, "Net", "onnxruntime", "output")]

    monkeypatch.setenv("XF_DEGRADE", "1")
    result = xf_pytester.runpytest("--xframe-report=report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_models.py:*: pytest_xframe.DriftError",
            "Net drifted from its baseline on onnxruntime (still within tolerance)",
            "  [[]onnxruntime[]] output 'output': max_abs * -> *, worse by *x* (> drift factor 2)",
            f"  [[]onnxruntime[]] same inputs as the baseline (seed {base['seed']})",
            "*--xframe-baseline-update*",
            "*= xframe baseline =*",
            "xframe-baseline.json: 2 checks compared, * figures drifted, 0 improved, 0 without an entry, 0 stale entries",
            f"  DRIFT {_glob(NET)} [[]onnxruntime[]] output 'output': max_abs *",
        ]
    )
    document = json.loads((xf_pytester.path / "report.json").read_text())
    jsonschema.validate(document, REPORT_SCHEMA)
    net = next(r for r in document["checks"] if r["test"] == NET)
    assert net["verdict"] == "failed" and net["baseline"]["status"] == "drifted"
    assert all(o["ok"] for o in net["outputs"])  # within tolerance: only the baseline caught it
    drift = {d["figure"]: d for d in net["baseline"]["drift"]}
    assert drift["max_abs"]["baseline"] == base["max_abs"]
    assert drift["max_abs"]["new"] == pytest.approx(net["outputs"][0]["max_abs"], rel=1e-2)
    factor = drift["max_abs"]["new"] / max(base["max_abs"], 1e-6)
    assert factor > 2 and drift["max_abs"]["by"].startswith(f"{factor:.3g}x")
    assert f"worse by {drift['max_abs']['by']}" in result.stdout.str()
    assert document["baseline"] == {"path": str(xf_pytester.path / "xframe-baseline.json"), "updated": False, "stale": []}

    # a drift factor wider than the change lets it pass; a seed you set is used, and said to differ
    xf_pytester.runpytest(f"--xframe-drift-factor={factor * 1.5:g}").assert_outcomes(passed=2)
    seeded = xf_pytester.runpytest("--xframe-seed=7", "--xframe-max-examples=5", "--xframe-report=seeded.json")
    seeded.assert_outcomes(passed=1, failed=1)
    seeded.stdout.fnmatch_lines([f"*seed 7 here, {base['seed']} there (a seed you set is never replaced); 5 examples here, 4 there"])
    assert {r["seed"] for r in json.loads((xf_pytester.path / "seeded.json").read_text())["checks"]} == {7}
    hypothesis_seeded = xf_pytester.runpytest("--hypothesis-seed=7")
    hypothesis_seeded.assert_outcomes(passed=1, failed=1)
    hypothesis_seeded.stdout.fnmatch_lines([f"*seed None here, {base['seed']} there*"])


def test_improvement_missing_and_stale_entries_are_reported_not_failed(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    from pytest_xframe.report.json_report import REPORT_SCHEMA

    xf_pytester.makepyfile(test_models=MODULE)
    monkeypatch.setenv("XF_DEGRADE", "1")
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=2)
    monkeypatch.delenv("XF_DEGRADE")
    # test_two is gone, test_three is new
    xf_pytester.makepyfile(
        test_models=MODULE.split("def test_two")[0]
        + "def test_three(xframe):\n    xframe.check(Net().eval(), inputs=[TensorSpec((3, 6))])\n    xframe.check(Net().eval(), inputs=[TensorSpec((5, 6))])\n"
    )
    result = xf_pytester.runpytest("--xframe-report=report.json")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "xframe-baseline.json: 1 checks compared, 0 figures drifted, * improved, 2 without an entry, 3 stale entries",
            f"  improved {_glob(NET)} [[]onnxruntime[]] output 'output': max_abs * -> *",
            "  missing test_models.py::test_three[[]onnxruntime[]] [[]onnxruntime[]] Net",
            "  missing test_models.py::test_three[[]onnxruntime[]] [[]onnxruntime[]] Net#2",
            f"  stale {_glob(TWO)} [[]onnxruntime[]] TwoIn output *: test no longer exists",
            "*reported, not failed*",
        ]
    )
    document = json.loads((xf_pytester.path / "report.json").read_text())
    assert {s["test"] for s in document["baseline"]["stale"]} == {TWO}
    statuses = {(r["test"], r["baseline"]["check"]): r["baseline"]["status"] for r in document["checks"]}
    three = "test_models.py::test_three[onnxruntime]"
    assert statuses == {(NET, "Net"): "checked", (three, "Net"): "missing", (three, "Net#2"): "missing"}

    # the update takes the improvement and the new test, and drops the stale entries
    update = xf_pytester.runpytest("--xframe-baseline-update", "--xframe-report=update.json")
    update.stdout.fnmatch_lines(["xframe-baseline.json updated: 3 entries written, 3 stale removed", f"  removed {_glob(TWO)} *: test no longer exists"])
    assert {k[:2] for k in _entries(xf_pytester)} == {(NET, "Net"), (three, "Net"), (three, "Net#2")}
    jsonschema.validate(json.loads((xf_pytester.path / "update.json").read_text()), REPORT_SCHEMA)


def test_a_partial_run_updates_its_entries_and_keeps_the_others(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    xf_pytester.makepyfile(test_models=MODULE)
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=2)
    before = _entries(xf_pytester)
    monkeypatch.setenv("XF_DEGRADE", "1")
    update = xf_pytester.runpytest("--xframe-baseline-update", "-k", "test_net")
    update.assert_outcomes(passed=1, deselected=1)
    update.stdout.fnmatch_lines(["xframe-baseline.json updated: 1 entries written, 0 stale removed"])
    after = _entries(xf_pytester)
    assert after.keys() == before.keys()
    assert {k: e for k, e in after.items() if k[0] == TWO} == {k: e for k, e in before.items() if k[0] == TWO}
    net = (NET, "Net", "onnxruntime", "output")
    assert after[net]["max_abs"] > 10 * before[net]["max_abs"] and after[net]["seed"] == before[net]["seed"]
    # a check that fails keeps its entries, and the update says so
    monkeypatch.setenv("XF_ATOL", "1e-6")
    failing = xf_pytester.runpytest("--xframe-baseline-update", "--xframe-drift-factor=1e9")
    failing.assert_outcomes(passed=1, failed=1)
    failing.stdout.fnmatch_lines(["xframe-baseline.json updated: 3 entries written, 0 stale removed", f"  not updated (the check did not pass): {_glob(NET)} [[]onnxruntime[]] (failed)"])
    assert _entries(xf_pytester)[net] == after[net]
    monkeypatch.delenv("XF_ATOL")
    # a deselected test is not stale
    check = xf_pytester.runpytest("-k", "test_net")
    check.assert_outcomes(passed=1, deselected=1)
    check.stdout.fnmatch_lines(["xframe-baseline.json: 1 checks compared, 0 figures drifted, 0 improved, 0 without an entry, 0 stale entries"])


def test_update_under_xdist_writes_the_same_file_and_stale_entries_are_found(xf_pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    xf_pytester.makepyfile(test_models=MODULE)
    # both in fresh processes, as a user runs them (an in-process run shares the test session's torch)
    xf_pytester.runpytest_subprocess("--xframe-baseline-update").assert_outcomes(passed=2)
    path = xf_pytester.path / "xframe-baseline.json"
    serial = path.read_text()
    path.unlink()
    result = xf_pytester.runpytest_subprocess("-n", "2", "--xframe-baseline-update")
    result.assert_outcomes(passed=2)
    assert path.read_text() == serial
    # test_two now checks another model: its TwoIn entries are stale (judged on what the workers collected)
    xf_pytester.makepyfile(test_models=MODULE.replace("TwoIn().eval(), inputs=[TensorSpec((2, 4)), TensorSpec((2, 3))]", "Net().eval(), inputs=[TensorSpec((2, 6))]"))
    stale = xf_pytester.runpytest_subprocess("-n", "2")
    stale.assert_outcomes(passed=2)
    stale.stdout.fnmatch_lines(
        [
            "xframe-baseline.json: 1 checks compared, 0 figures drifted, 0 improved, 1 without an entry, 3 stale entries",
            f"  missing {_glob(TWO)} [[]onnxruntime[]] Net",
            f"  stale {_glob(TWO)} [[]onnxruntime[]] TwoIn output 'sum': the test no longer checks TwoIn",
        ]
    )


def test_baseline_location_and_drift_factor_from_pyproject_ini_and_command_line(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    xf_pytester.makepyfile(test_models=MODULE.split("def test_two")[0])
    xf_pytester.makepyprojecttoml('[tool.xframe.baseline]\npath = "baselines/parity.json"\ndrift_factor = 1e6\n')
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=1)
    assert (xf_pytester.path / "baselines" / "parity.json").is_file()
    assert not (xf_pytester.path / "xframe-baseline.json").exists()
    monkeypatch.setenv("XF_DEGRADE", "1")
    xf_pytester.runpytest().assert_outcomes(passed=1)  # within the project's drift factor
    xf_pytester.runpytest("--xframe-drift-factor=2").assert_outcomes(failed=1)  # the command line wins
    other = xf_pytester.runpytest("--xframe-baseline=elsewhere.json")  # no such file: no baseline
    other.assert_outcomes(passed=1)
    assert "xframe baseline" not in other.stdout.str()

    ini = xf_pytester.path / "tox.ini"  # what xf_pytester's makeini wrote
    ini.write_text(ini.read_text().rstrip() + "\nxframe_drift_factor = 1.5\n")
    xf_pytester.runpytest().assert_outcomes(failed=1)  # the ini file over pyproject's table
    lenient = MODULE.split("def test_two")[0].replace("TensorSpec((2, 6))])", "TensorSpec((2, 6))], drift_factor=1e6)")
    xf_pytester.makepyfile(test_models=lenient)
    xf_pytester.runpytest().assert_outcomes(passed=1)  # check() over the ini file
    ini.write_text(ini.read_text().rstrip() + "\nxframe_baseline = from_ini/parity.json\n")
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=1)
    assert (xf_pytester.path / "from_ini" / "parity.json").is_file()  # the ini file over pyproject's table
    xf_pytester.runpytest("--xframe-baseline-update", "--xframe-baseline=cli.json").assert_outcomes(passed=1)
    assert (xf_pytester.path / "cli.json").is_file()  # the command line over both

    bad = xf_pytester.runpytest("--xframe-drift-factor=1")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*--xframe-drift-factor: expected a number > 1, got '1'*"])
    xf_pytester.makepyprojecttoml("[tool.xframe.baseline]\nfactor = 3\n")
    unknown = xf_pytester.runpytest()
    assert unknown.ret == pytest.ExitCode.USAGE_ERROR
    unknown.stderr.fnmatch_lines(["ERROR: unknown key(s) 'factor' in [[]tool.xframe.baseline[]] in pyproject.toml (did you mean 'drift_factor'?)", "*valid keys: path, drift_factor"])


def test_a_broken_baseline_file_is_a_usage_error(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(test_models=MODULE.split("def test_two")[0])
    (xf_pytester.path / "xframe-baseline.json").write_text('{"schema": "pytest-xframe/baseline", "version": 1, "entries": [')
    result = xf_pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: the xframe baseline */xframe-baseline.json is not valid JSON", "*rerun with --xframe-baseline-update"])


def test_options_are_documented(pytester: pytest.Pytester) -> None:
    helptext = pytester.runpytest("--help")
    helptext.stdout.fnmatch_lines(
        ["*--xframe-baseline-update*", "*--xframe-baseline=PATH*", "*--xframe-drift-factor=F*", "*xframe_baseline *", "*xframe_drift_factor *"]
    )
    pytester.runpytest("--markers").stdout.fnmatch_lines(["@pytest.mark.xframe_parity(**options):*drift_factor*"])


def test_a_run_without_parity_checks_writes_and_says_nothing(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("--xframe-baseline-update", "-p", "no:randomly")
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "xframe-baseline.json").exists()
    assert "xframe baseline" not in result.stdout.str()


def test_a_model_declared_in_pyproject_drifts_like_a_test(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """The zero-code route: a model repo declares its models and its baseline in pyproject.toml."""
    xf_pytester.makepyfile(zoo=MODULE.split("ATOL =")[0] + "\n\ndef make_net():\n    return Net().eval()\n")
    xf_pytester.syspathinsert()
    xf_pytester.makepyprojecttoml(
        """
        [tool.xframe.baseline]
        path = "parity-baseline.json"

        [[tool.xframe.models]]
        id = "net"
        factory = "zoo:make_net"
        inputs = "x=float32[batch:1..3,6]"
        backends = ["onnxruntime"]
        exporter = "torchscript"
        max_examples = 4
        atol = 1e-2
        rtol = 1e-2
        """
    )
    xf_pytester.runpytest("--xframe-baseline-update").assert_outcomes(passed=1)
    assert [k[:3] for k in _entries(xf_pytester, "parity-baseline.json")] == [("pyproject.toml::net[onnxruntime]", "Net", "onnxruntime")]
    xf_pytester.runpytest().assert_outcomes(passed=1)
    monkeypatch.setenv("XF_DEGRADE", "1")
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["Net drifted from its baseline on onnxruntime (still within tolerance)", "*max_abs * -> *, worse by *x*"])
