"""Fault injection and bad input: every case ends in one short XframeError of the right kind (or
passes, where it must), the model is unchanged afterwards, the session and the report survive.

The cases are rows of ``reliability_cases.CASES``; one inner pytest session runs them all through
the ``xframe`` fixture (ONNX Runtime only, 3 examples), letting each error reach pytest as a user
would see it, and a conftest hook records each failure's text and whether the model changed.
Every inner session runs in its own process: an in-process run that exports with dynamo would
drop torch's operator libraries from ``sys.modules`` and break later tests that import them again.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import reliability_cases
from reliability_cases import ALL_CASES, BY_ID, CASES

#: a failure's text must fit on one screen
SCREEN_LINES = 25
#: a mismatch report carries more by design (figures, diagnosis, artifacts, replay) and, under CI=true,
#: hypothesis's ci profile adds its reproduce_failure blob: still one 40-line terminal screen
REPORT_LINES = 40

INNER_TEST = textwrap.dedent(
    """
    import pytest
    from reliability_cases import CASES, ORT

    @pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
    def test_case(xframe, case, watch):
        model = watch(case.model())
        xframe.check(model, case.inputs(), **{**ORT, **case.options})

    def test_zz_the_session_goes_on(xframe):
        from conftest import MLP
        from pytest_xframe import TensorSpec
        xframe.check(MLP().eval(), [TensorSpec((2, 6))], backends=["onnxruntime"], max_examples=3)
    """
)

#: records, per test, whether its model changed and the failure's text (what pytest printed)
INNER_HOOKS = textwrap.dedent(
    """
    import json, pytest, torch

    RESULTS = {}

    def _state(model):
        if not isinstance(model, torch.nn.Module):
            return None
        tensors = {k: v.detach().clone() for k, v in model.state_dict().items()}
        plain = {(n, k): v for n, m in model.named_modules() for k, v in vars(m).items() if isinstance(v, (int, float, bool, str))}
        return tensors, plain, [m.training for m in model.modules()]

    def _same(a, b):
        if a is None or b is None:
            return a is b
        (ta, pa, ma), (tb, pb, mb) = a, b
        same_tensors = ta.keys() == tb.keys() and all(v.is_meta or torch.equal(v, tb[k]) for k, v in ta.items())
        return same_tensors and pa == pb and ma == mb

    @pytest.fixture
    def watch(request):
        seen = []
        def record(model):
            seen.append((model, _state(model)))
            return model
        yield record
        for model, before in seen:
            RESULTS.setdefault(request.node.nodeid, {})["unchanged"] = _same(before, _state(model))

    def pytest_runtest_logreport(report):
        if report.failed:
            RESULTS.setdefault(report.nodeid, {})["text"] = report.longreprtext
        if report.when == "call":
            RESULTS.setdefault(report.nodeid, {})["outcome"] = report.outcome

    from pytest_xframe.backends import Backend, Prepared


    class ResourceExhaustedError(Exception):
        pass  # what TensorFlow raises when an allocation fails, named as TF names it


    class FaultyRunner:
        # a backend runner with an injected fault, on the ONNX export run by onnxruntime

        def __init__(self, path, fault):
            import onnxruntime

            self.session, self.fault = onnxruntime.InferenceSession(str(path)), fault

        def run(self, feeds):
            got = dict(zip([o.name for o in self.session.get_outputs()], self.session.run(None, dict(feeds))))
            if self.fault == "oom":
                raise MemoryError
            if self.fault == "tf-oom":
                raise ResourceExhaustedError("OOM when allocating tensor with shape[1000000,1000000]")
            if self.fault == "crash":
                raise ValueError("kernel not implemented for this shape" + chr(10) + ("  frame" + chr(10)) * 200)
            if self.fault == "no-outputs":
                return {}
            if self.fault == "nan":
                return {k: v * float("nan") for k, v in got.items()}
            if self.fault == "wrong-shape":
                return {k: v.reshape(-1)[:1] for k, v in got.items()}
            return got


    def _faulty(fault):
        def prepare(artifact, ctx):
            if fault == "prepare":
                raise RuntimeError("converter bug: unexpected node")
            return Prepared(FaultyRunner(artifact.path, fault), convert_seconds=0.0, load_seconds=0.0)
        return Backend(name=f"fault-{fault}", prepare=prepare, modules=("onnxruntime",), exports=(("torchscript", 17),))


    def pytest_xframe_register_backends(config):
        return [_faulty(f) for f in ("prepare", "oom", "tf-oom", "crash", "no-outputs", "nan", "wrong-shape")]


    def pytest_sessionfinish(session):
        with open("results.json", "w") as f:
            json.dump(RESULTS, f)
    """
)


def make_project(root: Path, cache: Path, test: str) -> Path:
    """A project like a user's: the tiny models, the cases, the recording hooks, ``test``."""
    from conftest import INNER_CONFTEST

    root.mkdir(parents=True, exist_ok=True)
    (root / "conftest.py").write_text(INNER_CONFTEST + INNER_HOOKS)
    shutil.copy(reliability_cases.__file__, root / "reliability_cases.py")
    (root / "pytest.ini").write_text(f"[pytest]\naddopts = --xframe-cache-dir={cache} -p no:randomly -p no:cacheprovider\n")
    (root / "test_inner.py").write_text(test)
    return root


def run_pytest(root: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """A real pytest session in its own process, as a user's CI runs it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", *args], cwd=root, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def case_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> dict:
    """One inner session over every case: per-test results, the JSON report, the terminal output."""
    root = make_project(tmp_path_factory.mktemp("cases"), shared_cache, INNER_TEST)
    proc = run_pytest(root, "--xframe-report=report.json", "-rA", "-W", "always")
    assert (root / "results.json").exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return {
        "results": json.loads((root / "results.json").read_text()),
        "report": json.loads((root / "report.json").read_text()),
        "stdout": proc.stdout,
        "returncode": proc.returncode,
    }


@pytest.mark.parametrize("case_id", list(BY_ID))
def test_case_ends_in_its_error_one_screen_long_and_leaves_the_model_unchanged(case_run: dict, case_id: str) -> None:
    case = BY_ID[case_id]
    got = case_run["results"][f"test_inner.py::test_case[{case_id}]"]
    assert got.get("unchanged", True), f"{case_id}: the model was changed by the check"
    if case.kind == "passed":
        assert got["outcome"] == "passed", got.get("text", "")
        return
    text = got.get("text", "")
    assert got["outcome"] == "failed", f"{case_id} did not fail"
    assert f"pytest_xframe.{case.kind}" in text.splitlines()[0], text
    assert case.says in text, text
    limit = REPORT_LINES if case.kind == "ParityError" else SCREEN_LINES
    assert len(text.splitlines()) <= limit, f"{case_id}: {len(text.splitlines())} lines\n{text}"
    assert "Traceback" not in text, text


def test_the_session_survives_and_the_report_has_every_check(case_run: dict) -> None:
    results = case_run["results"]
    assert results["test_inner.py::test_zz_the_session_goes_on"]["outcome"] == "passed"
    assert "INTERNALERROR" not in case_run["stdout"]
    assert case_run["returncode"] == 1  # tests failed, nothing crashed
    checks = {c["test"]: c for c in case_run["report"]["checks"]}
    for case in CASES:
        check = checks.get(f"test_inner.py::test_case[{case.id}]")
        if case.spec_refuses:  # TensorSpec/Dim refused itself in the test's code: no check ran
            assert check is None
            continue
        assert check is not None, f"{case.id}: no check in the JSON report"
        assert check["verdict"] == {"passed": "passed", "ParityError": "failed"}.get(case.kind, "error"), (case.id, check)
        assert check["message"] or case.kind == "passed", (case.id, check)
    assert all(c["verdict"] != "pending" for c in case_run["report"]["checks"])
    assert "pending" not in case_run["stdout"]


def test_a_forward_that_writes_its_state_is_restored_and_named_in_a_warning(case_run: dict) -> None:
    assert "ModelStateWarning: Counter.forward changes the model's own state (buffer n, attribute calls); xframe restored it" in case_run["stdout"]
    assert "ModelStateWarning: ParamWriter.forward changes the model's own state (parameter momentum); xframe restored it" in case_run["stdout"]


def test_parameters_over_the_snapshot_budget_are_reported_not_restored(tmp_path: Path, shared_cache: Path) -> None:
    """A large model's weights are not copied; a parameter its forward writes is then named as not restored."""
    root = make_project(
        tmp_path,
        shared_cache,
        textwrap.dedent(
            """
            import pytest_xframe.check.model_state
            from pytest_xframe import TensorSpec
            from reliability_cases import ParamWriter

            def test_writer(xframe):
                pytest_xframe.check.model_state.PARAMETER_SNAPSHOT_BYTES = 0  # as for a model over the budget
                model = ParamWriter().eval()
                buffers_before = model.lin.weight.clone()
                xframe.check(model, [TensorSpec((3,))], backends=["onnxruntime"], max_examples=3)
                assert float(model.momentum[0]) > 0  # written by forward, not restored
                assert bool((model.lin.weight == buffers_before).all())
            """
        ),
    )
    proc = run_pytest(root, "-W", "always")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "xframe could not restore parameter momentum (parameters over 0 bytes are not copied)" in proc.stdout


def test_the_cases_cover_the_issue(case_run: dict) -> None:
    """The docs' reliability page states how many bad inputs and faults are tested: keep it honest."""
    page = (Path(__file__).parents[2] / "docs" / "reliability.md").read_text()
    failing = sum(c.kind != "passed" for c in ALL_CASES)  # on a stack with every exporter
    assert f"{failing} bad inputs and injected faults" in page
    assert f"{len(ALL_CASES) - failing} awkward models" in page


def test_the_summary_counts_every_check(case_run: dict) -> None:
    """One line per check in the table's headline: a check refused for its options counts once per
    backend it would have run (the defaults: onnxruntime and tensorflow)."""
    verdicts = [c["verdict"] for c in case_run["report"]["checks"]]
    headline = f"xframe: {verdicts.count('passed')} passed, {verdicts.count('failed')} failed, {verdicts.count('error')} error"
    assert headline in case_run["stdout"]
    assert verdicts.count("passed") == sum(c.kind == "passed" for c in CASES) + 1
    assert verdicts.count("error") >= sum(c.kind not in ("passed", "ParityError") and not c.spec_refuses for c in CASES)


#: the TorchScript exporter freezes float(x.sum()) at the example's value: every input mismatches
FAILING_TEST = textwrap.dedent(
    """
    from torch import nn
    from pytest_xframe import TensorSpec

    class Frozen(nn.Module):
        def forward(self, x):
            return x + float(x.sum())

    def test_frozen(xframe):
        xframe.check(Frozen().eval(), [TensorSpec((3,))], backends=["onnxruntime"], exporter="torchscript", max_examples=5)
    """
)


def test_an_unusable_cache_dir_warns_and_the_run_goes_on_without_it(xf_pytester: pytest.Pytester) -> None:
    blocker = xf_pytester.path / "not-a-dir"
    blocker.write_text("a file where the cache should be")
    xf_pytester.makepyfile(
        """
        from conftest import MLP
        from pytest_xframe import TensorSpec

        def test_mlp(xframe):
            xframe.check(MLP().eval(), [TensorSpec((2, 6))], backends=["tensorflow"], max_examples=3)
        """
    )
    result = xf_pytester.runpytest_subprocess(f"--xframe-cache-dir={blocker}/cache")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*StorageWarning: xframe cache: */not-a-dir/cache cannot be used (*); this run converts without a cache"])
    assert blocker.read_text() == "a file where the cache should be"


def test_an_unusable_artifacts_dir_warns_and_the_parity_error_stays_the_failure(xf_pytester: pytest.Pytester) -> None:
    blocker = xf_pytester.path / "artifacts"
    blocker.write_text("a file where the artifacts should go")
    xf_pytester.makepyfile(FAILING_TEST)
    result = xf_pytester.runpytest_subprocess(f"--xframe-artifacts-dir={blocker}", "--xframe-report=report.json")
    result.assert_outcomes(failed=1)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(["*pytest_xframe.ParityError", "Frozen: outputs differ from torch on onnxruntime", "*artifacts: not kept (*could not be written; see the warning)"])
    result.stdout.fnmatch_lines(["*StorageWarning: xframe: could not keep artifacts in *"])
    assert "During handling" not in text and "NotADirectoryError:" not in text.split("warnings summary")[0]
    check = json.loads((xf_pytester.path / "report.json").read_text())["checks"][0]
    assert (check["verdict"], check["artifacts"]) == ("failed", None)


@pytest.fixture(scope="module")
def saved_case(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Path:
    """A real failing case directory, kept by a session."""
    root = make_project(tmp_path_factory.mktemp("replay"), shared_cache, FAILING_TEST)
    proc = run_pytest(root, "--xframe-artifacts-dir=art")
    assert proc.returncode == 1, proc.stdout[-2000:]
    (case,) = [p.parent for p in (root / "art").rglob("case.json")]
    return case


def _damage(case: Path, how: str) -> Path:
    if how == "missing-dir":
        shutil.rmtree(case)
    elif how == "garbage-case-json":
        (case / "case.json").write_text("{not json")
    elif how == "case-json-without-fields":
        (case / "case.json").write_text('{"version": 1}')
    elif how == "no-inputs":
        (case / "inputs.npz").unlink()
    elif how == "truncated-reference":
        data = (case / "reference.npz").read_bytes()
        (case / "reference.npz").write_bytes(data[: len(data) // 2])
    elif how == "garbage-model":
        (case / "model.onnx").write_bytes(b"\x00garbage")
    elif how == "no-model":
        (case / "model.onnx").unlink()
    return case


def _replay(case: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(case)], capture_output=True, text=True, timeout=300, check=False)


def test_replay_of_an_intact_case_reports_the_mismatch(saved_case: Path) -> None:
    proc = _replay(saved_case)
    assert proc.returncode == 1, proc.stderr
    assert "verdict: MISMATCH" in proc.stdout


@pytest.mark.parametrize("how", ["missing-dir", "garbage-case-json", "case-json-without-fields", "no-inputs", "truncated-reference", "garbage-model", "no-model"])
def test_replay_of_a_damaged_case_says_what_is_wrong_in_one_line_and_exits_2(saved_case: Path, tmp_path: Path, how: str) -> None:
    copy = shutil.copytree(saved_case, tmp_path / "case")
    proc = _replay(_damage(copy, how))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: "), proc.stderr
    assert "Traceback" not in proc.stderr


def test_keyboard_interrupt_in_forward_stops_the_session_and_the_model_is_restored(tmp_path: Path, shared_cache: Path) -> None:
    root = make_project(
        tmp_path,
        shared_cache,
        textwrap.dedent(
            """
            import torch
            from torch import nn
            from pytest_xframe import TensorSpec

            class Interrupted(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.register_buffer("n", torch.zeros(()))

                def forward(self, x):
                    self.n.add_(1)
                    raise KeyboardInterrupt

            def test_interrupted(xframe):
                model = Interrupted().eval()
                try:
                    xframe.check(model, [TensorSpec((3,))], backends=["onnxruntime"], max_examples=3)
                finally:
                    open("restored.txt", "w").write(str(float(model.n)))

            def test_never_runs():
                pass
            """
        ),
    )
    proc = run_pytest(root)
    assert proc.returncode == 2, proc.stdout[-2000:]  # pytest's "interrupted"
    assert "KeyboardInterrupt" in proc.stdout and "1 passed" not in proc.stdout
    assert (root / "restored.txt").read_text() == "0.0"


SIZED_TEST = textwrap.dedent(
    """
    import pytest
    from conftest import MLP
    from pytest_xframe import TensorSpec

    def test_big(xframe):  # 64 x 6 float32 = 1536 bytes
        xframe.check(MLP().eval(), [TensorSpec((64, 6))], backends=["onnxruntime"], max_examples=3)

    @pytest.mark.xframe_parity(max_input_bytes=4096, backends=["onnxruntime"], max_examples=3)
    def test_marker_allows_more(xframe):
        xframe.check(MLP().eval(), [TensorSpec((64, 6))])
    """
)


@pytest.mark.parametrize(
    ("how", "args", "ini"),
    [("command line", ["--xframe-max-input-bytes=1000"], ""), ("ini", [], "xframe_max_input_bytes = 1000")],
)
def test_the_input_size_bound_is_set_by_ini_or_command_line(xf_pytester: pytest.Pytester, shared_cache: Path, how: str, args: list, ini: str) -> None:
    xf_pytester.makeini(f"[pytest]\naddopts = --xframe-cache-dir={shared_cache} -p no:randomly\n{ini}\n")
    xf_pytester.makepyfile(SIZED_TEST)
    result = xf_pytester.runpytest_subprocess(*args)
    # the command line overrides the marker, the ini file does not
    result.assert_outcomes(failed=2 if how == "command line" else 1, passed=0 if how == "command line" else 1)
    result.stdout.fnmatch_lines(["*pytest_xframe.SpecError", "the inputs can reach 1.5 KiB (1536 bytes) per example, over the limit of 1000 bytes (model MLP)"])


@pytest.mark.parametrize("value", ["abc", "0", "-5"])
def test_a_bad_input_size_bound_on_the_command_line_is_a_usage_error(xf_pytester: pytest.Pytester, value: str) -> None:
    xf_pytester.makepyfile("def test_nothing(): pass")
    result = xf_pytester.runpytest_subprocess(f"--xframe-max-input-bytes={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--xframe-max-input-bytes: expected an integer*"])
