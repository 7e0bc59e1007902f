"""The litert-torch backend in a real pytest session (the rest of the route: unit/backends/test_litert_torch.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
np = pytest.importorskip("numpy")


@pytest.fixture(autouse=True)
def _needs_litert_torch() -> None:
    from pytest_xframe import backends

    reason = backends.get("litert-torch").missing()
    if reason:
        pytest.skip(reason)


def test_a_mismatch_keeps_the_flatbuffer_that_ran_it_and_says_how_to_replay(xf_pytester: pytest.Pytester) -> None:
    xf_pytester.makepyfile(
        """
        import pytest, torch
        from pytest_xframe import Dim, TensorSpec

        class Affine(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(0)
                self.fc = torch.nn.Linear(16, 8)

            def forward(self, x):
                return self.fc(x)

        # zero tolerance: TFLite's float sums differ from torch's in the last bits
        @pytest.mark.xframe_parity(backends=["litert-torch"], exporter="torchscript", atol=0, rtol=0, max_examples=5, seed=1)
        def test_affine(xframe):
            xframe.check(Affine().eval(), inputs=[TensorSpec((Dim("batch", 2, 3), 16))])
        """
    )
    # in a process of its own: litert-torch registers its torch library namespace once per process,
    # and an in-process session's modules are dropped afterwards, so this process could not load it again
    result = xf_pytester.runpytest_subprocess("--xframe-report=report.json", "--xframe-artifacts-dir=kept")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*replay: rerun the test (litert-torch converts the torch module, which is not kept)*"])
    check = json.loads((xf_pytester.path / "report.json").read_text())["checks"][0]
    directory = Path(check["artifacts"])
    batch = int(np.load(directory / "inputs.npz")["x"].shape[0])
    meta = json.loads((directory / "converted" / "litert-torch.json").read_text())
    assert (directory / "converted" / "model.tflite").is_file() and meta["shapes"] == {"x": [batch, 16]}
