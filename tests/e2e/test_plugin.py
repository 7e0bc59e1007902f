"""Plugin behaviour, through real pytest sessions (pytester) and real frameworks."""

from __future__ import annotations

import json
import os

import pytest


def test_marker_fixture_and_options_are_documented(pytester: pytest.Pytester) -> None:
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(["@pytest.mark.xframe_parity(**options):*backend*"])
    fixtures = pytester.runpytest("--fixtures")
    fixtures.stdout.fnmatch_lines(["xframe*", "*xframe.check(model, inputs*"])
    helptext = pytester.runpytest("--help")
    helptext.stdout.fnmatch_lines(
        ["*--xframe-backends=LIST*", "*--xframe-max-examples=N*", "*--xframe-seed=SEED*", "*xframe_backends*", "*xframe_max_examples*", "*xframe_seed*"]
    )


def test_marker_parametrizes_per_backend(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec, Dim

        @pytest.mark.xframe_parity(atol=1e-5, rtol=1e-4, max_examples=5, exporter="torchscript")
        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((Dim("batch", 1, 4), 6))])
        """
    )
    result = xf_pytester.runpytest("-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_mlp[[]onnxruntime[]] PASSED*", "*test_mlp[[]tensorflow[]] PASSED*", "*xframe parity summary*"])
    only_tf = xf_pytester.runpytest("-v", "-k", "tensorflow")
    only_tf.assert_outcomes(passed=1, deselected=1)


def test_diverging_model_fails_with_the_report(xf_pytester: pytest.Pytester) -> None:
    """The torchscript exporter freezes the branch the example took; other inputs take the other."""
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import Branchy
        from pytest_xframe import TensorSpec

        @pytest.mark.xframe_parity(exporter="torchscript", max_examples=50, seed=1)
        def test_branchy(xframe):
            xframe.check(Branchy().eval(), inputs=[TensorSpec((3,))])
        """
    )
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=2)
    text = result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "test_diverging_model_fails_with_the_report.py:7: pytest_xframe.ParityError",
            "Branchy: outputs differ from torch on onnxruntime",
            "*input: Feeds(x=float32[[]3[]] [[]*[]])*",
            "*ran ONNX from torchscript, opset*",
            "*output 'output' float32[[]3[]]: * / 3 elements (*%) out of tolerance (atol=*, rtol=0.0001)*",
            "*max abs error *, max rel error *",
            "*worst at index [[]*[]]: reference *, backend *",
            "*replay: python -m pytest_xframe replay *",
        ]
    )
    assert "Falsifying example" in text or "Failing test case" in text
    assert "Branchy: outputs differ from torch on tensorflow" in text


def test_fixture_without_marker_checks_every_backend(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        from conftest import TwoIn
        from pytest_xframe import TensorSpec, Dim

        def test_two(xframe):
            batch = Dim("batch", 1, 3)
            report = xframe.check(TwoIn().eval(), inputs={"right": TensorSpec((batch, 3)), "left": TensorSpec((batch, 4))},
                                  max_examples=4, exporter="torchscript")
            assert set(report.backends) == {"onnxruntime", "tensorflow"}
            for backend in report.backends.values():
                assert backend.verdict == "passed" and backend.examples == 4
                assert set(backend.worst) == {"sum", "pair.0", "pair.1"}
                assert backend.max_abs < 1e-5
        """
    )
    result = xf_pytester.runpytest("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_two PASSED*"])


def test_dynamic_dims_are_drawn_within_bounds(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest, torch
        from pytest_xframe import TensorSpec, Dim

        seen = []

        class Recorder(torch.nn.Module):
            def forward(self, x):
                seen.append(tuple(x.shape))
                return x.cumsum(1) * 0.5

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=25, exporter="torchscript")
        def test_dims(xframe):
            seen.clear()
            xframe.check(Recorder().eval(), inputs=[TensorSpec((Dim("batch", 1, 4), Dim("seq", 2, 9)))])
            batches = {int(s[0]) for s in seen}
            seqs = {int(s[1]) for s in seen}
            assert batches <= set(range(1, 5)) and len(batches) > 1
            assert seqs <= set(range(2, 10)) and len(seqs) > 1
        """
    )
    xf_pytester.runpytest().assert_outcomes(passed=1)


def test_export_failure_is_a_short_export_error(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest, torch
        from pytest_xframe import TensorSpec, ExportError

        class SvdInside(torch.nn.Module):
            # no ONNX op computes an SVD: the export must fail

            def forward(self, x):
                return torch.linalg.svd(x)[1]

        @pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript")
        def test_export(xframe):
            xframe.check(SvdInside().eval(), inputs=[TensorSpec((2, 3))])

        def test_raises(xframe):
            with pytest.raises(ExportError) as info:
                xframe.check(SvdInside().eval(), inputs=[TensorSpec((2, 3))], backends=["onnxruntime"], exporter="torchscript")
            message = str(info.value)
            assert len(message.splitlines()) <= 6, message
            assert "model SvdInside" in message and "torchscript" in message and "try:" in message
        """
    )
    result = xf_pytester.runpytest()
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.fnmatch_lines(["test_export_failure_is_a_short_export_error.py:*: pytest_xframe.ExportError", "torch.onnx.export failed with the torchscript exporter (model SvdInside, backend onnxruntime)", "  cause: UnsupportedOperatorError: *aten::linalg_svd*", "  try: *"])


def test_marked_test_that_never_checks_fails(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest

        @pytest.mark.xframe_parity(backends=["onnxruntime"])
        def test_forgot(xframe):
            pass
        """
    )
    result = xf_pytester.runpytest()
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*marked xframe_parity but never called xframe.check*"])


@pytest.mark.slow
def test_xdist_workers_share_the_marker_and_the_report(xf_pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP, TwoIn
        from pytest_xframe import TensorSpec

        import os

        # each of the 2 workers sizes the frameworks' pools to its share of the CPUs
        SHARE = max(1, len(os.sched_getaffinity(0)) // 2)

        @pytest.mark.xframe_parity(max_examples=3, exporter="torchscript")
        def test_mlp(xframe, request):
            xframe.check(MLP().eval(), inputs=[TensorSpec((2, 6))])
            import torch

            assert torch.get_num_threads() == SHARE
            if request.node.callspec.params["xframe"] == "tensorflow":
                import tensorflow as tf

                assert tf.config.threading.get_intra_op_parallelism_threads() == SHARE

        @pytest.mark.xframe_parity(max_examples=3, exporter="torchscript")
        def test_two(xframe):
            xframe.check(TwoIn().eval(), inputs=[TensorSpec((2, 4)), TensorSpec((2, 3))])
        """
    )
    result = xf_pytester.runpytest_subprocess("-n", "2", "--xframe-report=report.json")
    result.assert_outcomes(passed=4)
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    result.stdout.fnmatch_lines(
        [f"xframe: *; threads: {share} per framework ({len(os.sched_getaffinity(0))} CPUs / 2 xdist workers)", "*xframe parity summary*", "*4 passed*"]
    )
    document = json.loads((xf_pytester.path / "report.json").read_text())
    assert len(document["checks"]) == 4


RARE = """
import pytest, torch
from pytest_xframe import TensorSpec

class Rare(torch.nn.Module):
    def forward(self, x):
        if x[0] == 4 and x[1] == 0:  # one input in 25; the export example does not take it
            return x * 3
        return x + 1

@pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript")
def test_rare(xframe):
    xframe.check(Rare().eval(), inputs=[TensorSpec((2,), "int64", low=0, high=4)])
"""


# Hypothesis turns its database off on CI machines (its "ci" profile, chosen from $CI and the like);
# a project that wants failures replayed there loads a profile with one, as this module does.
WITH_DATABASE = """
from hypothesis import settings
from hypothesis.database import DirectoryBasedExampleDatabase

settings.register_profile("with-database", settings.get_profile("default"), database=DirectoryBasedExampleDatabase(".hypothesis/examples"))
settings.load_profile("with-database")
"""


def test_hypothesis_database_replays_a_failure_first(xf_pytester: pytest.Pytester, unforced_seed: None) -> None:
    from hypothesis import settings

    xf_pytester.makepyfile(WITH_DATABASE + RARE)
    profile = settings.get_current_profile_name()
    try:
        xf_pytester.runpytest("--xframe-max-examples=300").assert_outcomes(failed=1)
        # one fresh example lands on the failing input 1 time in 25; the saved failure is tried first
        for _ in range(3):
            xf_pytester.runpytest("--xframe-max-examples=1").assert_outcomes(failed=1)
    finally:
        settings.load_profile(profile)


def test_hypothesis_seed_makes_runs_repeatable(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest
        from conftest import MLP
        from pytest_xframe import TensorSpec, Dim

        @pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript", max_examples=5)
        def test_mlp(xframe):
            xframe.check(MLP().eval(), inputs=[TensorSpec((Dim("b", 1, 9), 6), low=-50, high=50)])
        """
    )
    from hypothesis import core

    figures = []
    for seed_args in (("--hypothesis-seed=7",), ("--hypothesis-seed=7",), ("--xframe-seed=7",), ("--xframe-seed=7",)):
        forced = core.global_force_seed  # hypothesis's plugin sets it and leaves it set in this process
        try:
            result = xf_pytester.runpytest(*seed_args, "-p", "no:cacheprovider", "--xframe-report=r.json")
        finally:
            core.global_force_seed = forced
        result.assert_outcomes(passed=1)
        check = json.loads((xf_pytester.path / "r.json").read_text())["checks"][0]
        figures.append((check["max_abs"], check["outputs"][0]["shape"]))
        shutil_db = xf_pytester.path / ".hypothesis"
        if shutil_db.exists():
            __import__("shutil").rmtree(shutil_db)
    assert figures[0] == figures[1] and figures[2] == figures[3]


def test_backend_crash_is_reported_at_the_first_input_without_shrinking(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest, torch
        from pytest_xframe import TensorSpec, Dim

        class Frozen(torch.nn.Module):
            def forward(self, x):
                return x.reshape(int(x.shape[0]), 12)  # int() freezes the export's batch size: other sizes crash

        @pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript", max_examples=50)
        def test_frozen(xframe):
            xframe.check(Frozen().eval(), inputs=[TensorSpec((Dim("batch", 1, 6), 3, 4))])
        """
    )
    result = xf_pytester.runpytest("--xframe-report=r.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "test_backend_crash_is_reported_at_the_first_input_without_shrinking.py:*: pytest_xframe.XframeError",
            "onnxruntime raised while running the converted model (ONNX from torchscript, opset *) (model Frozen, backend onnxruntime)",
            "  cause: *",
            "  input: Feeds(x=float32[[]*, 3, 4[]]*)",
        ]
    )
    check = json.loads((xf_pytester.path / "r.json").read_text())["checks"][0]
    assert check["verdict"] == "error" and check["examples"] <= 3  # no shrinking over a crash
    # the crash is kept to run again: the ONNX model and the input it crashed on
    import numpy as np
    import onnxruntime as ort

    kept = xf_pytester.path / check["artifacts"]
    assert {"error.txt", "model.onnx", "inputs.npz"} <= {p.name for p in kept.iterdir()}, sorted(kept.iterdir())
    with np.load(kept / "inputs.npz") as inputs:
        feeds = {k: inputs[k] for k in inputs.files}
    with pytest.raises(Exception, match="(?i)reshape"):
        ort.InferenceSession(str(kept / "model.onnx")).run(None, feeds)


def test_conversion_failure_names_the_op_and_keeps_the_onnx_model(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest, torch
        from pytest_xframe import TensorSpec, ConversionError

        class Hard(torch.nn.Module):
            def forward(self, x):
                return torch.nn.functional.one_hot(x.argmax(-1), 4).float() + torch.bitwise_left_shift(x.long(), 1).float()

        @pytest.mark.xframe_parity(backends=["tensorflow"], exporter="torchscript", opset=17, max_examples=2)
        def test_hard(xframe):
            xframe.check(Hard().eval(), inputs=[TensorSpec((2, 4))])
        """
    )
    result = xf_pytester.runpytest("--xframe-artifacts-dir=kept")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*.py:10: pytest_xframe.ConversionError",
            "onnx-tf failed converting OneHot-11 (node '/OneHot', model opset ai.onnx 17) (model Hard, backend tensorflow)",
            "  cause: *int64*not supported in Tensorflow*",
            "  try: *exporter=*",
            "  kept: *",
        ]
    )
    kept = next((xf_pytester.path / "kept").rglob("error.txt"))
    assert "Traceback" in kept.read_text() and (kept.parent / "model.onnx").is_file()
    assert f"kept:  {kept.parent.relative_to(xf_pytester.path)}" in result.stdout.str()
