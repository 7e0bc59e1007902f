"""Fault injection and bad input: every case ends in one short XframeError of the right kind (or
passes, where it must), the model is unchanged afterwards, the session and the report survive.

The cases are rows of ``reliability_cases.CASES``; one inner pytest session runs them all through
the ``xframe`` fixture (ONNX Runtime only, 3 examples), letting each error reach pytest as a user
would see it, and a conftest hook records each failure's text and whether the model changed.
Every inner session runs in its own process: an in-process run that exports with dynamo would
drop torch's operator libraries from ``sys.modules`` and break later tests that import them again.
"""

from __future__ import annotations

import fnmatch
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

    HOOKS = [k for k in vars(torch.nn.Linear(1, 1)) if k.endswith("hooks")]
    GLOBAL_HOOKS = [k for k in dir(torch.nn.modules.module) if k.startswith("_global_") and k.endswith("hooks")]

    def _state(model):
        # everything the check promises to leave as it was: tensors (identity, dtype, requires_grad,
        # values), the module tree, every hook dictionary (global ones too), attributes, modes
        if not isinstance(model, torch.nn.Module):
            return None
        tensors = {k: (id(v), v.dtype, v.requires_grad, v.detach().clone()) for k, v in (*model.named_parameters(), *model.named_buffers())}
        plain = {(n, k): list(v) if isinstance(v, list) else v for n, m in model.named_modules() for k, v in vars(m).items() if isinstance(v, (int, float, bool, str, list))}
        hooks = [(n, k, len(vars(m).get(k) or ())) for n, m in model.named_modules() for k in HOOKS]
        hooks += [(k, len(getattr(torch.nn.modules.module, k))) for k in GLOBAL_HOOKS]
        modules = [(n, id(m), type(m), id(getattr(m, "weight", None)), id(getattr(getattr(m, "weight", None), "grad", None))) for n, m in model.named_modules()]
        return tensors, plain, hooks, modules, [m.training for m in model.modules()]

    def _same(a, b):
        if a is None or b is None:
            return a is b
        (ta, *rest_a), (tb, *rest_b) = a, b
        same_tensors = ta.keys() == tb.keys() and all(
            v[:3] == tb[k][:3] and (v[3].is_meta or torch.equal(v[3], tb[k][3])) for k, v in ta.items()
        )
        return same_tensors and rest_a == rest_b

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
            if self.fault == "exit":
                raise SystemExit(1)
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
            if fault == "prepare-exit":
                raise SystemExit("the converter called sys.exit")
            return Prepared(FaultyRunner(artifact.path, fault), convert_seconds=0.0, load_seconds=0.0)
        return Backend(name=f"fault-{fault}", prepare=prepare, modules=("onnxruntime",), exports=(("torchscript", 17),))


    def pytest_xframe_register_backends(config):
        return [_faulty(f) for f in ("prepare", "oom", "tf-oom", "crash", "no-outputs", "nan", "wrong-shape", "exit", "prepare-exit")]


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
        if case.spec_refuses:  # TensorSpec/Dim refused itself in the test's code: the check never started, and says why
            assert check is not None and check["verdict"] == "error" and case.says in check["message"], (case.id, check)
            continue
        assert check is not None, f"{case.id}: no check in the JSON report"
        assert check["verdict"] == {"passed": "passed", "ParityError": "failed"}.get(case.kind, "error"), (case.id, check)
        assert check["message"] or case.kind == "passed", (case.id, check)
    assert all(c["verdict"] != "pending" for c in case_run["report"]["checks"])
    assert "pending" not in case_run["stdout"]


#: what the ModelStateWarning of each ``forward-*`` state case names (fnmatch patterns)
STATE_WARNINGS = [
    "(parameter lin.weight (dtype float32 -> float64), parameter lin.bias (dtype float32 -> float64))",
    "(parameter lin.weight (requires_grad True -> False))",
    "(forward hooks of lin (* added))",
    "(forward pre-hooks of lin (* added))",
    "(global forward hooks (* added))",
    "(state_dict pre-hooks (* added))",
    "(parameter lin.bias replaced)",
    "(buffer cache added)",
    "(submodule extra added)",
    "(attribute seen*)",  # "(contents)", or replaced where the dynamo exporter put a copy of the list back
    "(attribute warmed_up added)",
    "(parameter lin.weight removed, submodule lin.parametrizations added, class of lin (Linear -> ParametrizedLinear))",
    "(parameter lin.weight (grad set))",
    "(training mode of the model (False -> True), training mode of lin (False -> True))",
    "(backward hooks of lin (* added))",
]


def test_a_forward_that_writes_its_state_is_restored_and_named_in_a_warning(case_run: dict) -> None:
    assert "ModelStateWarning: Counter.forward changes the model's own state (buffer n, attribute calls); xframe restored it" in case_run["stdout"]
    assert "ModelStateWarning: ParamWriter.forward changes the model's own state (parameter momentum); xframe restored it" in case_run["stdout"]
    warned = [line for line in case_run["stdout"].splitlines() if "ModelStateWarning: StateChanger.forward changes the model's own state" in line]
    for expected in STATE_WARNINGS:
        assert any(fnmatch.fnmatch(line, f"*changes the model's own state {expected}; xframe restored it after the check*") for line in warned), (
            expected, warned
        )


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
    assert f"tries\n{len(ALL_CASES)} cases" in page or f"tries {len(ALL_CASES)} cases" in page
    assert f"{failing} bad inputs and injected faults" in page
    assert f"{len(ALL_CASES) - failing} awkward models" in page
    assert f"all {len(ALL_CASES)} are clean" in page  # each case test above passed, or this run fails


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
    elif how == "replaced-model":  # a valid ONNX model, not the one the case kept
        import onnx

        model = onnx.load(str(case / "model.onnx"))
        model.doc_string = "edited after the case was kept"
        (case / "model.onnx").unlink()  # kept as a hard link to the export: write a new file
        onnx.save(model, str(case / "model.onnx"))
    elif how in ("unknown-version", "no-version"):
        data = json.loads((case / "case.json").read_text())
        data["version"] = 99
        if how == "no-version":
            del data["version"]
        (case / "case.json").write_text(json.dumps(data))
    return case


def _replay(case: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest_xframe", "replay", str(case)], capture_output=True, text=True, timeout=300, check=False)


def test_replay_of_an_intact_case_reports_the_mismatch(saved_case: Path) -> None:
    proc = _replay(saved_case)
    assert proc.returncode == 1, proc.stderr
    assert "verdict: MISMATCH" in proc.stdout


@pytest.mark.parametrize(
    "how",
    ["missing-dir", "garbage-case-json", "case-json-without-fields", "no-inputs", "truncated-reference", "garbage-model", "no-model",
     "replaced-model", "unknown-version", "no-version"],
)
def test_replay_of_a_damaged_case_says_what_is_wrong_in_one_line_and_exits_2(saved_case: Path, tmp_path: Path, how: str) -> None:
    copy = shutil.copytree(saved_case, tmp_path / "case")
    proc = _replay(_damage(copy, how))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("replay: "), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("how", "says"),
    [
        ("replaced-model", "model.onnx in {case} is not what the case kept (missing, replaced or edited since: the sha256 differs)"),
        ("unknown-version", "has version 99, which this pytest-xframe does not read (1, 2)"),
        ("no-version", "has version None, which this pytest-xframe does not read (1, 2)"),
    ],
)
def test_replay_refuses_a_replaced_model_and_an_unknown_case_version(saved_case: Path, tmp_path: Path, how: str, says: str) -> None:
    """A replay runs the model the case kept, under a case.json it knows, or refuses: it never blames
    a stale exporter for another file, nor reads a format it does not know."""
    copy = shutil.copytree(saved_case, tmp_path / "case")
    proc = _replay(_damage(copy, how))
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert says.format(case=copy) in proc.stderr, proc.stderr
    assert "ONNX from" not in proc.stdout


def test_a_kept_case_records_the_sha256_of_every_file(saved_case: Path) -> None:
    from pytest_xframe.identity import file_sha256

    case = json.loads((saved_case / "case.json").read_text())
    assert case["version"] == 2
    assert {"model.onnx", "inputs.npz", "reference.npz", "backend.npz"} <= set(case["sha256"])
    assert all(file_sha256(saved_case / name) == digest for name, digest in case["sha256"].items())


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


#: a transformers causal LM's logits, through the dynamo exporter
LLAMA = """
import sys
import pytest, torch
sys.path.insert(0, {tests!r})
from generation_models import build
from pytest_xframe import TensorSpec

class Logits(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lm = build("llama")

    def forward(self, ids):
        return self.lm(input_ids=ids, use_cache=False).logits

@pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="dynamo", max_examples=2)
def test_llama(xframe):
    xframe.check(Logits().eval(), inputs=[TensorSpec((1, 4), "int64", low=0, high=63)])
"""


def test_a_transformers_model_is_not_said_to_change_its_state(xf_pytester: pytest.Pytester) -> None:
    """The dynamo exporter puts copies of a module's list, tuple and dict attributes back after
    tracing; a transformers model keeps dicts of tuples of lists (``_pp_plan``). Equal copies are
    the same state: no ModelStateWarning, which ``-W error`` would turn into a failure."""
    from suite_helpers import skip_unless_imports

    skip_unless_imports("transformers", "a transformers model")
    skip_unless_imports("onnxscript", "the dynamo exporter")
    xf_pytester.makepyfile(test_llama=LLAMA.format(tests=str(Path(__file__).parents[1])))
    result = xf_pytester.runpytest("-p", "no:cacheprovider", "-W", "error::pytest_xframe.ModelStateWarning")
    result.assert_outcomes(passed=1)
    assert "ModelStateWarning" not in result.stdout.str()
