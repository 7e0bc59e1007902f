"""identity.py: the weights digest follows the weights only; the model fingerprint is the same in every process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_weights_digest_follows_the_weights_only() -> None:
    import torch

    from pytest_xframe.identity import weights_digest

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    first = weights_digest(model)
    assert weights_digest(model) == first
    copy = torch.nn.Linear(3, 2)
    copy.load_state_dict(model.state_dict())
    assert weights_digest(copy) == first
    with torch.no_grad():
        model.weight[0, 0] += 1.0
    assert weights_digest(model) != first
    transposed = torch.nn.Linear(3, 2)
    transposed.weight = torch.nn.Parameter(model.weight.detach().t().contiguous().t())  # not contiguous
    transposed.bias = model.bias
    assert weights_digest(transposed) == weights_digest(model)


def test_model_fingerprint_is_the_same_in_every_process(tmp_path: Path) -> None:
    """xdist workers share exports by this key: code nested in forward (a comprehension) must
    not bring its memory address into it."""

    pytest.importorskip("torch")
    (tmp_path / "netmod.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        torch.manual_seed(0)\n        self.fc = nn.Linear(4, 3)\n\n"
        "    def forward(self, x):\n        return sum(v for v in [self.fc(x), x[:, :3]])\n"
    )
    code = "from netmod import Net; from pytest_xframe.identity import model_fingerprint; print(model_fingerprint(Net()))"
    runs = [subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0].strip()) == 64
