"""A model with two inputs (by name) and a dict of outputs."""

import pytest
import torch
from torch import nn

from pytest_xframe import Dim, TensorSpec


class Ranker(nn.Module):
    """Scores a query against a document; returns named outputs as a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.query = nn.Linear(12, 16)
        self.doc = nn.Linear(24, 16)
        self.head = nn.Linear(16, 3)

    def forward(self, query: torch.Tensor, document: torch.Tensor) -> dict[str, torch.Tensor]:
        joint = torch.tanh(self.query(query)) * torch.tanh(self.doc(document))
        logits = self.head(joint)
        return {"logits": logits, "probs": torch.softmax(logits, dim=-1), "score": joint.sum(-1)}


@pytest.mark.xframe_parity(max_examples=20)
def test_ranker_parity(xframe) -> None:
    torch.manual_seed(0)
    batch = Dim("batch", 1, 6)
    report = xframe.check(
        Ranker().eval(),
        inputs={"query": TensorSpec((batch, 12)), "document": TensorSpec((batch, 24), low=-2.0, high=2.0)},
    )
    assert set(report[xframe.backend].worst) == {"logits", "probs", "score"}
