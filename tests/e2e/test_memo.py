"""engine.py: torch outputs are memoised by model fingerprint and feeds, within a byte budget;
the fingerprint sees what forward reads and is the same in every process."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest


def _checks(pytester: pytest.Pytester, name: str = "report.json") -> list[dict]:
    return json.loads((pytester.path / name).read_text())["checks"]


def test_marker_backends_share_torch_outputs(xf_pytester: pytest.Pytester) -> None:
    """The marker checks each backend in a test of its own; both draw their inputs from one seed,
    so the second reuses torch's outputs for the inputs the first already ran."""
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
    # generation draws the same inputs; only hypothesis's targeting (steered by each backend's
    # own errors) leaves the second backend inputs of its own
    assert second <= first // 2, found
    # another test of the same model draws inputs of its own and shares nothing (its forward may
    # read state the model's fingerprint cannot see)
    assert found["other"][0] >= 5, found


def test_torch_outputs_kept_least_recently_used_within_a_byte_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    from pytest_xframe import engine as engines
    from pytest_xframe.cache import ArtifactCache

    monkeypatch.setattr(engines, "REFERENCE_CACHE_BYTES", 3 * 800)  # three outputs of 100 float64
    engine = engines.Engine(tmp_path, ArtifactCache(None))
    runs: list[float] = []

    def reference(value: float, size: int = 100) -> dict:
        def compute() -> dict:
            runs.append(value)
            return {"output": np.full(size, value)}

        return engine.reference(("model",), {"x": np.array([value], np.float32)}, compute)

    for value in (1.0, 2.0, 3.0, 1.0):  # 1.0 is kept: computed once, and now the most recent
        assert reference(value)["output"][0] == value
    assert runs == [1.0, 2.0, 3.0]
    reference(4.0)  # over budget: the least recently used (2.0) goes
    reference(1.0), reference(3.0)
    assert runs == [1.0, 2.0, 3.0, 4.0]
    reference(2.0)
    assert runs[-1] == 2.0
    reference(5.0, size=1000)  # bigger than the whole budget: computed, never kept
    reference(5.0, size=1000)
    assert runs[-2:] == [5.0, 5.0]


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
    assert sum(c["seconds"]["export"] > 0 for c in _checks(xf_pytester)) == 2


def test_model_fingerprint_is_the_same_in_every_process(tmp_path: Path) -> None:
    """xdist workers share exports by this key: code nested in forward (a comprehension) must
    not bring its memory address into it."""
    import subprocess
    import sys

    pytest.importorskip("torch")
    (tmp_path / "netmod.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        torch.manual_seed(0)\n        self.fc = nn.Linear(4, 3)\n\n"
        "    def forward(self, x):\n        return sum(v for v in [self.fc(x), x[:, :3]])\n"
    )
    code = "from netmod import Net; from pytest_xframe.engine import model_fingerprint; print(model_fingerprint(Net()))"
    runs = [subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64
