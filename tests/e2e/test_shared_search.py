"""check/search.py in real sessions: the marker's items of one test share a draw of inputs, so torch
runs once on each of them, and each backend still searches on its own; whichever backend runs first,
on whichever pytest-xdist worker."""

from __future__ import annotations

import json
import textwrap
from collections import defaultdict
from pathlib import Path

import pytest

from pytest_xframe.check.search import Sharing, split
from suite_helpers import failure_sections, report_checks

#: backends built on ONNX Runtime (a real conversion route each): ``recorder`` notes every input it
#: runs, ``faulty`` adds an error to its outputs where batch >= 2 and an input value exceeds 0.5 (a
#: conversion bug of its own, which the other backends do not share), ``skew1`` and ``skew2`` add an
#: error well within tolerance that varies with the input, each its own way (so each one's
#: targeting climbs elsewhere)
BACKENDS = textwrap.dedent(
    '''

    import json, math, os
    from pytest_xframe.backends import Backend, Prepared, get
    from pytest_xframe.identity import feeds_digest


    def _ort(artifact, ctx):
        return get("onnxruntime").prepare(artifact, ctx).runner


    class Recorder:
        def __init__(self, runner, name):
            self.runner, self.name = runner, name

        def run(self, feeds):
            with open(os.environ["XF_INPUTS"], "a") as out:
                out.write(json.dumps([os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0], feeds_digest(feeds).hex()]) + "\\n")
            return self.runner.run(feeds)


    class Faulty:
        def __init__(self, runner):
            self.runner = runner

        def run(self, feeds):
            out = self.runner.run(feeds)
            x = feeds["x"]
            if x.shape[0] >= 2 and float(x.max()) > 0.5:
                out = {k: v + 0.1 for k, v in out.items()}
            return out


    class Skewed:
        def __init__(self, runner, k):
            self.runner, self.k = runner, k

        def run(self, feeds):
            shift = 1e-6 * (1.0 + math.cos(self.k * float(feeds["x"].sum())))
            return {k: v + shift for k, v in self.runner.run(feeds).items()}


    def _skewed(k):
        return Backend(name=f"skew{k}", prepare=lambda a, ctx: Prepared(Skewed(_ort(a, ctx), k), 0.0, 0.0), modules=("onnxruntime",))


    def pytest_xframe_register_backends(config):
        return [_skewed(1), _skewed(2),
            Backend(name="recorder", prepare=lambda a, ctx: Prepared(Recorder(_ort(a, ctx), "recorder"), 0.0, 0.0), modules=("onnxruntime",)),
            Backend(name="recorder2", prepare=lambda a, ctx: Prepared(Recorder(_ort(a, ctx), "recorder2"), 0.0, 0.0), modules=("onnxruntime",)),
            Backend(name="faulty", prepare=lambda a, ctx: Prepared(Faulty(_ort(a, ctx)), 0.0, 0.0), modules=("onnxruntime",)),
        ]
    '''
)

#: each check notes how often torch ran (forward calls outside the export's tracing) and how many
#: inputs its backend judged
TESTS = textwrap.dedent(
    """
    import json, os
    import pytest, torch
    from torch import nn
    from pytest_xframe import TensorSpec, Dim

    class Counted(nn.Module):
        calls = 0

        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            if not torch.jit.is_tracing():
                Counted.calls += 1
            return self.fc(x).tanh()

    SPEC = [TensorSpec((Dim("batch", 1, 3), 6))]
    MODEL = Counted().eval()

    def counted(xframe, request):
        before = Counted.calls
        report = xframe.check(MODEL, inputs=SPEC)
        with open(os.environ["XF_COUNTS"], "a") as out:
            out.write(json.dumps({"test": request.node.originalname, "backend": xframe.backend, "torch": Counted.calls - before,
                                  "examples": report.backends[xframe.backend].examples, "worker": os.environ.get("PYTEST_XDIST_WORKER", "")}) + "\\n")

    OPTIONS = dict(max_examples=20, exporter="torchscript", opset=13)

    @pytest.mark.xframe_parity(backends=["onnxruntime"], **OPTIONS)
    def test_one(xframe, request):
        counted(xframe, request)

    @pytest.mark.xframe_parity(backends=["onnxruntime", "recorder"], **OPTIONS)
    def test_two(xframe, request):
        counted(xframe, request)

    @pytest.mark.xframe_parity(backends=["onnxruntime", "tensorflow", "recorder"], **OPTIONS)
    def test_three(xframe, request):
        counted(xframe, request)

    @pytest.mark.xframe_parity(backends=["recorder", "skew1", "tensorflow", "skew2", "recorder2"], **OPTIONS)
    def test_five(xframe, request):
        counted(xframe, request)

    @pytest.mark.xframe_parity(backends=["recorder", "onnxruntime"], **OPTIONS)
    def test_two_checks(xframe, request):
        counted(xframe, request)
        counted(xframe, request)
    """
)

FAULTY = textwrap.dedent(
    """
    import pytest
    from conftest import MLP
    from pytest_xframe import TensorSpec, Dim

    SPEC = [TensorSpec((Dim("batch", 1, 4), 6))]

    @pytest.mark.xframe_parity(backends=["onnxruntime", "faulty"], max_examples=20, exporter="torchscript", opset=13)
    def test_faulty_second(xframe):
        xframe.check(MLP().eval(), inputs=SPEC)

    @pytest.mark.xframe_parity(backends=["faulty", "onnxruntime"], max_examples=20, exporter="torchscript", opset=13)
    def test_faulty_first(xframe):
        xframe.check(MLP().eval(), inputs=SPEC)
    """
)


@pytest.fixture
def project(xf_pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    xf_pytester.makeconftest((Path(__file__).parents[1] / "torch_models.py").read_text() + BACKENDS)
    monkeypatch.setenv("XF_COUNTS", str(xf_pytester.path / "counts.jsonl"))
    monkeypatch.setenv("XF_INPUTS", str(xf_pytester.path / "inputs.jsonl"))
    return xf_pytester


def _lines(path: Path) -> list:
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    path.unlink(missing_ok=True)
    return lines


def _inputs(project: pytest.Pytester) -> dict[str, list[str]]:
    """The inputs ``recorder`` ran, in order, per test item."""
    seen: dict[str, list[str]] = defaultdict(list)
    for test, digest in _lines(project.path / "inputs.jsonl"):
        seen[test.split("::")[-1]].append(digest)
    return dict(seen)


BACKENDS_OF = {"test_one": 1, "test_two": 2, "test_three": 3, "test_five": 5, "test_two_checks": 2}


def _plans(backends: int, examples: int = 20) -> list:
    return [split(examples, Sharing(backends, position)) for position in range(backends)]


def _bound(backends: int, examples: int = 20) -> int:
    """The torch runs a test's items may make between them on one worker: the shared draw, each
    backend's own search, and the export example run twice (once per worker and model)."""
    plans = _plans(backends, examples)
    return 2 + (examples if plans[0] is None else plans[0].drawn + sum(p.own for p in plans))


def test_the_backends_of_a_marked_test_run_torch_once_on_their_shared_draw(project: pytest.Pytester) -> None:
    project.makepyfile(test_counted=TESTS)
    from hypothesis import core

    forced = core.global_force_seed  # hypothesis's plugin sets it and leaves it set, in this process too
    try:
        project.runpytest("--hypothesis-seed=1").assert_outcomes(passed=13)
    finally:
        core.global_force_seed = forced
    torch_runs: dict[str, int] = defaultdict(int)
    for line in _lines(project.path / "counts.jsonl"):
        torch_runs[line["test"]] += line["torch"]
        fewest = min(20 if plan is None else plan.shared for plan in _plans(BACKENDS_OF[line["test"]]))
        assert fewest <= line["examples"] <= 20, line  # each backend judges ~max_examples inputs
    assert torch_runs["test_one"] <= _bound(1)
    assert torch_runs["test_two"] <= _bound(2) and torch_runs["test_three"] <= _bound(3), dict(torch_runs)
    # one backend's 20 inputs, 10% more for the others' own searches (the +2 is the export example),
    # with 3 backends and with 5 that each steer their own way
    assert torch_runs["test_three"] <= 1.1 * 20 + 2 and torch_runs["test_five"] <= 1.1 * 20 + 2, dict(torch_runs)
    assert torch_runs["test_two_checks"] <= 2 * _bound(2), dict(torch_runs)  # each check() draws its own
    # 5 backends at 20 examples: the first in the list searches one input of its own after 19 of the
    # shared draw; the last judges the whole draw of 20, the same inputs and one more
    inputs = _inputs(project)
    first, last = inputs["test_five[recorder]"], inputs["test_five[recorder2]"]
    assert len(last) == 20 and first[:19] == last[:19] and 19 <= len(first) <= 20, (first, last)


def test_each_backend_draws_the_same_inputs_whichever_runs_first(project: pytest.Pytester) -> None:
    """The marker's order decides which backend runs first; a backend's inputs do not depend on it."""
    from hypothesis import core

    inputs = []
    for order in (["recorder", "onnxruntime"], ["onnxruntime", "recorder"]):
        project.makepyfile(
            test_order=f"""
            import pytest
            from conftest import MLP
            from pytest_xframe import TensorSpec, Dim

            @pytest.mark.xframe_parity(backends={order!r}, max_examples=20, exporter="torchscript", opset=13)
            def test_mlp(xframe):
                xframe.check(MLP().eval(), inputs=[TensorSpec((Dim("batch", 1, 4), 6))])
            """
        )
        forced = core.global_force_seed
        try:
            project.runpytest("--hypothesis-seed=4", "-v").stdout.fnmatch_lines([f"*test_mlp[[]{order[0]}[]] PASSED*", f"*test_mlp[[]{order[1]}[]] PASSED*"])
        finally:
            core.global_force_seed = forced
        inputs.append(_inputs(project)["test_mlp[recorder]"])
    assert len(inputs[0]) >= split(20, Sharing(2, 0)).shared and inputs[0] == inputs[1]


def _faulty_failures(project: pytest.Pytester, result: pytest.RunResult) -> None:
    verdicts = {(c["test"].split("::")[-1].split("[")[0], c["backend"]): c["verdict"] for c in report_checks(project)}
    assert {k: v for k, v in verdicts.items() if k[0].startswith("test_faulty")} == {
        ("test_faulty_second", "onnxruntime"): "passed", ("test_faulty_second", "faulty"): "failed",
        ("test_faulty_first", "faulty"): "failed", ("test_faulty_first", "onnxruntime"): "passed",
    }
    # found on the faulty backend, whichever ran first, and shrunk: the smallest batch that fails,
    # every value at the smallest one above 0.5 that hypothesis shrinks floats to
    text = failure_sections(result)
    assert text.count("MLP: outputs differ from torch on faulty") == 2, text[-3000:]
    assert text.count("input: Feeds(x=float32[2, 6] [[1., 1., 1., 1., 1., 1.], [1., 1., 1., 1., 1., 1.]])") == 2, text[-3000:]


def test_a_failure_of_one_backend_is_found_and_shrunk_whichever_runs_first(project: pytest.Pytester) -> None:
    project.makepyfile(test_faulty=FAULTY)
    result = project.runpytest("-p", "no:cacheprovider", "--xframe-report=report.json")
    result.assert_outcomes(passed=2, failed=2)
    _faulty_failures(project, result)


def test_under_xdist_the_verdicts_the_inputs_and_the_shrunk_failures_are_the_same(project: pytest.Pytester) -> None:
    """Items of one test on two workers each run torch on the shared draw themselves; what each
    backend draws and decides is the same as in a serial run."""
    project.makepyfile(test_counted=TESTS, test_faulty=FAULTY)
    serial = project.runpytest_subprocess("--hypothesis-seed=2", "-p", "no:cacheprovider", "--xframe-report=report.json")
    serial.assert_outcomes(passed=15, failed=2)
    serial_inputs = _inputs(project)
    _lines(project.path / "counts.jsonl")
    distributed = project.runpytest_subprocess("-n", "2", "--hypothesis-seed=2", "-p", "no:cacheprovider", "--xframe-report=report.json")
    distributed.assert_outcomes(passed=15, failed=2)
    _faulty_failures(project, distributed)
    assert _inputs(project) == serial_inputs
    workers: dict[str, set[str]] = defaultdict(set)
    torch_runs: dict[str, int] = defaultdict(int)
    for line in _lines(project.path / "counts.jsonl"):
        workers[line["test"]].add(line["worker"])
        torch_runs[line["test"]] += line["torch"]
    for test, runs in torch_runs.items():
        # each worker that ran items of a test: the shared draw once and the own searches of its items
        checks = 2 if test == "test_two_checks" else 1
        assert runs <= len(workers[test]) * checks * _bound(BACKENDS_OF[test]), (test, runs, workers[test])


#: a real conversion bug of one backend: onnx-tf resizes by 1.7 with other coordinates than ONNX
#: Runtime, so ``tensorflow`` fails on every input and ``onnxruntime`` passes; both orders of the marker
UPSAMPLER = """
import pytest
from conftest import Upsampler
from pytest_xframe import TensorSpec

OPTIONS = dict(exporter="torchscript", opset=13, max_examples=6)

@pytest.mark.xframe_parity(backends=["tensorflow", "onnxruntime"], **OPTIONS)
def test_failing_first(xframe):
    xframe.check(Upsampler().eval(), inputs=[TensorSpec((1, 2, 5, 5))])

@pytest.mark.xframe_parity(backends=["onnxruntime", "tensorflow"], **OPTIONS)
def test_failing_second(xframe):
    xframe.check(Upsampler().eval(), inputs=[TensorSpec((1, 2, 5, 5))])
"""


def test_a_failing_backend_keeps_its_diagnosis_and_replay_and_hides_no_other_result(xf_pytester: pytest.Pytester) -> None:
    """A backend's failure, found in the shared draw, is diagnosed and kept as that backend's alone;
    the other backend of the test still judges its own inputs and passes, whichever runs first."""
    import subprocess
    import sys

    xf_pytester.makepyfile(test_upsampler=UPSAMPLER)
    result = xf_pytester.runpytest("-p", "no:cacheprovider", "--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(passed=2, failed=2)
    checks = {(c["test"].split("::")[-1].split("[")[0], c["backend"]): c for c in report_checks(xf_pytester)}
    assert {k: c["verdict"] for k, c in checks.items()} == {
        ("test_failing_first", "tensorflow"): "failed", ("test_failing_first", "onnxruntime"): "passed",
        ("test_failing_second", "onnxruntime"): "passed", ("test_failing_second", "tensorflow"): "failed",
    }
    for test in ("test_failing_first", "test_failing_second"):
        assert checks[(test, "onnxruntime")]["examples"] >= split(6, Sharing(2, 0)).shared, checks[(test, "onnxruntime")]
        assert "conversion step" in checks[(test, "tensorflow")]["diagnosis"], checks[(test, "tensorflow")]
    text = failure_sections(result)
    assert text.count("[tensorflow] diagnosis: the conversion step introduced the error") == 2, text[-3000:]
    assert text.count("Resize node '/Resize'") >= 2, text[-3000:]
    for test in ("test_failing_first", "test_failing_second"):
        kept = str(Path(checks[(test, "tensorflow")]["artifacts"]).relative_to(xf_pytester.path))
        assert f"replay: python -m pytest_xframe replay {kept}" in text
        replay = subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", kept], capture_output=True, text=True, timeout=300, cwd=xf_pytester.path)
        assert replay.returncode == 1 and replay.stdout.rstrip().endswith("verdict: MISMATCH"), replay.stdout + replay.stderr


#: a failure one input in 25 takes (the export example does not), on both backends of a marked test
RARE = """
import pytest, torch
from pytest_xframe import TensorSpec
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

# hypothesis turns its database off on CI machines; this project keeps one
settings.register_profile("with-database", settings.get_profile("default"), database=DirectoryBasedExampleDatabase(".hypothesis/examples"))
settings.load_profile("with-database")

class Rare(torch.nn.Module):
    def forward(self, x):
        if x[0] == 4 and x[1] == 0:
            return x * 3
        return x + 1

@pytest.mark.xframe_parity(backends=["onnxruntime", "recorder"], exporter="torchscript")
def test_rare(xframe):
    xframe.check(Rare().eval(), inputs=[TensorSpec((2,), "int64", low=0, high=4)])
"""


def test_each_backend_replays_its_saved_failure_before_the_shared_draw(project: pytest.Pytester, unforced_seed: None) -> None:
    """The example database keeps each backend's failure under its own item; a rerun tries it before
    the shared draw (whose 2 fresh inputs would find it 2 times in 25), so every rerun fails again."""
    from hypothesis import settings

    project.makepyfile(test_rare=RARE)
    profile = settings.get_current_profile_name()
    try:
        project.runpytest("--xframe-max-examples=300", "-p", "no:cacheprovider").assert_outcomes(failed=2)
        for _ in range(3):
            result = project.runpytest("--xframe-max-examples=2", "-p", "no:cacheprovider")
            result.assert_outcomes(failed=2)
            text = failure_sections(result)
            assert text.count("input: Feeds(x=int64[2] [4, 0])") == 2, text[-3000:]
    finally:
        settings.load_profile(profile)
