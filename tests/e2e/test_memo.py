"""check/memo.py in real sessions: the marker's runs of a test share torch's outputs; the fingerprint sees what forward reads."""

from __future__ import annotations

import re

import pytest

from suite_helpers import report_checks


def test_marker_backends_share_torch_outputs(xf_pytester: pytest.Pytester) -> None:
    """The marker checks each backend in a test of its own; both draw a shared set of inputs from
    one seed, so the second reuses torch's outputs for them and runs torch only for its own search."""
    xf_pytester.makepyfile(
        """
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

        @pytest.mark.xframe_parity(max_examples=20, exporter="torchscript", opset=13)
        def test_counted(xframe, record_property):
            before = Counted.calls
            report = xframe.check(Counted().eval(), inputs=[TensorSpec((Dim("batch", 1, 3), 6))])
            print(f"{xframe.backend}: {Counted.calls - before} torch runs, {report.backends[xframe.backend].examples} examples")

        @pytest.mark.xframe_parity(backends=["onnxruntime"], max_examples=20, exporter="torchscript", opset=13)
        def test_other(xframe):
            before = Counted.calls
            xframe.check(Counted().eval(), inputs=[TensorSpec((Dim("batch", 1, 3), 6))])
            print(f"other: {Counted.calls - before} torch runs, 20 examples")
        """
    )
    from hypothesis import core

    forced = core.global_force_seed  # hypothesis's plugin sets it and leaves it set, in this process too
    try:
        result = xf_pytester.runpytest("-s", "--hypothesis-seed=1")  # repeatable counts
    finally:
        core.global_force_seed = forced
    result.assert_outcomes(passed=3)
    found = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"(\w+): (\d+) torch runs, (\d+) examples", result.stdout.str())}
    (first, examples), (second, _) = found["onnxruntime"], found["tensorflow"]
    assert examples == 20 and first >= 5  # the first runs torch for each distinct input, + the output-name run
    # the shared draw is the same on both; only the second's own search (2 of 20 inputs, steered
    # by its own errors) may run torch again
    assert second <= 2, found
    # another test of the same model draws inputs of its own and shares nothing (its forward may
    # read state the model's fingerprint cannot see)
    assert found["other"][0] >= 5, found


def test_a_global_flag_forward_reads_is_part_of_the_model_identity(xf_pytester: pytest.Pytester) -> None:
    """A test that flips a module flag ``forward`` branches on gets an export of its own, not
    the one an earlier test made with the other value (which would fail every backend)."""
    xf_pytester.makepyfile(
        """
        import pytest, torch
        from torch import nn
        from pytest_xframe import TensorSpec

        DOUBLE = False

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.fc = nn.Linear(4, 3)

            def forward(self, x):
                y = self.fc(x)
                return [v * 2 for v in (y,)][0] if DOUBLE else y

        @pytest.mark.xframe_parity(backends=["onnxruntime"], exporter="torchscript", max_examples=3)
        @pytest.mark.parametrize("double", [False, True])
        def test_net(xframe, double, monkeypatch):
            monkeypatch.setattr(__import__(__name__), "DOUBLE", double)
            xframe.check(Net().eval(), inputs=[TensorSpec((2, 4))])
        """
    )
    result = xf_pytester.runpytest("--xframe-report=report.json")
    result.assert_outcomes(passed=2)
    assert sum(c["seconds"]["export"] > 0 for c in report_checks(xf_pytester)) == 2


