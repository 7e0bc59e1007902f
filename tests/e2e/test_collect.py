"""Zero-code parity tests: models declared in pyproject.toml, or one named on the command line,
run as real pytest sessions (ids, options, reports, artifacts, replay, errors, pytest-xdist)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from suite_helpers import checks_by

ZOO = textwrap.dedent(
    """
    from conftest import MLP, Branchy, TwoIn


    def make_mlp(d_out=3):
        return MLP(d_out=d_out).eval()


    def make_branchy():
        return Branchy().eval()


    def make_two():
        return TwoIn().eval()


    def make_failing():
        raise RuntimeError("weights file missing")
    """
)

MODELS = """
[[tool.xframe.models]]
factory = "zoo:make_mlp"
inputs = "x=float32[batch:1..4,6]"
max_examples = 3
atol = 1e-3

[[tool.xframe.models]]
id = "two-in"
factory = "zoo:make_two"
inputs = "left=float32[n:1..3,4]; right=float32[n,3]"
max_examples = 4
rtol = 0.01

[[tool.xframe.models]]
id = "mlp5"
factory = "zoo:make_mlp"
kwargs = {d_out = 5}
inputs = "float32[2,6]"
backends = ["onnxruntime"]
max_examples = 2
"""


@pytest.fixture
def zoo(xf_pytester: pytest.Pytester, shared_cache: Path) -> pytest.Pytester:
    """A model repo: a module of factories on the path; pyproject.toml is written by each test."""
    xf_pytester.makeini(f"[pytest]\naddopts = --xframe-cache-dir={shared_cache} -p no:randomly\npythonpath = .\n")
    xf_pytester.makepyfile(zoo=ZOO)
    return xf_pytester



def test_declared_models_are_collected_one_test_per_backend(zoo: pytest.Pytester) -> None:
    zoo.makefile(".toml", pyproject=MODELS)
    result = zoo.runpytest("--co", "-q")
    assert result.ret == 0
    assert [line for line in result.stdout.lines if line.startswith("pyproject.toml")] == [
        "pyproject.toml::make_mlp[onnxruntime]",
        "pyproject.toml::make_mlp[tensorflow]",
        "pyproject.toml::two-in[onnxruntime]",
        "pyproject.toml::two-in[tensorflow]",
        "pyproject.toml::mlp5[onnxruntime]",
    ]


def test_declaration_outranks_the_ini_file_and_the_command_line_outranks_both(zoo: pytest.Pytester, shared_cache: Path) -> None:
    zoo.makefile(".toml", pyproject=MODELS)
    ini = f"[pytest]\naddopts = --xframe-cache-dir={shared_cache} -p no:randomly\npythonpath = .\nxframe_backends = tensorflow\n"
    zoo.makeini(ini)
    declared = zoo.runpytest("--co", "-q")
    assert [line for line in declared.stdout.lines if line.startswith("pyproject.toml")] == [
        "pyproject.toml::make_mlp[tensorflow]",  # the ini file's backends, where the declaration names none
        "pyproject.toml::two-in[tensorflow]",
        "pyproject.toml::mlp5[onnxruntime]",  # the declaration's
    ]
    cli = zoo.runpytest("--co", "-q", "--xframe-backends=onnxruntime")
    assert [line for line in cli.stdout.lines if line.startswith("pyproject.toml")] == [
        f"pyproject.toml::{i}[onnxruntime]" for i in ("make_mlp", "two-in", "mlp5")
    ]


def test_declared_options_reports_and_junit(zoo: pytest.Pytester) -> None:
    zoo.makefile(".toml", pyproject=MODELS)
    result = zoo.runpytest("--xframe-backends=onnxruntime", "--xframe-report=report.json", "--junitxml=junit.xml", "-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["pyproject.toml::make_mlp?onnxruntime? PASSED*", "pyproject.toml::two-in?onnxruntime? PASSED*", "*xframe: 3 passed*"])
    checks = checks_by(zoo, "test", "backend")
    mlp, two, mlp5 = (checks[(f"pyproject.toml::{i}[onnxruntime]", "onnxruntime")] for i in ("make_mlp", "two-in", "mlp5"))
    assert {o["atol"] for o in mlp["outputs"]} == {1e-3}  # declared atol, default rtol
    assert {o["rtol"] for o in mlp["outputs"]} == {1e-4}
    assert {o["rtol"] for o in two["outputs"]} == {0.01} and len(two["outputs"]) == 3
    assert mlp5["outputs"][0]["shape"][-1] == 5  # kwargs reached the factory
    assert 0 < mlp5["examples"] <= 2 and 0 < mlp["examples"] <= 3
    junit = (zoo.path / "junit.xml").read_text()
    assert 'name="mlp5[onnxruntime]"' in junit and 'name="xframe.onnxruntime.verdict" value="passed"' in junit


def test_failing_declared_model_keeps_artifacts_that_replay(zoo: pytest.Pytester) -> None:
    zoo.makefile(
        ".toml",
        pyproject="""
        [[tool.xframe.models]]
        id = "branchy"
        factory = "zoo:make_branchy"
        inputs = "x=float32[4]"
        exporter = "torchscript"
        backends = "onnxruntime"
        max_examples = 40
        seed = 3
        """,
    )
    result = zoo.runpytest("--xframe-artifacts-dir=kept", "--xframe-report=report.json")
    result.assert_outcomes(failed=1)
    check = checks_by(zoo, "test", "backend")[("pyproject.toml::branchy[onnxruntime]", "onnxruntime")]
    assert check["verdict"] == "failed" and check["onnx"].startswith("torchscript")
    directory = Path(check["artifacts"])
    assert (zoo.path / "kept").resolve() in directory.parents
    assert {"model.onnx", "inputs.npz", "case.json"} <= {p.name for p in directory.iterdir()}
    printed = str(directory.relative_to(zoo.path))
    assert f"replay: python -m pytest_xframe replay {printed}" in result.stdout.str()
    replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", printed], check=False, capture_output=True, text=True, timeout=300, cwd=zoo.path)
    assert replay.returncode == 1 and replay.stdout.rstrip().endswith("verdict: MISMATCH"), replay.stdout + replay.stderr


def test_broken_declarations_are_collection_errors_naming_the_cause(zoo: pytest.Pytester) -> None:
    zoo.makefile(
        ".toml",
        pyproject="""
        [[tool.xframe.models]]
        id = "good"
        factory = "zoo:make_mlp"
        inputs = "x=float32[2,6]"
        backends = ["onnxruntime"]
        max_examples = 2

        [[tool.xframe.models]]
        id = "missing"
        factory = "no_such_pkg.models:make"
        inputs = "x=float32[2]"

        [[tool.xframe.models]]
        id = "typo"
        factory = "zoo:make_mpl"
        inputs = "x=float32[2]"

        [[tool.xframe.models]]
        id = "badtext"
        factory = "zoo:make_mlp"
        inputs = "x=float32[batch:1..4;6]"

        [[tool.xframe.models]]
        id = "badopt"
        factory = "zoo:make_mlp"
        inputs = "x=float32[2,6]"
        atoll = 1e-3

        [[tool.xframe.models]]
        id = "good"
        factory = "zoo:make_two"
        inputs = "left=float32[2,4]; right=float32[2,3]"

        [[tool.xframe.models]]
        id = "raises"
        factory = "zoo:make_failing"
        inputs = "x=float32[2,6]"
        backends = ["onnxruntime"]
        """,
    )
    result = zoo.runpytest("--continue-on-collection-errors")
    result.assert_outcomes(passed=1, failed=1, errors=5)
    result.stdout.fnmatch_lines(
        [
            "cannot import the module of model factory no_such_pkg.models:make in *",
            "  cause: ModuleNotFoundError: No module named 'no_such_pkg'",
            "model factory zoo:make_mpl in * module zoo has no attribute 'make_mpl'",
            "inputs of badtext in *: cannot parse input text at character 21: expected ',' or ']' in the shape, got ';'",
            "    x=float32[batch:1..4;6]",
            "                        ^",
            "unknown xframe option(s) 'atoll' in *",
            "two models have the id 'good': give each its own `id`",
        ],
        consecutive=False,
    )
    result.stdout.fnmatch_lines(["*model factory zoo:make_failing raised RuntimeError: weights file missing*"])
    out = result.stdout.str()
    assert "Traceback" not in out and "no_such_pkg/" not in out
    for node in ("missing", "typo", "badtext", "badopt"):
        assert f"ERROR pyproject.toml::{node}" in out


def test_a_factory_that_raises_shows_its_traceback_with_v(zoo: pytest.Pytester) -> None:
    zoo.makefile(".toml", pyproject='[[tool.xframe.models]]\nid = "raises"\nfactory = "zoo:make_failing"\ninputs = "x=float32[2,6]"\nbackends = ["onnxruntime"]\n')
    quiet = zoo.runpytest()
    quiet.assert_outcomes(failed=1)
    assert "Traceback" not in quiet.stdout.str()
    quiet.stdout.fnmatch_lines(["*model factory zoo:make_failing raised RuntimeError: weights file missing*", "*run with -v for the full*traceback*"])
    verbose = zoo.runpytest("-v")
    verbose.stdout.fnmatch_lines(["full traceback:", "Traceback (most recent call last):", '*zoo.py", line *, in make_failing', "RuntimeError: weights file missing"])


def test_declared_models_under_xdist(zoo: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    zoo.makefile(".toml", pyproject=MODELS)
    result = zoo.runpytest("-n", "2", "--xframe-backends=onnxruntime", "--xframe-report=report.json")
    result.assert_outcomes(passed=3)
    assert {test for test, _ in checks_by(zoo, "test", "backend")} == {f"pyproject.toml::{i}[onnxruntime]" for i in ("make_mlp", "two-in", "mlp5")}


def test_collected_when_named_or_walked_not_from_other_paths(zoo: pytest.Pytester) -> None:
    zoo.makefile(".toml", pyproject=MODELS)
    zoo.mkdir("tests")
    (zoo.path / "tests" / "test_plain.py").write_text("def test_plain():\n    pass\n")
    named = zoo.runpytest("pyproject.toml", "--co", "-q", "--xframe-backends=onnxruntime")
    assert sum(line.startswith("pyproject.toml::") for line in named.stdout.lines) == 3
    assert "test_plain" not in named.stdout.str()
    other = zoo.runpytest("tests", "--co", "-q")
    assert "pyproject.toml" not in other.stdout.str() and "tests/test_plain.py::test_plain" in other.stdout.str()
    ini = (zoo.path / "tox.ini").read_text()
    (zoo.path / "tox.ini").write_text(ini + "testpaths = tests pyproject.toml\n")
    both = zoo.runpytest("--co", "-q", "--xframe-backends=onnxruntime")
    assert "tests/test_plain.py::test_plain" in both.stdout.str() and "pyproject.toml::mlp5[onnxruntime]" in both.stdout.str()


def test_a_model_from_the_command_line(zoo: pytest.Pytester) -> None:
    zoo.makepyfile(test_other="def test_other():\n    assert False\n")
    result = zoo.runpytest(
        "--xframe-model", "zoo:make_mlp", "--xframe-inputs", "x=float32[batch:1..4,6]", "--xframe-backends=onnxruntime",
        "--xframe-max-examples=3", "--xframe-model-option", "atol=0.002", "--xframe-model-option", 'name="tiny"',
        "--xframe-model-option", "kwargs={d_out = 4}", "--xframe-report=report.json", "-v",
    )
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*collected 1 item", "xframe-model::tiny?onnxruntime? PASSED*"])
    check = checks_by(zoo, "test", "backend")[("xframe-model::tiny[onnxruntime]", "onnxruntime")]
    assert check["model"] == "tiny" and check["outputs"][0]["atol"] == 0.002 and check["outputs"][0]["shape"][-1] == 4
    assert "test_other" not in result.stdout.str()
    named = zoo.runpytest("test_other.py", "--co", "-q", "--xframe-model", "zoo:make_mlp", "--xframe-inputs", "x=float32[2,6]", "--xframe-backends=onnxruntime")
    assert named.stdout.lines[:2] == ["xframe-model::make_mlp[onnxruntime]", "test_other.py::test_other"]


def test_a_model_from_the_command_line_under_xdist(zoo: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    result = zoo.runpytest("-n", "2", "--xframe-model", "zoo:make_mlp", "--xframe-inputs", "x=float32[batch:1..4,6]",
                           "--xframe-backends=onnxruntime", "--xframe-max-examples=3", "--xframe-report=report.json")
    result.assert_outcomes(passed=1)
    assert list(checks_by(zoo, "test", "backend")) == [("xframe-model::make_mlp[onnxruntime]", "onnxruntime")]


@pytest.mark.parametrize(
    ("args", "lines"),
    [
        (["--xframe-model", "zoo:make_mlp", "--xframe-inputs", "x=float32[batch:1..4,6"],
         ["ERROR: inputs of make_mlp in --xframe-model: cannot parse input text at character 23: expected ',' or ']' in the shape, the text ended",
          "    x=float32[batch:1..4,6", "                          ^"]),
        (["--xframe-model", "zoo:make_mlp"], ["ERROR: --xframe-model zoo:make_mlp needs --xframe-inputs*"]),
        (["--xframe-inputs", "x=float32[2]"], ["ERROR: --xframe-inputs is given without --xframe-model*"]),
        (["--xframe-model", "zoo", "--xframe-inputs", "x=float32[2]"], ["ERROR: factory must be 'package.module:function', got 'zoo'*"]),
        (["--xframe-model", "nozoo:make", "--xframe-inputs", "x=float32[2]"],
         ["ERROR: cannot import the module of model factory nozoo:make in --xframe-model", "  cause: ModuleNotFoundError: No module named 'nozoo'"]),
        (["--xframe-model", "zoo:make_mlp", "--xframe-inputs", "x=float32[2]", "--xframe-model-option", "atol"],
         ["ERROR: --xframe-model-option expects KEY=VALUE, got 'atol'"]),
        (["--xframe-model", "zoo:make_mlp", "--xframe-inputs", "x=float32[2]", "--xframe-model-option", "exporter=onnx"],
         ["ERROR: unknown exporter 'onnx' in --xframe-model", "  try:   use one of: dynamo, torchscript"]),
    ],
    ids=["bad-text", "no-inputs", "no-model", "no-colon", "no-module", "option-syntax", "option-value"],
)
def test_command_line_mistakes_are_usage_errors(zoo: pytest.Pytester, args: list[str], lines: list[str]) -> None:
    result = zoo.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(lines)
    assert "Traceback" not in result.stderr.str()
