"""A backend from outside the package: a conftest registers it through the
``pytest_xframe_register_backends`` hook (or a package through the ``pytest_xframe.backends``
entry-point group), and options, test ids, reports, diagnosis and replay all work for it."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

#: the shared test models, then a backend that runs the ONNX export in onnx's own reference evaluator (numpy)
TOY_CONFTEST = (Path(__file__).parents[1] / "torch_models.py").read_text() + textwrap.dedent(
    '''

    from pytest_xframe.backends import Backend, Prepared


    class ReferenceRunner:
        def __init__(self, path):
            from onnx.reference import ReferenceEvaluator

            self.evaluator = ReferenceEvaluator(str(path))

        def run(self, feeds):
            names = self.evaluator.input_names
            return dict(zip(self.evaluator.output_names, self.evaluator.run(None, {n: feeds[n] for n in names})))


    def prepare(artifact, ctx):
        return Prepared(ReferenceRunner(artifact.path), convert_seconds=0.0, load_seconds=0.0)


    def load_case(case_dir, case):
        return ReferenceRunner(case_dir / "model.onnx")


    def layer_report(prepared, artifact, feeds, workdir):
        return f"onnx-reference layer report: {len(feeds)} input(s) evaluated node by node"


    REFERENCE = Backend(
        name="onnx-reference", prepare=prepare, modules=("onnx",), exports=(("torchscript", 17),),
        load_case=load_case, layer_report=layer_report,
    )


    def pytest_xframe_register_backends(config):
        return [REFERENCE]
    '''
)

TESTS = """
import pytest
from conftest import MLP, Branchy
from pytest_xframe import TensorSpec

@pytest.mark.xframe_parity(backends=["onnx-reference"], max_examples=3)
def test_mlp(xframe):
    xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])

@pytest.mark.xframe_parity(backends=["onnx-reference"], max_examples=40, seed=3)
def test_branchy(xframe):
    xframe.check(Branchy().eval(), inputs=[TensorSpec((4,))])
"""


@pytest.fixture(scope="session")
def toy_frameworks() -> None:
    """Imported once, before pytester snapshots ``sys.modules`` (onnx's extension cannot load twice)."""
    import onnx.reference  # noqa: F401
    import onnxruntime  # noqa: F401
    import torch  # noqa: F401


@pytest.fixture
def toy_project(toy_frameworks: None, pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(TOY_CONFTEST)
    pytester.makeini("[pytest]\naddopts = -p no:randomly --xframe-no-cache\n")
    return pytester


def test_a_conftest_backend_runs_end_to_end_and_replays(toy_project: pytest.Pytester) -> None:
    toy_project.makepyfile(test_toy=TESTS)
    result = toy_project.runpytest("-v", "--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines_random(
        [
            "*test_mlp[[]onnx-reference[]] PASSED*",
            "*test_branchy[[]onnx-reference[]] FAILED*",
            "*[[]onnx-reference[]] diagnosis: the export step introduced the error*",
            "*onnx-reference layer report: 1 input(s) evaluated node by node*",
            "*replay: python -m pytest_xframe replay kept/*",
        ]
    )
    checks = {c["test"].split("::")[1]: c for c in json.loads((toy_project.path / "report.json").read_text())["checks"]}
    assert checks["test_mlp[onnx-reference]"]["verdict"] == "passed"
    failed = checks["test_branchy[onnx-reference]"]
    assert (failed["backend"], failed["verdict"]) == ("onnx-reference", "failed")
    printed = str(Path(failed["artifacts"]).relative_to(toy_project.path))
    replay = subprocess.run(
        [sys.executable, "-m", "pytest_xframe", "replay", printed], capture_output=True, text=True, timeout=300, cwd=toy_project.path, check=False
    )
    assert replay.returncode == 1, replay.stderr
    assert "[onnx-reference]" in replay.stdout and replay.stdout.rstrip().endswith("verdict: MISMATCH")
    assert f"{failed['outputs'][0]['mismatches']} / {failed['outputs'][0]['total']} elements" in replay.stdout


#: a runner whose runtime refuses every input, and that knows what its refusal means; one whose
#: explain() is broken itself
FUSSY = textwrap.dedent(
    """

    class FussyRunner(ReferenceRunner):
        def run(self, feeds):
            raise RuntimeError("kernel 7 refused the input")

        def explain(self, exc):
            return "the fussy runtime refuses every input; check on onnx-reference" if "kernel 7" in str(exc) else None


    class Muddled(FussyRunner):
        def explain(self, exc):
            raise KeyError("explain itself is broken")


    FUSSY = Backend(name="fussy", prepare=lambda a, ctx: Prepared(FussyRunner(a.path), 0.0, 0.0), modules=("onnx",), exports=(("torchscript", 17),))
    MUDDLED = Backend(name="muddled", prepare=lambda a, ctx: Prepared(Muddled(a.path), 0.0, 0.0), modules=("onnx",), exports=(("torchscript", 17),))


    def pytest_xframe_register_backends(config):
        return [REFERENCE, FUSSY, MUDDLED]
    """
)


def test_a_runner_says_what_its_runtimes_error_means(toy_project: pytest.Pytester) -> None:
    toy_project.makeconftest(TOY_CONFTEST + FUSSY)
    toy_project.makepyfile(
        test_fussy="""
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(backends=["fussy", "muddled"], max_examples=3)
        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
        """
    )
    result = toy_project.runpytest()
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "fussy raised while running the converted model (*) (model MLP, backend fussy)",
            "  cause: RuntimeError: kernel 7 refused the input",
            "  input: Feeds(x=float32[[]2, 6[]]*",
            "  try:   the fussy runtime refuses every input; check on onnx-reference; run with -v for the full error",
        ]
    )
    # an explain() that raises leaves the crash as it was, with the usual advice
    result.stdout.fnmatch_lines(
        [
            "muddled raised while running the converted model (*) (model MLP, backend muddled)",
            "  cause: RuntimeError: kernel 7 refused the input",
            "  input: *",
            "  try:   the converted model may not support these shapes or values; run with -v for the full error",
        ]
    )
    assert "explain itself is broken" not in result.stdout.str()


def test_the_command_line_knows_a_registered_backend(toy_project: pytest.Pytester) -> None:
    toy_project.makepyfile(
        test_cli="""
        from conftest import MLP
        from pytest_xframe import TensorSpec

        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))], max_examples=2)
        """
    )
    result = toy_project.runpytest("--xframe-backends=onnx-reference", "--xframe-report=report.json")
    result.assert_outcomes(passed=1)
    assert [c["backend"] for c in json.loads((toy_project.path / "report.json").read_text())["checks"]] == ["onnx-reference"]
    bad = toy_project.runpytest("--xframe-backends=onnx-referense")
    assert bad.ret == pytest.ExitCode.USAGE_ERROR
    bad.stderr.fnmatch_lines(["*unknown backend(s) 'onnx-referense' in --xframe-backends*", "*valid backends: *, onnx-reference*"])


def test_a_name_registered_twice_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        from dataclasses import replace
        from pytest_xframe import backends

        def pytest_xframe_register_backends(config):
            return [replace(backends.get("onnxruntime"), name="tensorflow")]
        """
    )
    pytester.makepyfile("def test_plain():\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*backend 'tensorflow' from a pytest_xframe_register_backends hook is already registered*"])


def test_an_entry_point_backend_is_known_by_name(pytester: pytest.Pytester) -> None:
    """A package's ``pytest_xframe.backends`` entry point: named without being imported, loaded on use."""
    site = pytester.mkdir("site")
    (site / "toy_ep.py").write_text(
        "from pytest_xframe.backends import Backend, get\n"
        "BACKEND = Backend(name='toy-ep', prepare=get('onnxruntime').prepare, modules=('onnxruntime',))\n"
    )
    info = site / "toy_ep-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-ep\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[pytest_xframe.backends]\ntoy-ep = toy_ep:BACKEND\n")
    code = (
        "import sys; from pytest_xframe import backends; known = backends.registry(); "
        "print('toy-ep' in known.names(), 'toy_ep' in sys.modules, known.get('toy-ep').name, known.get('toy-ep').missing())"
    )
    result = pytester.run(sys.executable, "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {code}")
    assert result.ret == 0, result.stderr.str()
    assert result.stdout.lines[-1] == "True False toy-ep None"


def test_backends_are_known_by_name_before_their_modules_are_imported(pytester: pytest.Pytester) -> None:
    """The registry names the built-ins (options are checked against it at start-up) and imports
    a backend's module only when the backend is used."""
    code = (
        "import sys; from pytest_xframe import backends; names = backends.registry().names(); "
        "print(names == tuple(backends.BUILTIN), any(m.startswith('pytest_xframe.backends.') for m in sys.modules), "
        "backends.get('tflite').name, 'pytest_xframe.backends.tflite.runner' in sys.modules)"
    )
    result = pytester.run(sys.executable, "-c", code)
    assert result.ret == 0
    assert result.stdout.lines[-1] == "True False tflite True"
